import Glibc
import Logging
import XCTest
@testable import GuestRAM
@testable import LinuxSystem
@testable import MemorySlots
@testable import NetDevice
@testable import VirtioCore
@testable import VirtioTestSupport

/// A backend that hands out queued packets and records what it was given.
final class FakeBackend: NetBackend {
    /// Packets (virtio-net header + frame) the next reads return, oldest first.
    var incoming: [[UInt8]] = []
    var sent: [[UInt8]] = []
    var readCalls = 0
    var writeResult: NetTransfer?

    func readPacket(into vectors: IOVectorBuffer) throws -> NetTransfer {
        readCalls += 1
        guard !incoming.isEmpty else { return .wouldBlock }
        let packet = incoming.removeFirst()
        var offset = 0
        vectors.withVectors {
            for vector in $0 where offset < packet.count {
                let count = min(vector.iov_len, packet.count - offset)
                packet[offset..<(offset + count)].withUnsafeBytes { vector.iov_base!.copyMemory(from: $0.baseAddress!, byteCount: count) }
                offset += count
            }
        }
        // Like the tap: the full length, even when cut short.
        return .packet(packet.count)
    }

    func writePacket(from vectors: IOVectorBuffer) throws -> NetTransfer {
        if let writeResult { return writeResult }
        var packet: [UInt8] = []
        vectors.withVectors {
            for vector in $0 {
                packet += UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len)
            }
        }
        sent.append(packet)
        return .packet(packet.count)
    }
}

/// An iovec list over host buffers the caller keeps alive.
func vectors(_ buffers: UnsafeRawBufferPointer...) -> IOVectorBuffer {
    let list = IOVectorBuffer()
    for buffer in buffers { XCTAssertTrue(list.append(buffer)) }
    return list
}

func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ ($0 >> 8)) }
}

/// An Ethernet frame of `count` bytes: destination, source, ethertype IPv4, then a pattern.
func ethernetFrame(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    precondition(count >= 14)
    return [0x52, 0x54, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 2, 0x08, 0x00] + pattern(count - 14, seed: seed)
}

let testMAC = MACAddress("52:54:00:12:34:56")!

/// Guest RAM, the two rings driven by `VirtqueueDriver`, and the device over a fake backend.
final class NetRig {
    static let ramSize: UInt64 = 8 << 20
    static let receiveRing = GuestAddress(0x1_0000)
    static let transmitRing = GuestAddress(0x2_0000)
    static let dataBase: UInt64 = 0x10_0000

    let memory: GuestMemory
    let backend = FakeBackend()
    let model: NetDeviceModel
    let device: NetVirtioDevice
    let features: UInt64
    var receive: VirtqueueDriver
    var transmit: VirtqueueDriver
    let calls: [FileDescriptor]
    var resumeCount = 0
    private var nextData = dataBase

    init(features extra: UInt64 = 0, offloads: NetOffloads = .all, dhcp: DHCPResponder? = nil, queueSize: UInt16 = 256) throws {
        memory = try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: Self.ramSize)])
        model = try NetDeviceModel(mac: testMAC, offloads: offloads, backend: backend, dhcp: dhcp)
        features = VirtioFeature.version1 | VirtioFeature.eventIndex | extra
        XCTAssertEqual(features & ~model.deviceFeatures, 0, "test negotiates only offered features")
        receive = try VirtqueueDriver(memory: memory, base: Self.receiveRing, size: queueSize)
        transmit = try VirtqueueDriver(memory: memory, base: Self.transmitRing, size: queueSize)
        calls = [try FileDescriptor.eventFD(), try FileDescriptor.eventFD()]
        var resume: (() -> Void)?
        device = NetVirtioDevice(pairs: [model], guestLog: RateLimitedLog(logger: Logger(label: "test")), resumeTap: { _ in resume?() })
        resume = { [unowned self] in self.resumeCount += 1 }
        let queues = [
            SplitVirtqueue(configuration: try receive.configuration(), memory: memory, features: features),
            SplitVirtqueue(configuration: try transmit.configuration(), memory: memory, features: features),
        ]
        try device.activate(features: features, queues: ActiveQueues(memory: memory, features: features, queues: queues, calls: calls))
    }

    /// A guest buffer holding `bytes` (or `length` zero bytes), with a sentinel gap after it.
    func place(_ bytes: [UInt8]) throws -> GuestAddress {
        let address = GuestAddress(nextData)
        try memory.fill(0xEE, at: address, count: UInt64(bytes.count) + 64)
        try memory.writeBytes(bytes, at: address)
        nextData += (UInt64(bytes.count) + 64 + 15) & ~15
        precondition(nextData < Self.ramSize)
        return address
    }

    /// Adds one transmit chain whose readable buffers hold `pieces`, publishes, and kicks.
    @discardableResult
    func send(_ pieces: [[UInt8]], kick: Bool = true) throws -> UInt16 {
        let buffers = try pieces.map { VirtqueueDriver.Buffer(address: try place($0), length: UInt32($0.count), writable: false) }
        let head = try transmit.add(buffers)
        try transmit.publish()
        if kick { try device.queueNotified(NetDeviceModel.transmitQueue) }
        return head
    }

    /// Adds receive chains, each of writable buffers of `lengths`; returns their buffers.
    @discardableResult
    func postReceive(_ chains: [[Int]], kick: Bool = true) throws -> [[VirtqueueDriver.Buffer]] {
        var all: [[VirtqueueDriver.Buffer]] = []
        for lengths in chains {
            let buffers = try lengths.map {
                VirtqueueDriver.Buffer(address: try place([UInt8](repeating: 0xEE, count: $0)), length: UInt32($0), writable: true)
            }
            try receive.add(buffers)
            all.append(buffers)
        }
        try receive.publish()
        if kick { try device.queueNotified(NetDeviceModel.receiveQueue) }
        return all
    }

    func usedReceive() throws -> [VirtqueueDriver.UsedElement] {
        var result: [VirtqueueDriver.UsedElement] = []
        while let element = try receive.popUsed() { result.append(element) }
        return result
    }

    func usedTransmit() throws -> [VirtqueueDriver.UsedElement] {
        var result: [VirtqueueDriver.UsedElement] = []
        while let element = try transmit.popUsed() { result.append(element) }
        return result
    }

    /// The first `count` bytes of a chain's buffers, in order.
    func bytes(of buffers: [VirtqueueDriver.Buffer], count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        for buffer in buffers where result.count < count {
            result += try memory.readBytes(at: buffer.address, count: min(Int(buffer.length), count - result.count))
        }
        return result
    }
}

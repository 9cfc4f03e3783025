// Fuzz target 3: virtio-net's guest-facing parsing (the NetDevice library,
// Sources/virtio-net/Device).
//
// The first byte picks a mode:
//   0  the 12-byte virtio-net header: parse, validateForTransmit, adjustedForReceive;
//   1  DHCPResponder.reply(to:) and mightBeRequest on a frame from the input;
//   2  the transmit path, NetDeviceModel.transmit, on a chain over guest memory
//      (fake tap backend, DHCP responder on), which also reaches the responder;
//   3  the receive path, NetDeviceModel.receive, with receive chains from the input
//      in a real queue and packets from the fake tap;
//   bit 6 set: the control queue of a NetVirtioDevice of 2 to 4 queue pairs, with
//      chains from the input (VQ_PAIRS_SET and whatever else), the tap queues fake.
// In modes 1 and 2, bit 7 of the mode byte fixes up the IPv4 header checksum of
// the frame, so the fuzzer gets past it to the UDP and BOOTP parsing.
import FuzzKit
import Glibc
@testable import NetDevice
@testable import GuestRAM
@testable import MemorySlots
@testable import VirtioCore
@testable import VirtioTestSupport
@testable import LinuxSystem

@_cdecl("FuzzNet_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

/// A backend that takes every packet and hands out packets from the input.
final class FuzzBackend: NetBackend {
    var incoming: [[UInt8]] = []
    var sent: [[UInt8]] = []

    func readPacket(into vectors: IOVectorBuffer) throws -> NetTransfer {
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
        return .packet(packet.count)
    }

    func writePacket(from vectors: IOVectorBuffer) throws -> NetTransfer {
        var packet: [UInt8] = []
        vectors.withVectors { for vector in $0 { packet += UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len) } }
        sent.append(packet)
        return .packet(packet.count)
    }
}

private let clientMAC = MACAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])!
private let responders: [DHCPResponder] = [
    try! DHCPResponder(clientMAC: clientMAC, clientAddress: IPv4Address(100, 64, 0, 3), serverAddress: IPv4Address(100, 64, 0, 2)),
    try! DHCPResponder(clientMAC: clientMAC, clientAddress: IPv4Address(10, 0, 0, 9), serverAddress: IPv4Address(10, 0, 0, 1),
                       prefixLength: 24, leaseSeconds: 60, dnsServers: [IPv4Address(10, 0, 0, 1), IPv4Address(1, 1, 1, 1)]),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    if mode & 0x40 != 0 {
        fuzzControl(&input)
        return 0
    }
    switch mode & 3 {
    case 0: fuzzHeader(&input)
    case 1: fuzzDHCP(&input, fixChecksum: mode & 0x80 != 0)
    case 2: fuzzTransmit(&input, fixChecksum: mode & 0x80 != 0)
    default: fuzzReceive(&input)
    }
    return 0
}

private func features(_ input: inout FuzzInput) -> UInt64 {
    // The net feature bits that matter (0..16) from two bytes.
    UInt64(input.integer(UInt16.self)) | (input.bool() ? VirtioNetFeature.status : 0)
}

// MARK: Mode 0

private func fuzzHeader(_ input: inout FuzzInput) {
    let negotiated = features(&input)
    let frameLength = Int(input.integer(UInt16.self))
    let bytes = input.rest()
    guard let header = VirtioNetHeader(parsing: bytes) else {
        fuzzCheck(bytes.count < VirtioNetHeader.size, "12 bytes refused")
        return
    }
    fuzzCheck(header.bytes == Array(bytes.prefix(VirtioNetHeader.size)), "header does not round-trip")
    // From a slice too (non-zero start index).
    if bytes.count > VirtioNetHeader.size {
        fuzzCheck(VirtioNetHeader(parsing: bytes[1...])?.bytes == Array(bytes[1...].prefix(VirtioNetHeader.size)),
                  "header from a slice does not round-trip")
    }
    do {
        try header.validateForTransmit(frameLength: frameLength, features: negotiated)
        if header.flags & VirtioNetHeader.Flag.needsChecksum != 0 {
            fuzzCheck(Int(header.checksumStart) + Int(header.checksumOffset) + 2 <= frameLength, "checksum outside the frame accepted")
        }
    } catch {
        _ = error.description
    }
    do {
        let adjusted = try header.adjustedForReceive(features: negotiated)
        if negotiated & VirtioNetFeature.guestChecksum == 0 { fuzzCheck(adjusted.flags == 0, "flags without GUEST_CSUM") }
    } catch {
        _ = error.description
    }
}

// MARK: Mode 1

/// Recomputes the IPv4 header checksum of an Ethernet frame in place, if it has a header.
private func fixIPv4Checksum(_ frame: inout [UInt8]) {
    guard frame.count >= 34 else { return }
    let length = Int(frame[14] & 0x0F) * 4
    guard length >= 20, 14 + length <= frame.count else { return }
    frame[24] = 0
    frame[25] = 0
    let checksum = InternetChecksum.of(frame[14..<(14 + length)])
    frame[24] = UInt8(checksum >> 8)
    frame[25] = UInt8(truncatingIfNeeded: checksum)
}

private func fuzzDHCP(_ input: inout FuzzInput, fixChecksum: Bool) {
    let responder = responders[Int(input.byte() & 1)]
    var frame = input.rest()
    if fixChecksum { fixIPv4Checksum(&frame) }
    _ = Array(frame.prefix(DHCPResponder.candidatePrefixLength)).withUnsafeBytes { DHCPResponder.mightBeRequest($0) }
    guard let reply = responder.reply(to: frame) else { return }
    checkReply(reply, responder: responder)
}

private func checkReply(_ reply: [UInt8], responder: DHCPResponder) {
    fuzzCheck(reply.count >= 14 + 20 + 8 + DHCPResponder.minimumMessageLength, "short DHCP reply")
    fuzzCheck(Array(reply[0..<6]) == responder.clientMAC.bytes, "reply not to the client")
    fuzzCheck(InternetChecksum.of(reply[14..<34]) == 0, "reply IPv4 checksum wrong")
}

// MARK: Mode 2

private func fuzzTransmit(_ input: inout FuzzInput, fixChecksum: Bool) {
    FuzzGuest.wipe()
    let memory = FuzzGuest.memory
    let negotiated = features(&input)
    let offloads = NetOffloads(rawValue: negotiated & NetOffloads.all.rawValue)
    let backend = FuzzBackend()
    guard let model = try? NetDeviceModel(mac: clientMAC, offloads: offloads, backend: backend,
                                          dhcp: responders[Int(input.byte() & 1)]) else { return }
    // Where the packet goes in guest memory and how it is cut into buffers.
    let base = FuzzGuest.address(input.integer())
    var cuts: [UInt32] = []
    for _ in 0..<Int(input.byte() % 8) { cuts.append(UInt32(input.integer(UInt16.self))) }
    let writableLast = input.byte() == 0xFF
    var packet = input.rest()
    if fixChecksum && packet.count > VirtioNetHeader.size {
        var frame = Array(packet[VirtioNetHeader.size...])
        fixIPv4Checksum(&frame)
        packet = Array(packet[..<VirtioNetHeader.size]) + frame
    }
    FuzzGuest.poke(packet, at: base)
    // Buffers: consecutive pieces of [base, base + count), cut at the input's lengths.
    var buffers: [DescriptorBuffer] = []
    var offset: UInt64 = 0
    for cut in cuts where offset < UInt64(packet.count) {
        let length = min(UInt64(cut), UInt64(packet.count) - offset)
        buffers.append(DescriptorBuffer(address: GuestAddress(base &+ offset), length: UInt32(length)))
        offset += length
    }
    if offset < UInt64(packet.count) {
        buffers.append(DescriptorBuffer(address: GuestAddress(base &+ offset), length: UInt32(UInt64(packet.count) - offset)))
    }
    // The walker only passes chains inside RAM; keep to those unless the mode asks otherwise.
    guard buffers.allSatisfy({ FuzzGuest.isInside($0.address, length: UInt64($0.length), writable: false) }) else { return }
    let chain = DescriptorChain(head: 0, readable: writableLast ? Array(buffers.dropLast()) : buffers,
                                writable: writableLast ? Array(buffers.suffix(1)) : [])
    var failures = 0
    model.onFailure = { _ in failures += 1 }
    let used = model.transmit(chain, memory: memory, features: negotiated)
    fuzzCheck(used == 0, "transmit used length \(used)")
    for sent in backend.sent {
        fuzzCheck(sent.count == packet.count, "sent \(sent.count) bytes of a \(packet.count)-byte packet")
        fuzzCheck(sent[10] == 0 && sent[11] == 0, "num_buffers not zeroed")
        fuzzCheck(sent[VirtioNetHeader.size...] == packet[VirtioNetHeader.size...], "frame changed on the way to the tap")
    }
    for frame in model.localFrames { checkReply(frame, responder: model.dhcp!) }
    fuzzCheck(backend.sent.count + model.localFrames.count + failures == 1, "a packet went nowhere or twice")
}

// MARK: Mode 3

private func fuzzReceive(_ input: inout FuzzInput) {
    FuzzGuest.wipe()
    let memory = FuzzGuest.memory
    var negotiated = features(&input)
    if input.bool() { negotiated |= VirtioFeature.eventIndex }
    let size: UInt16 = 1 << (input.byte() % 6)   // 1...32
    let backend = FuzzBackend()
    let offloads = NetOffloads(rawValue: negotiated & NetOffloads.all.rawValue)
    guard let model = try? NetDeviceModel(mac: clientMAC, offloads: offloads, backend: backend),
          var driver = try? VirtqueueDriver(memory: memory, base: GuestAddress(0x2_0000), size: size),
          let configuration = try? driver.configuration() else { return }
    var queue = SplitVirtqueue(configuration: configuration, memory: memory, features: negotiated)
    // Receive chains: buffers anywhere (RAM, the hole, the read-only slot, the rings).
    let rings = 0x2_0000..<(0x2_0000 + VirtqueueDriver.footprint(size: size))
    var buffersOverlapRings = false
    for _ in 0..<Int(input.byte() % (UInt8(size) + 1)) {
        var buffers: [VirtqueueDriver.Buffer] = []
        for _ in 0..<Int(input.byte() % 4) + 1 {
            let address = FuzzGuest.address(input.integer())
            let length = UInt32(input.integer(UInt16.self))
            if address < rings.upperBound && address &+ UInt64(length) > rings.lowerBound { buffersOverlapRings = true }
            buffers.append(.init(address: GuestAddress(address), length: length, writable: input.byte() != 0))
        }
        guard let head = try? driver.add(buffers) else { break }
        try? driver.makeAvailable(head: head)
    }
    try? driver.publish()
    // Packets from the tap (header + frame) and local frames.
    for _ in 0..<Int(input.byte() % 4) {
        model.enqueueLocalFrame(input.bytes(Int(input.integer(UInt16.self) % 2048)))
    }
    while !input.isEmpty {
        backend.incoming.append(input.bytes(Int(input.integer(UInt16.self))))
    }
    for _ in 0..<3 {
        guard (try? model.receive(queue: &queue, memory: memory, features: negotiated, readTap: true, budget: 8)) != nil else { break }
    }
    // Every used element names a chain, unless the guest gave buffers over its own rings
    // (then the packet data lands in the used ring, the guest's own doing).
    while !buffersOverlapRings, let element = try? driver.popUsed() {
        fuzzCheck(element.id < UInt32(size), "used id \(element.id) out of range")
    }
}

// MARK: Control queue (bit 6)

private func fuzzControl(_ input: inout FuzzInput) {
    FuzzGuest.wipe()
    let memory = FuzzGuest.memory
    let pairs = 2 + Int(input.byte() % 3)
    var negotiated = VirtioFeature.version1 | (input.bool() ? VirtioFeature.eventIndex : 0)
    switch input.byte() % 4 {
    case 0: negotiated |= VirtioNetFeature.controlQueue | VirtioNetFeature.multiqueue
    case 1: negotiated |= VirtioNetFeature.controlQueue
    case 2: negotiated |= VirtioNetFeature.multiqueue  // refused at activation
    default: break
    }
    let size: UInt16 = 1 << (input.byte() % 5)   // 1...16
    guard let models = try? (0..<pairs).map({ _ in try NetDeviceModel(mac: clientMAC, backend: FuzzBackend()) }) else { return }
    let device = NetVirtioDevice(pairs: models, guestLog: RateLimitedLog(logger: .init(label: "fuzz")), resumeTap: { _ in })
    var attachedByTap = [true] + Array(repeating: false, count: pairs - 1)
    device.setTapQueueAttached = { pair, attached in
        fuzzCheck(attachedByTap[pair] != attached, "tap queue \(pair) set to what it was")
        attachedByTap[pair] = attached
    }
    let layout = NetQueueLayout(pairs: pairs)
    let controlIndex = negotiated & VirtioNetFeature.multiqueue != 0 ? 2 * pairs : 2
    guard var driver = try? VirtqueueDriver(memory: memory, base: GuestAddress(0x2_0000), size: size),
          let configuration = try? driver.configuration() else { return }
    var queues = [SplitVirtqueue?](repeating: nil, count: layout.queueCount)
    queues[controlIndex] = SplitVirtqueue(configuration: configuration, memory: memory, features: negotiated)
    guard let calls = try? (0..<layout.queueCount).map({ _ in try FileDescriptor.eventFD() }) else { return }
    let active = ActiveQueues(memory: memory, features: negotiated, queues: queues, calls: calls, polling: false)
    do {
        try device.activate(features: negotiated, queues: active)
    } catch {
        fuzzCheck(negotiated & VirtioNetFeature.controlQueue == 0, "activation refused with CTRL_VQ: \(error)")
        return
    }
    // Control chains: a command's bytes (written where its readable buffers are) and buffers anywhere.
    let rings = 0x2_0000..<(0x2_0000 + VirtqueueDriver.footprint(size: size))
    var buffersOverlapRings = false
    for _ in 0..<Int(input.byte() % (UInt8(size) + 1)) {
        var buffers: [VirtqueueDriver.Buffer] = []
        for _ in 0..<Int(input.byte() % 3) + 1 {
            let address = FuzzGuest.address(input.integer())
            let writable = input.byte() & 1 != 0
            let content = writable ? [] : input.bytes(Int(input.byte() % 8))
            let length = writable ? UInt32(input.byte() % 4) : UInt32(content.count)
            if address < rings.upperBound && address &+ UInt64(length) > rings.lowerBound { buffersOverlapRings = true }
            FuzzGuest.poke(content, at: address)
            buffers.append(.init(address: GuestAddress(address), length: length, writable: writable))
        }
        guard let head = try? driver.add(buffers) else { break }
        try? driver.makeAvailable(head: head)
    }
    try? driver.publish()
    try? device.queueNotified(controlIndex)
    fuzzCheck((1...pairs).contains(device.pairsInUse), "\(device.pairsInUse) pairs in use of \(pairs)")
    fuzzCheck(device.attached == (0..<pairs).map { $0 < device.pairsInUse }, "tap queues \(device.attached) for \(device.pairsInUse) pairs")
    fuzzCheck(attachedByTap == device.attached, "the device's view of its tap queues is not the tap's")
    if negotiated & VirtioNetFeature.multiqueue == 0 { fuzzCheck(device.pairsInUse == 1, "pairs in use without MQ") }
    while !buffersOverlapRings, let element = try? driver.popUsed() {
        fuzzCheck(element.id < UInt32(size), "used id \(element.id) out of range")
        fuzzCheck(element.length <= 1, "a control chain used with \(element.length) bytes")
    }
}

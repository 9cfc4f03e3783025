import Glibc
import XCTest
@testable import IPC
@testable import LinuxSystem
@testable import MemorySlots

final class IPCFramingTests: XCTestCase {
    func testMessageRoundTripWithDescriptors() throws {
        let (a, b) = try Channel.pair()
        let memfd = try MemorySlot(SlotDescriptor(guestBase: GuestAddress(0), size: 0x1000), name: "ipc-test").memfd
        let slots = [SlotDescriptor(guestBase: GuestAddress(0x1000), size: 0x2000, access: .readOnly)]
        try a.send(VMCommand.shareMemory(slots: slots, memfds: [memfd]))
        guard case .shareMemory(let got, let fds) = try b.receive(VMCommand.self) else { return XCTFail("wrong message") }
        XCTAssertEqual(got, slots)
        XCTAssertEqual(fds.count, 1)
        XCTAssertNotEqual(fds[0].rawValue, memfd.rawValue, "a new descriptor for the same file")
        XCTAssertEqual(try fds[0].fileSize(), 0x1000)

        try b.send(VMEvent.ended(.failed("reason ✓")))
        XCTAssertEqual(try a.receive(VMEvent.self), .ended(.failed("reason ✓")))
    }

    func testKVMTravelsAloneRightAfterTheRAM() throws {
        // vm makes the KVM VM as soon as it has RAM and /dev/kvm, before the boot request.
        let (a, b) = try Channel.pair()
        let device = try MemorySlot(SlotDescriptor(guestBase: GuestAddress(0), size: 0x3000), name: "ipc-kvm").memfd
        try a.send(VMCommand.kvm(device))
        guard case .kvm(let got) = try b.receive(VMCommand.self) else { return XCTFail("wrong message") }
        XCTAssertNotEqual(got.rawValue, device.rawValue, "a new descriptor for the same file")
        XCTAssertEqual(try got.fileSize(), 0x3000)
    }

    func testGarbageIsRejected() throws {
        let (a, b) = try Channel.pair()
        try a.sendRaw(Array("hello, this is not a frame".utf8))
        XCTAssertThrowsError(try b.receive(VMCommand.self)) { XCTAssertEqual($0 as? IPCError, .badMagic(0x6C6C_6568)) }
        // The channel still works afterwards.
        try a.send(VMCommand.stop)
        guard case .stop = try b.receive(VMCommand.self) else { return XCTFail("expected stop") }
    }

    func testUnknownTagAndBadFieldsAreRejected() throws {
        var frame = header(tag: 99, descriptors: 0, payloadLength: 0)
        XCTAssertThrowsError(try IPCFrame.decode(VMCommand.self, bytes: frame, descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .unknownTag(99))
        }
        // A guest end kind that does not exist.
        frame = header(tag: 2, descriptors: 0, payloadLength: 1) + [42]
        XCTAssertThrowsError(try IPCFrame.decode(VMEvent.self, bytes: frame, descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .malformed("guest end kind 42"))
        }
        // A slot count beyond the limit is refused before anything is allocated.
        frame = header(tag: 1, descriptors: 0, payloadLength: 4) + [0xFF, 0xFF, 0xFF, 0x7F]
        XCTAssertThrowsError(try IPCFrame.decode(VMCommand.self, bytes: frame, descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .malformed("count 2147483647 exceeds 8"))
        }
        // Trailing bytes after a complete message.
        frame = header(tag: 3, descriptors: 0, payloadLength: 2) + [0, 0]
        XCTAssertThrowsError(try IPCFrame.decode(VMCommand.self, bytes: frame, descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .malformed("2 trailing bytes"))
        }
    }

    func testTruncatedFramesAreRejected() throws {
        XCTAssertThrowsError(try IPCFrame.decode(VMCommand.self, bytes: [0x56, 0x4D], descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .truncated(expected: 12, got: 2))
        }
        // Header promises 100 payload bytes; 10 arrive.
        let frame = header(tag: 2, descriptors: 0, payloadLength: 100) + [UInt8](repeating: 0, count: 10)
        XCTAssertThrowsError(try IPCFrame.decode(VMCommand.self, bytes: frame, descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .truncated(expected: 112, got: 22))
        }
        // A payload that ends inside a field: boot's name length says 50 bytes, none follow.
        let short = header(tag: 2, descriptors: 0, payloadLength: 4) + [50, 0, 0, 0]
        XCTAssertThrowsError(try IPCFrame.decode(VMCommand.self, bytes: short, descriptors: [])) {
            XCTAssertEqual($0 as? IPCError, .malformed("payload ends inside an array"))
        }
    }

    func testOversizedFrameIsRejected() throws {
        let (a, b) = try Channel.pair()
        // SOCK_SEQPACKET keeps the datagram whole; the receiver sees it is too large.
        var size: Int32 = 1 << 20
        setsockopt(a.socket.rawValue, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(b.socket.rawValue, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        try a.sendRaw(header(tag: 3, descriptors: 0, payloadLength: 0) + [UInt8](repeating: 7, count: IPCFrame.maximumSize))
        XCTAssertThrowsError(try b.receive(VMCommand.self)) {
            guard case .oversized = $0 as? IPCError else { return XCTFail("expected oversized, got \($0)") }
        }
    }

    func testDescriptorCountMustMatch() throws {
        let (a, b) = try Channel.pair()
        let extra = try FileDescriptor.eventFD()
        // A stop message that smuggles a descriptor: refused, and the descriptor is closed, not leaked.
        try a.sendRaw(header(tag: 3, descriptors: 0, payloadLength: 0), descriptors: [extra.rawValue])
        let openBefore = try openDescriptorCount()
        XCTAssertThrowsError(try b.receive(VMCommand.self)) { XCTAssertEqual($0 as? IPCError, .unexpectedDescriptors(1)) }
        XCTAssertEqual(try openDescriptorCount(), openBefore, "the received descriptor was closed")
        // A shareMemory that promises a memfd but carries none.
        var payload = WireWriter()
        payload.write(UInt32(1)); payload.write(UInt64(0)); payload.write(UInt64(0x1000)); payload.write(UInt8(3))
        try a.sendRaw(header(tag: 1, descriptors: 1, payloadLength: payload.bytes.count) + payload.bytes)
        XCTAssertThrowsError(try b.receive(VMCommand.self)) { XCTAssertEqual($0 as? IPCError, .missingDescriptors) }
    }

    func testPeerClosingIsReported() throws {
        var (a, b): (Channel?, Channel) = try Channel.pair()
        a = nil
        XCTAssertNil(a)
        XCTAssertThrowsError(try b.receive(VMCommand.self)) { XCTAssertEqual($0 as? IPCError, .peerClosed) }
    }

    private func header(tag: UInt16, descriptors: UInt16, payloadLength: Int) -> [UInt8] {
        var writer = WireWriter()
        writer.write(IPCFrame.magic)
        writer.write(tag)
        writer.write(descriptors)
        writer.write(UInt32(payloadLength))
        return writer.bytes
    }

    private func openDescriptorCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }
}

extension IPCFramingTests {
    /// The attachment carries the device's declared shape to vm; a shape with no queues,
    /// or more than a transport takes, is refused as malformed.
    func testAnAttachmentCarriesItsShapeAndAbsurdQueueCountsAreRefused() throws {
        let (a, b) = try Channel.pair()
        let shape = DeviceShape(type: .network, queueCount: 2, maximumQueueSize: 256)
        let wiring = { DeviceWiring(transport: try FileDescriptor.eventFD(), events: try FileDescriptor.eventFD(),
                                    kicks: try (0..<2).map { _ in try FileDescriptor.eventFD() },
                                    calls: try (0..<2).map { _ in try FileDescriptor.eventFD() }) }
        try a.send(VMCommand.attachDevice(VirtioAttachment(shape: shape, name: "net0"), wiring: try wiring()))
        guard case .attachDevice(let attachment, _) = try b.receive(VMCommand.self) else { return XCTFail("wrong message") }
        XCTAssertEqual(attachment, VirtioAttachment(shape: shape, name: "net0"))
        for count: UInt16 in [0, 65] {
            try a.send(VMCommand.attachDevice(VirtioAttachment(shape: DeviceShape(type: .block, queueCount: count, maximumQueueSize: 256),
                                                               name: "disk0"), wiring: try wiring()))
            XCTAssertThrowsError(try b.receive(VMCommand.self)) { XCTAssertEqual($0 as? IPCError, .malformed("\(count) queues")) }
        }
    }
}

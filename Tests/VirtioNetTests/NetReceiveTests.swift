import XCTest
@testable import MemorySlots
@testable import NetDevice
@testable import VirtioTestSupport

/// The receive queue over real rings: packets from the backend land in the driver's buffers
/// with the right header, used lengths and num_buffers, and nothing is read without room.
final class NetReceiveTests: XCTestCase {
    private func tapPacket(_ frame: [UInt8], header: VirtioNetHeader = VirtioNetHeader()) -> [UInt8] {
        header.bytes + frame
    }

    func testSingleBuffersWithoutMergeable() throws {
        let rig = try NetRig()
        let chains = try rig.postReceive([[1526], [10, 1516]])
        let first = ethernetFrame(1514, seed: 1)
        let second = ethernetFrame(60, seed: 2)
        // The tap leaves num_buffers alone; the device must set it.
        rig.backend.incoming = [tapPacket(first, header: VirtioNetHeader(bufferCount: 0x7777)), tapPacket(second)]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers, "every buffer used: wait for more before reading the tap")
        let used = try rig.usedReceive()
        XCTAssertEqual(used.map(\.length), [1526, 72])
        XCTAssertEqual(try rig.bytes(of: chains[0], count: 1526), VirtioNetHeader(bufferCount: 1).bytes + first)
        XCTAssertEqual(try rig.bytes(of: chains[1], count: 72), VirtioNetHeader(bufferCount: 1).bytes + second,
                       "header split over two descriptors")
        let after = GuestAddress(chains[1][1].address.value + 62)
        XCTAssertEqual(try rig.memory.read(UInt8.self, at: after), 0xEE, "nothing written past the packet")
        XCTAssertEqual(rig.model.counters.rxPackets, 2)
        XCTAssertEqual(rig.model.counters.rxBytes, 1574)
        XCTAssertEqual(rig.calls[0].drainEvent(), 1, "one interrupt for the batch")
    }

    func testTooLargePacketIsDroppedAndTheBufferReused() throws {
        let rig = try NetRig()
        let chains = try rig.postReceive([[1526]])
        rig.backend.incoming = [tapPacket(ethernetFrame(1515)), tapPacket(ethernetFrame(100, seed: 5))]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(rig.model.counters.rxDropped.truncated, 1)
        XCTAssertEqual(try rig.usedReceive().map(\.length), [112])
        XCTAssertEqual(try rig.bytes(of: chains[0], count: 112), VirtioNetHeader(bufferCount: 1).bytes + ethernetFrame(100, seed: 5))
    }

    func testMergeableBuffersSetNumBuffersAndUsedLengths() throws {
        let rig = try NetRig(features: VirtioNetFeature.mergeableReceiveBuffers | VirtioNetFeature.guestChecksum
            | VirtioNetFeature.guestTSO4)
        // 43 × 1536 = 66048 ≥ 65562: the device reads only with room for the largest packet.
        let chains = try rig.postReceive(Array(repeating: [1536], count: 43))
        let big = ethernetFrame(4000, seed: 7)
        let gso = VirtioNetHeader(flags: 1, gsoType: 1, headerLength: 54, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        rig.backend.incoming = [tapPacket(big, header: gso), tapPacket(ethernetFrame(100, seed: 8))]
        // The second packet needs 65562 bytes of room again: 40 chains are left, so it waits.
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(rig.backend.incoming.count, 1, "not read without room")
        var used = try rig.usedReceive()
        XCTAssertEqual(used.map(\.length), [1536, 1536, 4012 - 3072])
        XCTAssertEqual(used.map(\.id), try (0..<3).map { UInt32(try XCTUnwrap(rig.receiveHead(of: chains[$0]))) })
        var expectedHeader = gso
        expectedHeader.bufferCount = 3
        let received = try rig.bytes(of: chains[0], count: 1536) + rig.bytes(of: chains[1], count: 1536)
            + rig.bytes(of: chains[2], count: 940)
        XCTAssertEqual(received, expectedHeader.bytes + big)

        // Three more buffers: room again, and the small packet takes one chain.
        let more = try rig.postReceive(Array(repeating: [1536], count: 3))
        XCTAssertEqual(rig.resumeCount, 1, "the kick on the receive queue resumes the tap")
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        used = try rig.usedReceive()
        XCTAssertEqual(used.map(\.length), [112])
        XCTAssertEqual(try rig.bytes(of: chains[3], count: 112), VirtioNetHeader(bufferCount: 1).bytes + ethernetFrame(100, seed: 8))
        XCTAssertEqual(rig.model.heldReceiveBuffers.count, 42, "the rest stays held for the next packet")
        _ = more
    }

    /// A USO packet from the tap (a host sender's UDP_SEGMENT) reaches a driver that took both
    /// GUEST_USO bits whole, with its header, once 65562 bytes of room are posted; one that took
    /// only GUEST_USO4 never gets one (the tap would not send it; if it did, it is dropped).
    func testUSOPacketsReachOnlyADriverThatTookBothGuestUSOBits() throws {
        let uso = VirtioNetHeader(flags: 1, gsoType: 5, headerLength: 42, gsoSize: 1472, checksumStart: 34, checksumOffset: 6)
        let big = ethernetFrame(5000, seed: 9)  // with its header: 5012 bytes, four 1536-byte buffers
        let both = try NetRig(features: VirtioNetFeature.mergeableReceiveBuffers | VirtioNetFeature.guestChecksum
            | VirtioNetFeature.guestUSO4 | VirtioNetFeature.guestUSO6)
        let chains = try both.postReceive(Array(repeating: [1536], count: 43))
        both.backend.incoming = [tapPacket(big, header: uso)]
        XCTAssertEqual(try both.device.tapReadable(), .outOfBuffers)
        let used = try both.usedReceive()
        XCTAssertEqual(big.count, 5000)
        XCTAssertEqual(used.map(\.length), [1536, 1536, 1536, 404])
        var expectedHeader = uso
        expectedHeader.bufferCount = 4
        var received: [UInt8] = []
        for (index, element) in used.enumerated() { received += try both.bytes(of: chains[index], count: Int(element.length)) }
        XCTAssertEqual(received, expectedHeader.bytes + big)

        let one = try NetRig(features: VirtioNetFeature.mergeableReceiveBuffers | VirtioNetFeature.guestChecksum
            | VirtioNetFeature.guestUSO4)
        _ = try one.postReceive(Array(repeating: [1536], count: 43))
        one.backend.incoming = [tapPacket(big, header: uso)]
        XCTAssertEqual(try one.device.tapReadable(), .tapDrained, "read, dropped, and every buffer still there")
        XCTAssertEqual(try one.usedReceive().count, 0)
        XCTAssertEqual(one.model.counters.rxDropped.offloadNotNegotiated, 1)
    }

    func testWithoutGuestTSOOneSmallPacketsWorthOfRoomIsEnough() throws {
        let rig = try NetRig(features: VirtioNetFeature.mergeableReceiveBuffers)
        let chains = try rig.postReceive([[1024], [1024]])
        let frame = ethernetFrame(1500, seed: 4)
        rig.backend.incoming = [tapPacket(frame)]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(try rig.usedReceive().map(\.length), [1024, 488])
        XCTAssertEqual(try rig.bytes(of: chains[0], count: 1024) + rig.bytes(of: chains[1], count: 488),
                       VirtioNetHeader(bufferCount: 2).bytes + frame)
    }

    func testBackPressureNothingIsReadWithoutBuffers() throws {
        let rig = try NetRig()
        rig.backend.incoming = [tapPacket(ethernetFrame(60)), tapPacket(ethernetFrame(61)), tapPacket(ethernetFrame(62))]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(rig.backend.readCalls, 0)
        XCTAssertTrue(rig.device.waitingForBuffers[0])

        try rig.postReceive([[1526]])
        XCTAssertEqual(rig.resumeCount, 1)
        XCTAssertFalse(rig.device.waitingForBuffers[0])
        // One buffer for three packets: one is moved, the others wait in the tap.
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(rig.backend.incoming.count, 2)
        XCTAssertEqual(rig.backend.readCalls, 1)
        XCTAssertEqual(try rig.usedReceive().map(\.length), [72])
        XCTAssertEqual(try rig.receive.availableEvent(), 1, "EVENT_IDX: the device asked for a kick at the next buffer")
        try rig.postReceive([[1526], [1526]])
        XCTAssertEqual(rig.resumeCount, 2)
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers, "two more packets, two more buffers, then none")
        XCTAssertEqual(try rig.usedReceive().map(\.length), [73, 74])
        try rig.postReceive([[1526]])
        XCTAssertEqual(try rig.device.tapReadable(), .tapDrained)
        XCTAssertEqual(rig.backend.readCalls, 4)
    }

    func testOffloadTheGuestDidNotNegotiateIsDropped() throws {
        let rig = try NetRig(features: VirtioNetFeature.guestChecksum)
        let chains = try rig.postReceive([[65562]])
        let gso = VirtioNetHeader(flags: 1, gsoType: 1, headerLength: 54, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        rig.backend.incoming = [tapPacket(ethernetFrame(3000), header: gso), tapPacket(ethernetFrame(60))]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(rig.model.counters.rxDropped.offloadNotNegotiated, 1)
        XCTAssertEqual(try rig.usedReceive().map(\.length), [72])
        XCTAssertEqual(try rig.bytes(of: chains[0], count: 12), VirtioNetHeader(bufferCount: 1).bytes)
    }

    func testUnusableReceiveChainsAreReturnedEmpty() throws {
        let rig = try NetRig()
        // Too small for the header, then one with a readable buffer, then a good one.
        try rig.postReceive([[8]], kick: false)
        try rig.receive.add([.init(address: try rig.place([1, 2, 3]), length: 3, writable: false),
                             .init(address: try rig.place([UInt8](repeating: 0, count: 1526)), length: 1526, writable: true)])
        let good = try rig.postReceive([[1526]], kick: false)
        rig.backend.incoming = [tapPacket(ethernetFrame(80))]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(try rig.usedReceive().map(\.length), [0, 0, 92])
        XCTAssertEqual(rig.model.counters.rxUnusableBuffers, 2)
        XCTAssertEqual(try rig.bytes(of: good[0], count: 92), VirtioNetHeader(bufferCount: 1).bytes + ethernetFrame(80))
    }

    func testBudgetBoundsOnePass() throws {
        let rig = try NetRig()
        try rig.postReceive(Array(repeating: [1526], count: 70))
        rig.backend.incoming = (0..<70).map { _ in tapPacket(ethernetFrame(60)) }
        XCTAssertEqual(try rig.device.tapReadable(), .budgetSpent)
        XCTAssertEqual(try rig.usedReceive().count, NetDeviceModel.receiveBudget)
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(try rig.usedReceive().count, 70 - NetDeviceModel.receiveBudget)
    }

    func testNotActivatedMeansStopWatchingUntilResumed() throws {
        let rig = try NetRig()
        rig.device.reset()
        rig.backend.incoming = [tapPacket(ethernetFrame(60))]
        XCTAssertEqual(try rig.device.tapReadable(), .outOfBuffers)
        XCTAssertEqual(rig.backend.readCalls, 0)
    }
}

extension NetRig {
    /// The descriptor head the driver gave a chain, found from its first buffer's address.
    func receiveHead(of buffers: [VirtqueueDriver.Buffer]) throws -> UInt16? {
        for index in 0..<receive.size {
            let address = try memory.read(UInt64.self, at: GuestAddress(receive.descriptorTable.value + 16 * UInt64(index)))
            if address == buffers[0].address.value { return index }
        }
        return nil
    }
}

import XCTest
@testable import MemorySlots
@testable import NetDevice
@testable import VirtioCore
@testable import VirtioTestSupport

/// The transmit queue over real rings: packets reach the backend intact, bad chains are
/// dropped and counted, and the queue goes on.
final class NetTransmitTests: XCTestCase {
    func testGoodChainReachesTheBackendIntact() throws {
        let rig = try NetRig(features: VirtioNetFeature.checksum)
        let header = VirtioNetHeader(flags: 1, checksumStart: 34, checksumOffset: 16, bufferCount: 7).bytes
        let frame = ethernetFrame(1514, seed: 3)
        // Header split across two descriptors, frame across three.
        let head = try rig.send([Array(header[0..<5]), Array(header[5...]) + Array(frame[0..<100]),
                                 Array(frame[100..<1000]), Array(frame[1000...])])
        var expectedHeader = header
        expectedHeader[10] = 0  // num_buffers: the tap gets zero whatever the driver wrote
        XCTAssertEqual(rig.backend.sent, [expectedHeader + frame])
        XCTAssertEqual(try rig.usedTransmit(), [.init(id: UInt32(head), length: 0)])
        XCTAssertEqual(rig.model.counters.txPackets, 1)
        XCTAssertEqual(rig.model.counters.txBytes, 1514)
        XCTAssertEqual(rig.model.counters.txDropped, NetTransmitDrops())
        XCTAssertGreaterThan(rig.calls[1].drainEvent(), 0, "the driver is told the chain is done")
    }

    func testLargestPacketIsSentAndOneByteMoreIsDropped() throws {
        let rig = try NetRig()
        try rig.send([VirtioNetHeader().bytes, ethernetFrame(NetDeviceModel.maximumFrameLength)])
        try rig.send([VirtioNetHeader().bytes, ethernetFrame(NetDeviceModel.maximumFrameLength + 1)])
        XCTAssertEqual(rig.backend.sent.map(\.count), [65562])
        XCTAssertEqual(rig.model.counters.txDropped.tooLong, 1)
        XCTAssertEqual(try rig.usedTransmit().map(\.length), [0, 0])
    }

    func testMalformedChainsAreDroppedCountedAndTheNextOneIsSent() throws {
        let rig = try NetRig(features: VirtioFeature.indirectDescriptors)
        // Shorter than the header.
        try rig.send([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], kick: false)
        // A frame shorter than an Ethernet header.
        try rig.send([VirtioNetHeader().bytes + [1, 2, 3]], kick: false)
        // A writable buffer in a transmit chain.
        let good = VirtioNetHeader().bytes + ethernetFrame(64)
        try rig.transmit.add([.init(address: try rig.place(good), length: UInt32(good.count), writable: false),
                              .init(address: try rig.place([0, 0]), length: 2, writable: true)])
        // A buffer outside guest RAM: the walker refuses the chain.
        try rig.transmit.add([.init(address: GuestAddress(NetRig.ramSize - 16), length: 100, writable: false)])
        // NEEDS_CSUM without VIRTIO_NET_F_CSUM, and GSO without HOST_TSO.
        try rig.send([VirtioNetHeader(flags: 1, checksumStart: 14, checksumOffset: 6).bytes + ethernetFrame(64)], kick: false)
        try rig.send([VirtioNetHeader(flags: 1, gsoType: 1, gsoSize: 1000).bytes + ethernetFrame(64)], kick: false)
        // More pieces than writev takes (an indirect table of 1100 one-byte buffers).
        let tiny = try (0..<1100).map { _ in VirtqueueDriver.Buffer(address: try rig.place([0x41]), length: 1, writable: false) }
        try rig.transmit.add(indirect: tiny, tableAt: GuestAddress(0x40_0000))
        // And then a good one.
        let last = VirtioNetHeader().bytes + ethernetFrame(200, seed: 9)
        try rig.send([last])

        XCTAssertEqual(rig.backend.sent, [last])
        let drops = rig.model.counters.txDropped
        XCTAssertEqual(drops.shorterThanHeader, 1)
        XCTAssertEqual(drops.runt, 1)
        XCTAssertEqual(drops.writableBuffers, 1)
        XCTAssertEqual(drops.malformedChain, 1)
        XCTAssertEqual(drops.badHeader, 2)
        XCTAssertEqual(drops.tooManySegments, 1)
        XCTAssertEqual(drops.total, 7)
        XCTAssertEqual(rig.model.counters.txPackets, 1)
        let used = try rig.usedTransmit()
        XCTAssertEqual(used.count, 8, "every chain is returned")
        XCTAssertTrue(used.allSatisfy { $0.length == 0 })
    }

    func testBackendRefusalIsCountedAndTheQueueGoesOn() throws {
        let rig = try NetRig()
        rig.backend.writeResult = .wouldBlock
        try rig.send([VirtioNetHeader().bytes + ethernetFrame(60)])
        rig.backend.writeResult = nil
        try rig.send([VirtioNetHeader().bytes + ethernetFrame(61)])
        XCTAssertEqual(rig.model.counters.txDropped.backendBusy, 1)
        XCTAssertEqual(rig.backend.sent.map(\.count), [12 + 61])
        XCTAssertEqual(try rig.usedTransmit().count, 2)
    }
}

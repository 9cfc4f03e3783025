import XCTest
import IPC
@testable import LinuxSystem
@testable import NetDevice
@testable import VirtioCore
@testable import VirtioTestSupport

/// `interface { bandwidth; packets }`: each direction held to its buckets, on a clock the
/// test moves; what is held back stays on the ring or in the tap.
final class NetRateLimitTests: XCTestCase {
    private var now: UInt64 = 0
    private let millisecond: UInt64 = 1_000_000

    func testTransmitStopsAtTheLimitAndAsksToBeServedAgain() throws {
        let rig = try NetRig()
        rig.device.transmitLimiter = RateLimiter(RateLimit(operations: .init(rate: 10, burst: 3)), clock: { [unowned self] in now })
        var retries: [(Int, Double)] = []
        rig.device.serveAgain = { retries.append(($0, $1)) }
        let page = try CounterPage.anonymous(slots: NetCounter.pageSlots)
        rig.device.counterPage = page
        for seed in 1...6 { try rig.send([[UInt8](repeating: 0, count: 12), ethernetFrame(60, seed: UInt8(seed))], kick: false) }
        try rig.device.queueNotified(NetDeviceModel.transmitQueue)
        XCTAssertEqual(rig.backend.sent.count, 3, "the burst goes, the rest waits on the ring")
        XCTAssertEqual(try rig.usedTransmit().count, 3)
        XCTAssertEqual(retries.count, 1)
        XCTAssertEqual(retries.first?.0, NetDeviceModel.transmitQueue)
        XCTAssertEqual(retries.first?.1 ?? 0, 0.1, accuracy: 1e-6)
        XCTAssertEqual(page.load(NetCounter.txThrottled.slot), 1, "vmctl stats counts the hold-back")
        XCTAssertEqual(page.load(NetCounter.txPackets.slot), 3)
        // The timer fires 200 ms on: two more tokens, two more packets, in order.
        now = 200 * millisecond
        try rig.device.queueNotified(NetDeviceModel.transmitQueue)
        XCTAssertEqual(rig.backend.sent.count, 5)
        XCTAssertEqual(Array(rig.backend.sent[4].dropFirst(12)), ethernetFrame(60, seed: 5))
        XCTAssertEqual(retries.count, 2)
        now = 1_000 * millisecond
        try rig.device.queueNotified(NetDeviceModel.transmitQueue)
        XCTAssertEqual(rig.backend.sent.count, 6)
        XCTAssertEqual(retries.count, 2, "nothing left: no timer")
    }

    func testTransmitBandwidthCountsTheFrameBytes() throws {
        let rig = try NetRig()
        // 1000 bytes a second, burst 1000: a 600-byte frame goes, a second (balance 400) too, a third waits.
        rig.device.transmitLimiter = RateLimiter(RateLimit(bytes: .init(rate: 1000, burst: 1000)), clock: { [unowned self] in now })
        var retries: [Double] = []
        rig.device.serveAgain = { retries.append($1) }
        for _ in 1...3 { try rig.send([[UInt8](repeating: 0, count: 12), ethernetFrame(600)], kick: false) }
        try rig.device.queueNotified(NetDeviceModel.transmitQueue)
        XCTAssertEqual(rig.backend.sent.count, 2)
        // Balance 1000 - 1200 = -200: 201 bytes to wait for.
        XCTAssertEqual(retries.first ?? 0, 0.201, accuracy: 1e-6)
    }

    func testReceiveLeavesPacketsInTheTapWhileLimited() throws {
        let rig = try NetRig()
        rig.model.receiveLimiter = RateLimiter(RateLimit(operations: .init(rate: 20, burst: 2)), clock: { [unowned self] in now })
        rig.backend.incoming = (1...5).map { [UInt8](repeating: 0, count: 12) + ethernetFrame(100, seed: UInt8($0)) }
        try rig.postReceive(Array(repeating: [2048], count: 6))  // one to spare: the tap, not the ring, runs dry
        XCTAssertEqual(try rig.device.tapReadable(), .limited)
        XCTAssertEqual(try rig.usedReceive().count, 2)
        XCTAssertEqual(rig.backend.incoming.count, 3, "held back in the tap, not read")
        XCTAssertEqual(rig.device.secondsUntilReceiveAdmitted, 0.05, accuracy: 1e-6)
        now = 100 * millisecond
        XCTAssertEqual(try rig.device.tapReadable(), .limited)
        XCTAssertEqual(try rig.usedReceive().count, 2)
        now = 1_000 * millisecond
        XCTAssertEqual(try rig.device.tapReadable(), .tapDrained)
        XCTAssertEqual(try rig.usedReceive().count, 1)
        XCTAssertEqual(rig.model.counters.rxPackets, 5)
    }
}

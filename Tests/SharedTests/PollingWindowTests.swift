import XCTest
@testable import VirtioCore

final class PollingWindowTests: XCTestCase {
    func testOffWhenNoMaximumIsSet() {
        var window = PollingWindow(maximum: 0)
        window.sleeping(at: 1_000)
        window.kicked(at: 1_001)
        XCTAssertEqual(window.current, 0)
        var asked = 0
        XCTAssertFalse(window.poll { asked += 1; return true }, "no window: the ring is not even looked at")
        XCTAssertEqual(asked, 0)
    }

    func testKicksSoonAfterSleepingGrowTheWindowUpToTheMaximum() {
        var window = PollingWindow(maximum: 80_000)
        XCTAssertEqual(window.current, 0, "starts without polling")
        var now: UInt64 = 1_000_000
        var sizes: [UInt64] = []
        for _ in 0..<5 {
            window.sleeping(at: now)
            now += 5_000  // the next kick 5 µs later: polling would have caught it
            window.kicked(at: now)
            sizes.append(window.current)
        }
        XCTAssertEqual(sizes, [10_000, 20_000, 40_000, 80_000, 80_000])
    }

    func testQuietSpellsShrinkTheWindowToNothing() {
        var window = PollingWindow(maximum: 80_000)
        var now: UInt64 = 1_000_000
        for _ in 0..<4 {
            window.sleeping(at: now)
            now += 1_000
            window.kicked(at: now)
        }
        XCTAssertEqual(window.current, 80_000)
        var sizes: [UInt64] = []
        for _ in 0..<4 {
            window.sleeping(at: now)
            now += 1_000_000  // a millisecond of silence: polling would have been wasted
            window.kicked(at: now)
            sizes.append(window.current)
        }
        XCTAssertEqual(sizes, [40_000, 20_000, 10_000, 0], "at a sixteenth of the maximum it stops")
    }

    func testPollStopsAsSoonAsThereIsMore() {
        var window = PollingWindow(maximum: 1_000_000_000)
        window.sleeping(at: 0)
        window.kicked(at: 1)
        var asked = 0
        XCTAssertTrue(window.poll { asked += 1; return asked == 3 })
        XCTAssertEqual(asked, 3)
    }
}

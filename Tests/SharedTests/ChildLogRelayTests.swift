import Glibc
import XCTest
@testable import LinuxSystem

/// What a (possibly compromised) child writes to its log pipe reaches the host's log
/// only as whole, printable, tagged lines, at a bounded rate and severity.
final class ChildLogRelayTests: XCTestCase {
    func testLinesArePassedOnWithTheirPriority() {
        var relay = ChildLogRelay()
        let records = relay.feed(Array("<6>vm[1]: info: running\n<4>vm[1]: warning: slow\n".utf8), now: 0)
        XCTAssertEqual(records, [.init(priority: LOG_INFO, text: "vm[1]: info: running"),
                                 .init(priority: LOG_WARNING, text: "vm[1]: warning: slow")])
    }

    func testAPartialLineWaitsForItsNewlineAndIsFlushedAtTheEnd() {
        var relay = ChildLogRelay()
        XCTAssertEqual(relay.feed(Array("<6>first ha".utf8), now: 0), [])
        XCTAssertEqual(relay.feed(Array("lf\n<6>tail".utf8), now: 0), [.init(priority: LOG_INFO, text: "first half")])
        XCTAssertEqual(relay.finish(now: 0), [.init(priority: LOG_INFO, text: "tail")])
        XCTAssertEqual(relay.finish(now: 0), [], "nothing twice")
    }

    func testUnprefixedLinesAreErrorsAndNoChildIsMoreSevereThanThat() {
        var relay = ChildLogRelay()
        let records = relay.feed(Array("Fatal error: boom\n<0>emergency!\n<9>x\n<\n".utf8), now: 0)
        XCTAssertEqual(records.map(\.priority), [LOG_ERR, LOG_ERR, LOG_ERR, LOG_ERR])
        XCTAssertEqual(records.map(\.text), ["Fatal error: boom", "emergency!", "<9>x", "<"])
    }

    func testControlCharactersCannotForgeLinesOrEscapes() {
        var relay = ChildLogRelay()
        let records = relay.feed(Array("<6>a\rvmd[1]: root login\u{1B}[2J\u{7F}\tb\0c\n".utf8) + [0xFF, 0x0A], now: 0)
        XCTAssertEqual(records.map(\.text), ["a?vmd[1]: root login?[2J?\tb?c", "\u{FFFD}"])
    }

    func testLongLinesAreCutAndTheRestOfTheLineDropped() {
        var relay = ChildLogRelay()
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 10 * ChildLogRelay.maximumLineBytes)
        let records = relay.feed(Array("<6>".utf8) + long + Array("\n<6>next\n".utf8), now: 0)
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(records[0].text, String(repeating: "x", count: ChildLogRelay.maximumLineBytes - 3) + " [truncated]")
        XCTAssertEqual(records[1].text, "next")
    }

    func testAFloodIsCutToTheRateAndTheDropsAreCounted() {
        var relay = ChildLogRelay(burst: 5, perSecond: 2)
        let flood = Array(String(repeating: "<6>spam\n", count: 100).utf8)
        XCTAssertEqual(relay.feed(flood, now: 10).count, 5, "the burst, then nothing")
        // One second later: two tokens; the first record says how many were dropped.
        let later = relay.feed(flood, now: 11)
        XCTAssertEqual(later.first, .init(priority: LOG_WARNING, text: "(95 lines dropped: over 2 a second)"))
        XCTAssertEqual(later.dropFirst().map(\.text), ["spam", "spam"])
        XCTAssertEqual(relay.finish(now: 11), [.init(priority: LOG_WARNING, text: "(98 more lines dropped: over 2 a second)")])
    }

    func testTheBucketRefillsOnlyUpToItsBurst() {
        var limiter = LineRateLimiter(burst: 3, perSecond: 10)
        XCTAssertEqual((0..<5).map { _ in limiter.admit(now: 0) }, [true, true, true, false, false])
        XCTAssertEqual((0..<5).map { _ in limiter.admit(now: 100) }, [true, true, true, false, false], "a long quiet spell buys at most the burst")
        XCTAssertEqual((0..<3).map { _ in limiter.admit(now: 100.25) }, [true, true, false], "0.25 s at 10 a second: two tokens")
        XCTAssertFalse(limiter.admit(now: 99), "a clock that goes back gives nothing")
    }
}

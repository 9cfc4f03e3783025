import XCTest
@testable import LinuxSystem

/// Milliseconds as vmctl migrate and vmd print them (a tenth) and as vm logs its own
/// times (a hundredth).
final class MillisecondsTextTests: XCTestCase {
    func testMillisecondsArePrintedToATenth() {
        XCTAssertEqual(MillisecondsText.format(2.449, decimals: 1), "2.4")
        XCTAssertEqual(MillisecondsText.format(2.45, decimals: 1), "2.5")
        XCTAssertEqual(MillisecondsText.format(0.04, decimals: 1), "0.0")
        XCTAssertEqual(MillisecondsText.format(1234.56, decimals: 1), "1234.6")
        XCTAssertEqual(MillisecondsText.format(-3, decimals: 1), "0.0")
        XCTAssertEqual(MillisecondsText.format(18_446_744_073_709.6, decimals: 1), "18446744073709.6", "the largest a UInt64 of ns gives")
    }

    func testHundredthsKeepTheirLeadingZero() {
        XCTAssertEqual(MillisecondsText.format(0.49, decimals: 2), "0.49")
        XCTAssertEqual(MillisecondsText.format(10.66, decimals: 2), "10.66")
        XCTAssertEqual(MillisecondsText.format(3.05, decimals: 2), "3.05")
        XCTAssertEqual(MillisecondsText.format(2341.394, decimals: 2), "2341.39")
        XCTAssertEqual(MillisecondsText.format(7, decimals: 0), "7")
    }

    func testWhatNoClockGivesPrintsWithoutATrap() {
        XCTAssertEqual(MillisecondsText.format(.nan, decimals: 1), "0.0")
        XCTAssertEqual(MillisecondsText.format(.infinity, decimals: 2), "0.00")
        XCTAssertEqual(MillisecondsText.format(1e300, decimals: 1), "900000000000000000.0")
    }
}

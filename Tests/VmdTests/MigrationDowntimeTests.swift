import XCTest
@testable import VMDaemon

/// How long a migrated guest was down, as vmctl migrate prints it: from vm's word of when it
/// paused to the receiver's confirmation, both on the sender's monotonic clock.
final class MigrationDowntimeTests: XCTestCase {
    func testTheDowntimeRunsFromThePauseToTheConfirmation() {
        XCTAssertEqual(VMInstance.downtime(pausedAt: 5_000_000_000, confirmedAt: 5_002_450_000), 2.45)
        XCTAssertEqual(VMInstance.downtime(pausedAt: 7, confirmedAt: 7), 0)
    }

    func testAPauseVMSaysCameAfterTheConfirmationGivesNoFigure() {
        // vm is the process a guest could take over: a pause in the future is not believed.
        XCTAssertNil(VMInstance.downtime(pausedAt: 9_000_000_000, confirmedAt: 5_000_000_000))
        XCTAssertNil(VMInstance.downtime(pausedAt: .max, confirmedAt: 0))
    }

    func testMillisecondsArePrintedToATenth() {
        XCTAssertEqual(VMInstance.format(milliseconds: 2.449), "2.4")
        XCTAssertEqual(VMInstance.format(milliseconds: 2.45), "2.5")
        XCTAssertEqual(VMInstance.format(milliseconds: 0.04), "0.0")
        XCTAssertEqual(VMInstance.format(milliseconds: 1234.56), "1234.6")
        XCTAssertEqual(VMInstance.format(milliseconds: -3), "0.0")
        XCTAssertEqual(VMInstance.format(milliseconds: 18_446_744_073_709.6), "18446744073709.6", "the largest a UInt64 of ns gives")
    }
}

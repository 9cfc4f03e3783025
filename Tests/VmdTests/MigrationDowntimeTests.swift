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
}

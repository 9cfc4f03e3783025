import LinuxSystem
import XCTest
@testable import VMDaemon

/// The supervisor's reading of a child's death. The regression: a device that exited 0
/// (its vm closed their channel) used to get the vm killed at once, so the vm's report of
/// why the guest ended (a refused migration stream, a bad snapshot) could be lost and
/// the VM said "vm process killed by signal 9 without reporting" instead.
final class ChildExitVerdictTests: XCTestCase {
    func testACleanDeviceExitWaitsForTheVMWhileItRuns() {
        XCTAssertEqual(ChildExitVerdict.of(role: "virtio-blk disk0", isVM: false, .exited(0), vmReaped: false), .awaitVM)
    }

    func testACleanDeviceExitAfterTheVMIsGoneEndsTheRestWithoutAReason() {
        XCTAssertEqual(ChildExitVerdict.of(role: "virtio-net net0", isVM: false, .exited(0), vmReaped: true),
                       .killTheRest(reason: nil))
    }

    func testACrashedDeviceEndsTheVMAndIsTheReason() {
        XCTAssertEqual(ChildExitVerdict.of(role: "virtio-blk disk0", isVM: false, .signalled(SIGSEGV), vmReaped: false),
                       .killTheRest(reason: .deviceProcessDied(role: "virtio-blk disk0", .signalled(SIGSEGV))))
        XCTAssertEqual(ChildExitVerdict.of(role: "virtio-net net0", isVM: false, .exited(70), vmReaped: false),
                       .killTheRest(reason: .deviceProcessDied(role: "virtio-net net0", .exited(70))))
    }

    func testTheVMProcessGoneEndsTheRestWhateverItsStatus() {
        for termination in [ChildProcess.Termination.exited(0), .exited(70), .signalled(SIGKILL)] {
            XCTAssertEqual(ChildExitVerdict.of(role: "vm", isVM: true, termination, vmReaped: true),
                           .killTheRest(reason: .vmProcessDied(termination)))
        }
    }
}

import Foundation
import Glibc
import XCTest

/// A guest reboot restarts the VM with fresh RAM from the same configuration (issue 15):
/// the i8042 reset pulse, the ACPI reset register and a triple fault each do. The guest
/// kit's test=reset resets on every boot, so vmd restarts it until `RestartPolicy` says
/// no more; ACPI soft off ends the VM without a restart.
final class RebootTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private static let limit = 10  // RestartPolicy.limit

    private func bootUntilTheLimit(_ cmdline: String, end: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let vm = try VmdHarness("reboot")
        let run = try vm.run(config: try vm.writeConfig(cmdline: cmdline), arguments: ["--deadline", "60"], seconds: 70)
        XCTAssertTrue(run.stderr.contains("ended: \(end) after \(Self.limit) restarts within 60s; not restarted (restarted \(Self.limit) times)"),
                      run.stderr, file: file, line: line)
        // Every run printed on the same console: the first boot and one per restart.
        XCTAssertEqual(run.stdout.components(separatedBy: "READY").count - 1, Self.limit + 1, run.stdout, file: file, line: line)
        XCTAssertEqual(vm.vmProcesses(), [], file: file, line: line)
    }

    func testI8042ResetPulseRestartsTheVM() throws {
        try bootUntilTheLimit("test=reset via=i8042", end: "reset requested by the guest")
    }

    func testACPIResetRegisterRestartsTheVM() throws {
        try bootUntilTheLimit("test=reset via=acpi", end: "reset requested by the guest")
    }

    func testTripleFaultRestartsTheVM() throws {
        try bootUntilTheLimit("test=triple-fault", end: "triple fault")
    }

    func testACPISoftOffPowersOffWithoutRestart() throws {
        let vm = try VmdHarness("acpi-off")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=reset via=acpi-off"), arguments: ["--deadline", "30"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.hasSuffix("ended: powered off\n"), run.stderr)
        XCTAssertEqual(run.stdout.components(separatedBy: "READY").count - 1, 1, run.stdout)
    }

    func testNoRebootEndsTheVMAtTheFirstReset() throws {
        let vm = try VmdHarness("no-reboot")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=reset via=i8042"), arguments: ["--deadline", "30", "--no-reboot"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.hasSuffix("ended: reset requested by the guest\n"), run.stderr)
    }

    /// Under the daemon: the status counts restarts, and a guest that keeps rebooting
    /// is stopped with the reason shown; a console attached before stays attached.
    func testDaemonCountsRestartsAndShowsWhyItStopped() throws {
        let daemon = try DaemonHarness("restarts")
        let config = try daemon.writeGuestConfig("bouncer", cmdline: "test=reset via=acpi")
        let consoleOutput = daemon.directory.appendingPathComponent("console.out").path
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let console = daemon.start(["console", "bouncer"], stdout: consoleOutput)
        try console.run()
        XCTAssertTrue(daemon.eventually(60) { daemon.status()["bouncer"]?.state == "stopped" }, daemon.log)
        let row = daemon.status()["bouncer"]?.line ?? ""
        let fields = row.split(separator: " ", omittingEmptySubsequences: true)
        XCTAssertEqual(fields.count > 4 ? String(fields[4]) : "", String(Self.limit), "the RESTARTS column: \(row)")
        XCTAssertTrue(row.contains("(reset requested by the guest after \(Self.limit) restarts within 60s; not restarted)"), row)
        XCTAssertTrue(daemon.log.contains("restarted (restart 1)"), daemon.log)
        XCTAssertTrue(daemon.eventually { !console.isRunning }, "console ends when the VM stops")
        let seen = (try? String(contentsOfFile: consoleOutput, encoding: .utf8)) ?? ""
        XCTAssertGreaterThan(seen.components(separatedBy: "info reset via=acpi").count - 1, 1, "the console stayed attached across restarts: \(seen)")
    }
}

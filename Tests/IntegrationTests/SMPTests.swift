import Foundation
import XCTest

/// The guest kit's test=smp under vmd → vm: the BSP wakes the other vCPUs with INIT + SIPI,
/// each runs the real-mode trampoline up to ring 3, and every CPU's work is checked.
final class SMPTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func runSMP(cpus: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let vm = try VmdHarness("smp\(cpus)")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=smp", extra: "    cpus \(cpus)"),
                             arguments: ["--deadline", "60"])
        XCTAssertEqual(run.status, 0, "stdout: \(run.stdout) stderr: \(run.stderr)", file: file, line: line)
        let result = try XCTUnwrap(VmdHarness.result("smp", in: run.stdout), "no RESULT line in: \(run.stdout)",
                                   file: file, line: line)
        XCTAssertEqual(result["status"], "pass", run.stdout, file: file, line: line)
        XCTAssertEqual(result["cpus"], String(cpus), run.stdout, file: file, line: line)
        XCTAssertEqual(result["apic_ids"], (0..<cpus).map(String.init).joined(separator: ","), run.stdout,
                       file: file, line: line)
        XCTAssertEqual(result["work"], "OK", run.stdout, file: file, line: line)
        XCTAssertEqual(result["counter"], String(cpus * 1_000_000), "every lock xadd counted", file: file, line: line)
        XCTAssertTrue(run.stderr.contains("vm \"\(vm.name)\" ended: exited with code 0"), run.stderr, file: file, line: line)
        XCTAssertEqual(vm.vmProcesses(), [], "no process of the VM remains", file: file, line: line)
    }

    func testTwoCPUsStartAndWork() throws {
        try runSMP(cpus: 2)
    }

    func testFourCPUsStartAndWork() throws {
        try runSMP(cpus: 4)
    }
}

import Foundation
import XCTest

/// The guest kit's test=smp under vmd → vm: the BSP wakes the other vCPUs with INIT + SIPI,
/// each runs the real-mode trampoline up to ring 3, and every CPU's work is checked. The
/// kit takes the CPU count from the MP table and each CPU's id from its own LAPIC (never
/// from CPUID in ring 3, which returns the host's values on hosts without CPUID faulting),
/// and checks that the ids the CPUs read are the MP table's.
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
        XCTAssertTrue(run.stdout.contains("info smp expected=\(cpus) from=mptable "), "counted from the MP table: \(run.stdout)",
                      file: file, line: line)
        XCTAssertEqual(result["counter"], String(cpus * 1_000_000), "every lock xadd counted", file: file, line: line)
        XCTAssertTrue(run.stderr.contains("vm \"\(vm.name)\" ended: exited with code 0"), run.stderr, file: file, line: line)
        XCTAssertEqual(vm.vmProcesses(), [], "no process of the VM remains", file: file, line: line)
    }

    // 1, 3 and 8 as well as the powers of two: the topology's core-id width rounds up,
    // and 8 vCPUs on this 2-core host are more vCPUs than host CPUs.
    func testOneCPU() throws { try runSMP(cpus: 1) }
    func testTwoCPUsStartAndWork() throws { try runSMP(cpus: 2) }
    func testThreeCPUsStartAndWork() throws { try runSMP(cpus: 3) }
    func testFourCPUsStartAndWork() throws { try runSMP(cpus: 4) }
    func testEightCPUsStartAndWork() throws { try runSMP(cpus: 8) }
}

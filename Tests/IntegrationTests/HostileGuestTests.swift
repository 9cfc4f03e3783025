import Foundation
import Glibc
import XCTest

/// The guest kit as a hostile guest (design §4, §6): malformed descriptor chains, bad
/// rings, absurd lengths and index jumps against our virtio-blk and virtio-net processes.
/// Every scenario must end in a failed request or DEVICE_NEEDS_RESET (or be ignored when
/// harmless), and a reset plus re-initialisation must bring the device back.
final class HostileGuestTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    /// Every `hostile-*` RESULT line as (name, fields).
    private func scenarios(in output: String) -> [(String, [String: String])] {
        output.split(whereSeparator: \.isNewline).compactMap { line in
            guard line.hasPrefix("RESULT name=hostile-") else { return nil }
            var fields: [String: String] = [:]
            for field in line.split(separator: " ").dropFirst() {
                let parts = field.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            return (fields["name"] ?? "", fields)
        }
    }

    private func checkRun(_ run: VmdHarness.Run, prefix: String, atLeast minimum: Int,
                          file: StaticString = #filePath, line: UInt = #line) {
        let output = run.stdout
        XCTAssertEqual(run.status, 0, "vmd exit status\n\(output)\n\(run.stderr)", file: file, line: line)
        let lines = scenarios(in: output)
        XCTAssertGreaterThanOrEqual(lines.filter { $0.0.hasPrefix(prefix) }.count, minimum,
                                    "scenarios run\n\(output)", file: file, line: line)
        for (name, fields) in lines {
            XCTAssertEqual(fields["status"], "pass", "\(name): \(fields)\n\(run.stderr)", file: file, line: line)
            XCTAssertEqual(fields["recovered"], "1", "\(name) recovery", file: file, line: line)
            XCTAssertTrue(["error", "needs-reset", "ignored"].contains(fields["outcome"] ?? ""),
                          "\(name) outcome \(fields["outcome"] ?? "-")", file: file, line: line)
        }
        let summary = VmdHarness.result("hostile", in: output)
        XCTAssertEqual(summary?["status"], "pass", output, file: file, line: line)
        XCTAssertEqual(summary?["scenarios"], summary?["passed"], file: file, line: line)
        XCTAssertEqual(Int(summary?["scenarios"] ?? "") ?? 0, lines.count, file: file, line: line)
        // A device process that died would have stopped the VM ("virtio-blk disk0 process ...; VM stopped").
        for role in ["virtio-blk", "virtio-net"] {
            XCTAssertFalse(run.stderr.split(whereSeparator: \.isNewline).contains { $0.contains("\(role) ") && $0.contains(" process ") },
                           run.stderr, file: file, line: line)
        }
    }

    func testHostileBlockGuest() throws {
        let vm = try VmdHarness("hostile-blk")
        let image = vm.directory.appendingPathComponent("disk.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: nil))
        XCTAssertEqual(truncate(image, 4 << 20), 0)
        let config = try vm.writeConfig(cmdline: "test=hostile-blk", memory: "128M", extra: "    disk \"\(image)\"")
        let run = try vm.run(config: config, arguments: ["--deadline", "90"], seconds: 120)
        checkRun(run, prefix: "hostile-blk-", atLeast: 20)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-blk"), [], "processes left behind")
    }

    func testHostileNetworkGuest() throws {
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdhostile")
        let vm = try VmdHarness("hostile-net")
        // dhcp=1: the device's DHCP responder on the local interface answers the recovery's DISCOVER.
        let config = try vm.writeConfig(cmdline: "test=hostile-net dhcp=1", memory: "128M", extra: "    local interface")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "90"])
        run.wait(seconds: 120)
        checkRun(run, prefix: "hostile-net-", atLeast: 10)
        XCTAssertEqual(VmdHarness.result("hostile", in: run.stdout)?["dhcp"], "1")
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-net"), [], "processes left behind")
    }
}

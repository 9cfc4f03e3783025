import Foundation
import Glibc
import XCTest

/// Every child is sandboxed once its descriptors are in hand (issue: sandbox).
final class SandboxTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func statusFields(_ pid: pid_t) -> [String: String] {
        var fields: [String: String] = [:]
        for line in VmdHarness.readProcFile("/proc/\(pid)/status").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }

    private func image(_ vm: VmdHarness) -> String {
        let path = vm.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20))
        return path
    }

    func testEveryChildRunsWithSeccompNoNewPrivsAndANonRootUser() throws {
        let vm = try VmdHarness("sandbox")
        // vmd in a namespace of its own so that its tap does not appear on the host.
        let namespace = try NetworkNamespace("vmdsb")
        let config = try vm.writeConfig(cmdline: "test=hang", extra: "    disk \"\(image(vm))\"\n    local interface\n    entropy")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "60"])
        let process = run.process
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("status=running"), run.stdout)

        let children = ["vm", "virtio-blk", "virtio-net", "virtio-rng"].flatMap { name in vm.processes(named: name).map { (name, $0) } }
        XCTAssertEqual(children.map(\.0).sorted(), ["virtio-blk", "virtio-net", "virtio-rng", "vm"])
        for (name, pid) in children {
            let status = statusFields(pid)
            XCTAssertEqual(status["Seccomp"], "2", "\(name) runs under a seccomp filter")
            XCTAssertEqual(status["NoNewPrivs"], "1", "\(name) has no_new_privs")
            let uids = (status["Uid"] ?? "0").split(separator: "\t").map(String.init)
            XCTAssertFalse(uids.contains("0"), "\(name) is not root: Uid \(uids)")
            XCTAssertEqual(status["CapEff"], "0000000000000000", "\(name) holds no capability")
        }
        // virtio-blk left the host's network: its net ns differs from virtio-net's, which
        // keeps the host's for its tap; vm and virtio-rng share blk's, the one vmd made.
        let networkOf = { (name: String) -> String? in
            guard let pid = vm.processes(named: name).first else { return nil }
            return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
        }
        let blkNet = try XCTUnwrap(networkOf("virtio-blk"))
        XCTAssertNotEqual(blkNet, networkOf("virtio-net"), "virtio-blk is not in the host's network namespace")
        XCTAssertEqual(networkOf("vm"), blkNet, "vm is in the children's shared network namespace")
        XCTAssertEqual(networkOf("virtio-rng"), blkNet, "virtio-rng is in the children's shared network namespace")
        kill(process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
    }

    /// Each child leaves the host's mount, IPC and UTS namespaces (vm, virtio-blk and
    /// virtio-rng its network too, for the one vmd made for them) and sees an empty
    /// read-only root: no file of the host at all. The mount namespace is the one vmd made
    /// for them all (`SharedNamespace`), its root that empty one.
    func testEveryChildHasNamespacesOfItsOwnAndAnEmptyReadOnlyRoot() throws {
        let vm = try VmdHarness("sandbox-ns")
        let namespace = try NetworkNamespace("vmdns")
        let config = try vm.writeConfig(cmdline: "test=hang", extra: "    disk \"\(image(vm))\"\n    local interface\n    entropy")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "60", "-v"])
        let process = run.process
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("status=running"), run.stdout)
        let vmd = process.processIdentifier  // ip netns exec execs vmd
        let namespaceOf = { (pid: pid_t, kind: String) in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")) ?? "none"
        }
        let leavesNetwork = ["vm": true, "virtio-blk": true, "virtio-net": false, "virtio-rng": true]
        for (name, leavesNet) in leavesNetwork {
            let pid = try XCTUnwrap(vm.processes(named: name).first, name)
            for kind in ["mnt", "ipc", "uts"] {
                XCTAssertNotEqual(namespaceOf(pid, kind), namespaceOf(vmd, kind), "\(name) has its own \(kind) namespace")
            }
            XCTAssertEqual(namespaceOf(pid, "net") != namespaceOf(vmd, "net"), leavesNet, "\(name): network namespace")
            // mountinfo: "id parent major:minor root mountpoint options ... - fstype source superoptions".
            let mounts = VmdHarness.readProcFile("/proc/\(pid)/mountinfo").split(separator: "\n")
            XCTAssertEqual(mounts.count, 1, "\(name) sees one mount, its own root: \(mounts)")
            let fields = mounts.first?.split(separator: " ").map(String.init) ?? []
            XCTAssertEqual(fields.count > 4 ? fields[4] : "", "/", "\(name): it is the root")
            XCTAssertTrue(fields.count > 5 && fields[5].split(separator: ",").contains("ro"), "\(name): read-only: \(fields)")
            XCTAssertTrue(fields.contains("tmpfs"), "\(name): an empty tmpfs: \(fields)")
            let root = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root")) ?? ["unreadable"]
            XCTAssertEqual(root, [], "\(name): nothing in its root")
        }
        let mountNamespaces = Set(try leavesNetwork.keys.map { namespaceOf(try XCTUnwrap(vm.processes(named: $0).first), "mnt") })
        XCTAssertEqual(mountNamespaces.count, 1, "every child joined the one mount namespace vmd made: \(mountNamespaces)")
        XCTAssertTrue(run.stderr.contains("empty read-only root"), run.stderr)
        XCTAssertFalse(run.stderr.contains("hardening degraded"), "nothing missing on this kernel: \(run.stderr)")
        kill(process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
    }

    func testOpeningAFileFailsWithENOENT() throws {
        let vm = try VmdHarness("sandbox-open")
        let config = try vm.writeConfig(cmdline: "test=boot", extra: "    disk \"\(image(vm))\"\n    entropy")
        let run = try vm.run(config: config, arguments: ["--deadline", "30", "-v"], environment: ["VMD_TEST_OPEN_PROBE": "/etc/passwd"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for process in ["vm", "virtio-blk", "virtio-rng"] {
            XCTAssertTrue(run.stderr.split(separator: "\n").contains {
                // Relayed by vmd: "VM/role: process[pid] ...".
                $0.contains(": \(process)[") && $0.contains("sandbox probe: open(/etc/passwd) = -1 errno 2 (No such file or directory)")
            }, "\(process): \(run.stderr)")
        }
    }

    /// Makes `process` (a device, as `role` names it) call a forbidden syscall once
    /// sandboxed: seccomp kills it and vmd tears the VM down.
    private func checkForbiddenSyscallKills(_ process: String, role: String, test: String, file: StaticString = #filePath,
                                            line: UInt = #line, extra: (VmdHarness) -> String) throws {
        let vm = try VmdHarness(test)
        let config = try vm.writeConfig(cmdline: "test=hang", extra: extra(vm))
        let run = try vm.run(config: config, arguments: ["--deadline", "30"], environment: ["VMD_TEST_FORBIDDEN_SYSCALL": process])
        XCTAssertEqual(run.status, 70, run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains("\(role) process killed by signal 31"), "SIGSYS from seccomp: \(run.stderr)", file: file, line: line)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: process), [], file: file, line: line)
    }

    func testAForbiddenSyscallKillsTheDeviceAndTheVMIsTornDown() throws {
        try checkForbiddenSyscallKills("virtio-blk", role: "virtio-blk disk0", test: "sandbox-kill") { "    disk \"\(self.image($0))\"" }
    }

    func testAForbiddenSyscallKillsTheEntropyDeviceToo() throws {
        try checkForbiddenSyscallKills("virtio-rng", role: "virtio-rng rng0", test: "sandbox-kill-rng") { _ in "    entropy" }
    }
}

import Foundation
import Glibc
import XCTest

/// vmd as a service manager runs it (no -d: detached, logging to syslog) and what its
/// children may hold: their log lines arrive tagged in vmd's syslog, never from their
/// own sockets (their seccomp filters kill a child that opens one), and nothing vmd
/// inherited reaches them.
final class DaemonLoggingTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func makeImage(_ daemon: DaemonHarness, _ name: String) -> String {
        let image = daemon.directory.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: image, contents: Data(count: 2 << 20))
        return image
    }

    func testDetachedDaemonServesDiskAndNICAndSyslogsTheirTaggedLines() throws {
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdsl")
        let daemon = try DaemonHarness("syslog", namespace: namespace, detached: true)
        XCTAssertNotEqual(daemon.daemonPid, daemon.vmd.processIdentifier, "vmd detached from its starter")
        XCTAssertEqual(daemon.vmctl("status").status, 0, "the detached daemon serves vmctl: \(daemon.log)")

        let alpha = try daemon.writeGuestConfig("alpha", cmdline: "test=blk seed=5", extra: "    disk \"\(makeImage(daemon, "a.img"))\"")
        XCTAssertEqual(daemon.vmctl("start", alpha).status, 0, daemon.log)
        XCTAssertTrue(daemon.eventually(60) { daemon.status()["alpha"]?.state == "stopped" }, daemon.log)
        XCTAssertTrue(daemon.status()["alpha"]?.line.contains("(exited with code 0)") == true,
                      "the guest's disk test passed: \(daemon.status()["alpha"]?.line ?? "")\n\(daemon.log)")

        let beta = try daemon.writeGuestConfig("beta", cmdline: "test=net dhcp=1 seconds=60",
                                               extra: "    disk \"\(makeImage(daemon, "b.img"))\"\n    local interface")
        XCTAssertEqual(daemon.vmctl("start", beta).status, 0, daemon.log)
        XCTAssertTrue(daemon.eventually(30) { namespace.exec(["ping", "-c", "1", "-W", "1", "100.64.0.9"]).status == 0 },
                      "the guest answers on its local interface\n\(daemon.log)")
        XCTAssertEqual(daemon.status()["beta"]?.state, "running", "disk and NIC processes alive: \(daemon.log)")
        XCTAssertEqual(daemon.vmctl("stop", "beta", "-f", "-w").status, 0)

        let log = daemon.log
        XCTAssertFalse(log.contains("Bad system call"), log)
        // <30> = LOG_DAEMON | LOG_INFO; each child's lines carry its VM and role.
        for tag in ["alpha/vm: vm[", "alpha/disk0: virtio-blk[", "beta/vm: vm[", "beta/disk0: virtio-blk[", "beta/net0: virtio-net["] {
            XCTAssertTrue(log.split(separator: "\n").contains { $0.hasPrefix("<30>") && $0.contains(" vmd[\(daemon.daemonPid)]: \(tag)") },
                          "a tagged info line of \(tag) in syslog:\n\(log)")
        }
        XCTAssertTrue(log.contains("alpha/disk0: virtio-blk[") && log.contains("sandboxed: RAM sealed, namespaces"), log)
        XCTAssertTrue(log.contains("vm alpha stopped: exited with code 0"), "vmd's own lines too:\n\(log)")
        XCTAssertEqual(try String(contentsOfFile: daemon.logPath, encoding: .utf8), "", "nothing on the starter's stderr")
    }

    func testChildrenInheritNoDescriptorOfVmdsButTheirOwn() throws {
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("vmd-secret-\(getpid())").path
        FileManager.default.createFile(atPath: secret, contents: Data("root only".utf8))
        chmod(secret, 0o600)
        defer { unlink(secret) }
        let stray: [Int32: String] = [7: secret, 10: "/etc/hostname", 251: "/etc/passwd"]
        let daemon = try DaemonHarness("fds", strayFiles: stray)
        let vmdFiles = VmdHarness.openFiles(of: daemon.daemonPid)
        XCTAssertTrue(vmdFiles.contains(secret), "vmd itself was started with the stray files: \(vmdFiles)")

        let config = try daemon.writeGuestConfig("alpha", cmdline: "test=hang", extra: "    disk \"\(makeImage(daemon, "a.img"))\"")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let children = daemon.processes("vm", vm: "alpha") + daemon.processes("virtio-blk", vm: "alpha")
        XCTAssertEqual(children.count, 2, daemon.log)
        for pid in children {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            let files = VmdHarness.openFiles(of: pid)
            for (number, path) in stray {
                XCTAssertFalse(files.contains(path), "pid \(pid) holds \(path): \(files)")
                XCTAssertFalse(fds.contains(String(number)) && files.contains(path), "fd \(number)")
            }
            XCTAssertFalse(files.contains { $0.hasSuffix("vmd.sock") }, "no control socket in a child: \(files)")
        }
        XCTAssertEqual(daemon.vmctl("stop", "alpha", "-f", "-w").status, 0)
    }
}

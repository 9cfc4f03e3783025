import Foundation
import Glibc
import XCTest

/// `make install`, vmd.service and sd_notify (issue 18): what an operator installs and
/// what systemd sees of vmd. Oracles: systemd-analyze verify for the unit, and a
/// NOTIFY_SOCKET of the test's own for the readiness protocol.
final class ServiceInstallTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("install-\(getpid())-\(name.filter(\.isLetter))")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The build `swift test` made, installed by the Makefile (no second build).
    private func makeInstall(_ variables: [String]) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/make") else {
            print("SKIP: make is missing")
            throw XCTSkip("make is missing")
        }
        let products = URL(fileURLWithPath: VmdHarness.productsDirectory)
        let result = VmdHarness.runCommand(["/usr/bin/make", "-s", "-C", VmdHarness.packageRoot.path, "install", "NO_BUILD=1",
                                            "CONFIG=\(products.lastPathComponent)"] + variables)
        XCTAssertEqual(result.status, 0, "make install \(variables):\n\(result.output)")
        return result.output
    }

    func testMakeInstallIntoDestdirLaysOutBinariesManualsAndUnit() throws {
        let destdir = directory.appendingPathComponent("root").path
        let output = try makeInstall(["DESTDIR=\(destdir)", "PREFIX=/usr/local"])
        print(output)
        let prefix = destdir + "/usr/local"
        for program in ["vmd", "vm", "virtio-blk", "virtio-net", "virtio-rng"] {
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "\(prefix)/libexec/swift-vmd/\(program)"), program)
        }
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "\(prefix)/sbin/vmctl"))
        // vmd in sbin is a relative link, so that the tree works wherever DESTDIR puts it, and
        // vmd finds vm and the device programs beside its real path.
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(prefix)/sbin/vmd"), "../libexec/swift-vmd/vmd")
        for page in ["man8/vmd.8", "man8/vmctl.8", "man5/vm.conf.5"] {
            let text = try String(contentsOfFile: "\(prefix)/share/man/\(page)", encoding: .utf8)
            XCTAssertTrue(text.contains(".Dt "), "\(page) is an mdoc page")
        }
        let unit = try String(contentsOfFile: "\(prefix)/lib/systemd/system/vmd.service", encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/local/sbin/vmd -d\n"), unit)
        XCTAssertTrue(unit.contains("Type=notify\n"), unit)
        XCTAssertTrue(unit.contains("RestartPreventExitStatus=78\n"), "a wrong configuration (vmd exits 78) is not restarted:\n\(unit)")
        XCTAssertFalse(unit.contains("@"), "every placeholder is filled:\n\(unit)")
        // The installed programs run through the link.
        let help = VmdHarness.runCommand(["\(prefix)/sbin/vmd", "--help"])
        XCTAssertEqual(help.status, 0, help.output)
        XCTAssertTrue(help.output.contains("USAGE: vmd"), help.output)
    }

    /// A VM boots from the installed tree: vmd found its sibling programs through the sbin link.
    func testInstalledVmdBootsAGuest() throws {
        try VmdHarness.requireKVMAndRoot()
        let destdir = directory.appendingPathComponent("root").path
        _ = try makeInstall(["DESTDIR=\(destdir)", "PREFIX=/usr"])
        let config = try VmdHarness("installed").writeConfig(cmdline: "test=boot ticks=2 exit=7")
        let run = VmdHarness.runCommand(["\(destdir)/usr/sbin/vmd", "boot", config, "--deadline", "60"])
        XCTAssertEqual(run.status, 7, run.output)
    }

    func testInstalledUnitPassesSystemdAnalyzeVerify() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            print("SKIP: systemd-analyze is missing (Debian's systemd; scripts/setup installs it)")
            throw XCTSkip("systemd-analyze is missing")
        }
        // Installed under a prefix of the test's own (no DESTDIR), so that the paths the unit
        // names exist: verify checks that ExecStart's program is there, and (through
        // MANPATH) that every Documentation= page is found.
        let prefix = directory.appendingPathComponent("prefix").path
        _ = try makeInstall(["PREFIX=\(prefix)"])
        let unit = "\(prefix)/lib/systemd/system/vmd.service"
        let result = VmdHarness.runCommand(["/usr/bin/env", "MANPATH=\(prefix)/share/man", "/usr/bin/systemd-analyze", "verify", unit])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze verify complains:\n\(result.output)")
    }

    /// The tmpfiles.d entry sets shmem THP to advise at boot (guest RAM in 2 MiB pages),
    /// as systemd-tmpfiles, the oracle, reads it: applied to a stand-in sysfs under --root.
    func testInstalledTmpfilesEntrySetsShmemHugePagesToAdvise() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-tmpfiles") else {
            print("SKIP: systemd-tmpfiles is missing (Debian's systemd; scripts/setup installs it)")
            throw XCTSkip("systemd-tmpfiles is missing")
        }
        let destdir = directory.appendingPathComponent("root").path
        _ = try makeInstall(["DESTDIR=\(destdir)", "PREFIX=/usr/local"])
        let entry = "\(destdir)/usr/local/lib/tmpfiles.d/vmd.conf"
        XCTAssertTrue(FileManager.default.fileExists(atPath: entry), "no tmpfiles.d entry installed")
        let sysfs = directory.appendingPathComponent("sysroot/sys/kernel/mm/transparent_hugepage")
        try FileManager.default.createDirectory(at: sysfs, withIntermediateDirectories: true)
        let setting = sysfs.appendingPathComponent("shmem_enabled").path
        try "always within_size advise [never] deny force\n".write(toFile: setting, atomically: false, encoding: .utf8)
        let result = VmdHarness.runCommand(["/usr/bin/systemd-tmpfiles", "--root=\(directory.path)/sysroot", "--create", entry])
        XCTAssertEqual(result.status, 0, "systemd-tmpfiles refused the entry:\n\(result.output)")
        // sysfs takes the word written at offset 0; the stand-in keeps the rest of its old text.
        let written = try String(contentsOfFile: setting, encoding: .utf8)
        XCTAssertTrue(written.hasPrefix("advise "), written)
    }

    /// vmd under Type=notify: READY=1 once its socket listens, RELOADING=1 then READY=1 around
    /// SIGHUP and vmctl reload, STOPPING=1 on SIGTERM; and no child of vmd sees NOTIFY_SOCKET.
    func testDaemonSpeaksSdNotify() throws {
        try VmdHarness.requireKVMAndRoot()
        let notifyPath = directory.appendingPathComponent("notify.sock").path
        let listener = try NotifyListener(path: notifyPath)
        let daemon = try DaemonHarness("sdnotify", environment: ["NOTIFY_SOCKET": notifyPath])
        let ready = try XCTUnwrap(listener.receive(seconds: 10), "no READY=1 from vmd:\n\(daemon.log)")
        XCTAssertTrue(ready.contains("READY=1"), ready)
        XCTAssertTrue(ready.contains("MAINPID=\(daemon.daemonPid)"), ready)
        // vmd answers vmctl once it said it is ready.
        XCTAssertEqual(daemon.vmctl("status").status, 0)

        kill(daemon.daemonPid, SIGHUP)
        let reloading = try XCTUnwrap(listener.receive(seconds: 10), "nothing on SIGHUP")
        XCTAssertTrue(reloading.contains("RELOADING=1"), reloading)
        XCTAssertNotNil(reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") && UInt64($0.dropFirst(15)) != nil }, reloading)
        let readyAgain = try XCTUnwrap(listener.receive(seconds: 10), "no READY=1 after the reload")
        XCTAssertTrue(readyAgain.contains("READY=1"), readyAgain)
        // vmctl reload is the same reload, and systemd hears of it the same way.
        XCTAssertEqual(daemon.vmctl("reload").status, 0, daemon.log)
        XCTAssertTrue(try XCTUnwrap(listener.receive(seconds: 10), "nothing on vmctl reload").contains("RELOADING=1"))
        XCTAssertTrue(try XCTUnwrap(listener.receive(seconds: 10), "no READY=1 after vmctl reload").contains("READY=1"))

        // A VM's processes do not inherit the variable (they must not talk to systemd as vmd).
        let config = try daemon.writeGuestConfig("notified", cmdline: "test=hang")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let vmPid = try XCTUnwrap(daemon.processes("vm", vm: "notified").first, daemon.log)
        let environment = VmdHarness.readProcFile("/proc/\(vmPid)/environ")
        XCTAssertFalse(environment.contains("NOTIFY_SOCKET"), "the vm process inherited NOTIFY_SOCKET")

        kill(daemon.daemonPid, SIGTERM)
        let stopping = try XCTUnwrap(listener.receive(seconds: 10), "nothing on SIGTERM")
        XCTAssertTrue(stopping.contains("STOPPING=1"), stopping)
        XCTAssertTrue(stopping.contains("STATUS=stopping 1 vm"), stopping)
    }
}

/// The systemd end of NOTIFY_SOCKET: a datagram socket at a path.
private final class NotifyListener {
    private let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path), "test socket path too long")
        // SAFETY: the path and its NUL fit in sun_path (checked above).
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    deinit { close(fd) }

    /// The next datagram's text, or nil when none came in time.
    func receive(seconds: Double) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(seconds * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}

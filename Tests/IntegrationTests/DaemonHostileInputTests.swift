import Foundation
import Glibc
import XCTest

/// What an unprivileged user, a file or a misbehaving client can do to vmd (issue 13):
/// each case once crashed vmd, hung it, starved root or passed `vmd -n` and then failed.
final class DaemonHostileInputTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private static let user = "vmdtest"

    private func ensureUser() throws {
        guard getpwnam(Self.user) == nil else { return }
        let add = Process()
        add.executableURL = URL(fileURLWithPath: "/usr/sbin/useradd")
        add.arguments = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", Self.user]
        try add.run()
        add.waitUntilExit()
        XCTAssertEqual(add.terminationStatus, 0, "useradd \(Self.user)")
    }

    private func run(_ arguments: [String], seconds: Double = 10) -> (status: Int32, output: String) {
        VmdHarness.runCommand(arguments, seconds: seconds)
    }

    func testCheckOnlyRefusesWhatStartWouldRefuse() throws {
        let daemon = try DaemonHarness("check")
        let dir = daemon.directory.path
        let fifo = dir + "/kernel.fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        mkdir(dir + "/adir", 0o755)
        FileManager.default.createFile(atPath: dir + "/text", contents: Data("not a kernel\n".utf8))
        FileManager.default.createFile(atPath: dir + "/ok.img", contents: Data(count: 4096))
        let kit = VmdHarness.guestKit
        let cases: [(body: String, expected: String)] = [
            ("    boot \"\(kit)\"\n    owner nosuchuser", "bad.conf:3:5: owner: no user named nosuchuser"),
            ("    boot \"\(kit)\"\n    disk \"\(dir)/adir\" readonly", "bad.conf:3:5: disk \(dir)/adir is a directory; a disk is a regular file or a block device"),
            ("    boot \"\(kit)\"\n    disk \"\(dir)/missing.img\"", "bad.conf:3:5: disk \(dir)/missing.img: No such file or directory"),
            ("    boot \"\(fifo)\"", "bad.conf:2:5: boot \(fifo): is a FIFO, not a regular file"),
            ("    boot \"\(dir)/text\"", "bad.conf:2:5: boot \(dir)/text: the kernel image is not an ELF file or a bzImage"),
            ("    boot \"\(kit)\"\n    initrd \"\(dir)/adir\"", "bad.conf:3:5: initrd \(dir)/adir: is a directory, not a regular file"),
            ("    boot \"\(kit)\"\n    disk \"\(dir)/ok.img\u{0}junk\"",
             "bad.conf:3:\(11 + "\(dir)/ok.img".unicodeScalars.count): control character U+0000 in string"),
            ("    boot \"\(kit)\"\n    cmdline \"\(String(repeating: "x", count: 3000))\"", "bad.conf:3:13: kernel command line of 3000 bytes"),
            ("    boot \"\(kit)\"\n    interface { switch \"nosuchbridge0\" }", "bad.conf:3:5: switch nosuchbridge0: no such interface on this host"),
            // A BIOS vm cannot place (13 bytes), and one that is not there.
            ("    boot device disk\n    disk \"\(dir)/ok.img\"\n    firmware \"\(dir)/text\"",
             "bad.conf:4:5: BIOS \(dir)/text: a BIOS image of 13 bytes: it must be a multiple of 64 KiB"),
            ("    boot device disk\n    disk \"\(dir)/ok.img\"\n    firmware \"\(dir)/nothere.bin\"",
             "bad.conf:4:5: firmware \(dir)/nothere.bin: No such file or directory"),
        ]
        let path = dir + "/bad.conf"
        for (index, bad) in cases.enumerated() {
            try "vm \"bad\" {\n\(bad.body)\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
            let checked = run([VmdHarness.productsDirectory + "/vmd", "-n", "-f", path])
            XCTAssertEqual(checked.status, 78, "case \(index): \(checked.output)")
            XCTAssertTrue(checked.output.contains(bad.expected), "case \(index): \(checked.output)")
            // The daemon refuses the same file at start, at the same place, and keeps nothing.
            let started = daemon.vmctl("start", path)
            XCTAssertEqual(started.status, 1, "case \(index)")
            XCTAssertTrue(started.stderr.contains(bad.expected), "case \(index): \(started.stderr)")
            XCTAssertNil(daemon.status()["bad"], "case \(index): a VM that did not start is not listed")
        }
        XCTAssertEqual(daemon.vmctl("status").status, 0, "vmd survived all of them")
        // 64 KiB and more once passed -n and then trapped vmd at `vmctl start NAME`; in vmd's
        // own configuration the daemon refuses to start with it.
        try "vm \"bad\" {\n    boot \"\(kit)\"\n    cmdline \"\(String(repeating: "x", count: 70_000))\"\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
        for arguments in [["-n", "-f", path], ["-d", "-f", path, "-s", dir + "/other.sock"]] {
            let refused = run([VmdHarness.productsDirectory + "/vmd"] + arguments)
            XCTAssertEqual(refused.status, 78, "vmd -n and the daemon both say the file is wrong: \(refused.output)")
            XCTAssertTrue(refused.output.contains("bad.conf:3:13: kernel command line of 70000 bytes is longer than the boot protocol's 2047"), refused.output)
        }
        try "vm \"good\" {\n    boot \"\(kit)\"\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(run([VmdHarness.productsDirectory + "/vmd", "-n", "-f", path]).status, 0)
    }

    func testVmctlStartRefusesSpecialAndHugeFilesAtOnce() throws {
        let daemon = try DaemonHarness("startfile")
        let dir = daemon.directory.path
        XCTAssertEqual(mkfifo(dir + "/g.fifo", 0o600), 0)
        let huge = dir + "/huge.conf"
        let fd = open(huge, O_CREAT | O_WRONLY, 0o600)
        XCTAssertEqual(ftruncate(fd, 1 << 30), 0)
        close(fd)
        let big = dir + "/big.conf"
        try (String(repeating: "# padding\n", count: 10_000) + "vm \"big\" { boot \"k\" }\n").write(toFile: big, atomically: true, encoding: .utf8)
        let vmctl = VmdHarness.productsDirectory + "/vmctl"
        let cases: [(path: String, expected: String)] = [
            (dir + "/g.fifo", "is a FIFO, not a regular file"),
            ("/dev/zero", "is a character device, not a regular file"),
            (huge, "is 1073741824 bytes, more than the 49152 accepted"),
            (big, "is \((try? FileManager.default.attributesOfItem(atPath: big)[.size] as? Int) ?? 0) bytes, more than the 49152 accepted"),
        ]
        for (path, expected) in cases {
            let result = run(["/usr/bin/env", "VMD_SOCKET=\(daemon.socket)", vmctl, "start", path], seconds: 10)
            XCTAssertEqual(result.status, 1, "\(path): \(result.output)")
            XCTAssertEqual(result.output, "vmctl: cannot read \(path): \(expected)\n", path)
        }
        XCTAssertEqual(daemon.vmctl("status").status, 0, "vmd still serves")
    }

    func testDisabledIsNotShownBesideARunningVMAndStopAllWaitWaits() throws {
        let daemon = try DaemonHarness("stopall", globalConfig: """
            vm "off" {
                memory 64M
                boot "\(VmdHarness.guestKit)"
                cmdline "test=ticker every=10"
                disable
            }
            """)
        XCTAssertTrue(daemon.status()["off"]?.line.hasSuffix("off (disabled)") == true, daemon.status()["off"]?.line ?? "")
        XCTAssertEqual(daemon.vmctl("start", "off").status, 0)
        XCTAssertEqual(daemon.status()["off"]?.state, "running")
        XCTAssertFalse(daemon.status()["off"]?.line.contains("disabled") == true, daemon.status()["off"]?.line ?? "")
        XCTAssertEqual(daemon.vmctl("start", try daemon.writeGuestConfig("other", cmdline: "test=ticker every=10")).status, 0)

        let stopped = daemon.vmctl("stop", "-a", "-w")
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        // -w returned only once both guests had shut down.
        XCTAssertEqual(daemon.status()["off"]?.state, "stopped", stopped.stdout)
        XCTAssertEqual(daemon.status()["other"]?.state, "stopped", stopped.stdout)
        XCTAssertTrue(stopped.stdout.contains("vm off stopped: exited with code 0"), stopped.stdout)
        XCTAssertTrue(stopped.stdout.contains("vm other stopped: exited with code 0"), stopped.stdout)
    }

    /// Python as an unprivileged user: opens `count` connections to vmd and holds them,
    /// then prints how many vmd kept open (the others it answered and closed).
    private func holdConnections(_ daemon: DaemonHarness, count: Int) -> Process {
        let script = """
            import socket, time, sys, errno
            held = []
            for i in range(\(count)):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    s.connect(sys.argv[1])
                except OSError:
                    continue
                held.append(s)
            time.sleep(1.5)
            open_ones = 0
            for s in held:
                s.setblocking(False)
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    open_ones += 1
            sys.stdout.write(f"held {open_ones}\\n")
            sys.stdout.flush()
            time.sleep(30)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        process.arguments = ["-u", Self.user, "--", "/usr/bin/python3", "-c", script, daemon.socket]
        return process
    }

    private func cpuSeconds(_ pid: pid_t) -> Double {
        let fields = VmdHarness.readProcFile("/proc/\(pid)/stat").split(separator: ")").last?.split(separator: " ") ?? []
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func testAUsersIdleConnectionsNeitherStarveRootNorSpinVmd() throws {
        try ensureUser()
        let daemon = try DaemonHarness("fds", descriptorLimit: 256)
        let out = Pipe()
        let hog = holdConnections(daemon, count: 400)
        hog.standardOutput = out
        try hog.run()
        defer { if hog.isRunning { hog.terminate() } }
        let line = out.fileHandleForReading.line(within: 20)
        let held = Int(line.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        XCTAssertGreaterThan(held, 0, "the user got some connections: \(line.debugDescription)")
        XCTAssertLessThanOrEqual(held, 16, "at most 16 connections per user: \(line)")

        let before = cpuSeconds(daemon.daemonPid)
        for _ in 0..<5 {
            let status = run(["/usr/bin/env", "VMD_SOCKET=\(daemon.socket)", VmdHarness.productsDirectory + "/vmctl", "status"], seconds: 5)
            XCTAssertEqual(status.status, 0, "root is served while the user holds connections: \(status.output)\n\(daemon.log)")
        }
        sleep(2)
        XCTAssertLessThan(cpuSeconds(daemon.daemonPid) - before, 0.5, "vmd is not spinning")
    }

    func testAClientThatDoesNotReadItsRepliesIsClosedAndOthersAreServed() throws {
        let daemon = try DaemonHarness("noread")
        // 20 000 `status` requests (frame: "VMD1", tag 6, no fds, 1 payload byte) and never a read.
        let script = """
            import socket, struct, sys, time
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(sys.argv[1])
            s.settimeout(5)
            frame = struct.pack('<IHHI', 0x31444D56, 6, 0, 1) + b'\\x00'
            sent = 0
            try:
                for i in range(20000):
                    s.send(frame)
                    sent += 1
            except OSError as error:
                pass
            print("sent", sent, flush=True)
            time.sleep(2)
            """
        let result = run(["/usr/bin/python3", "-c", script, daemon.socket], seconds: 60)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(daemon.eventually { daemon.log.contains("replies unread; closing it") }, daemon.log)
        XCTAssertEqual(daemon.vmctl("status").status, 0, "vmd still serves others")
    }
}

private extension FileHandle {
    /// Text up to the first newline, waiting at most `seconds` for it.
    func line(within seconds: Double) -> String {
        var data = Data()
        let deadline = Date().addingTimeInterval(seconds)
        while !data.contains(UInt8(ascii: "\n")) && Date() < deadline {
            var pollfd = Glibc.pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&pollfd, 1, 100) > 0 else { continue }
            let chunk = availableData
            if chunk.isEmpty { break }
            data += chunk
        }
        return String(decoding: data, as: UTF8.self)
    }
}

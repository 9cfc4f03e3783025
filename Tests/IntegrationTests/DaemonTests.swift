import Foundation
import Glibc
import XCTest

/// vmd as a daemon with vmctl as its client (issue: daemon and vmctl).
final class DaemonTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func tickCount(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").components(separatedBy: "TICK n=").count - 1
    }

    /// A guest that ignores the shutdown request (power button, VMM control port) is
    /// killed after the grace period, and vmctl and the status say why.
    func testAGuestThatIgnoresTheRequestIsForcedAfterTheGracePeriod() throws {
        let daemon = try DaemonHarness("ignores")
        let config = try daemon.writeGuestConfig("stubborn", cmdline: "test=ticker every=10 ignore_shutdown=1")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let started = Date()
        let stopped = daemon.vmctl("stop", "stubborn", "-w")
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertTrue(stopped.stdout.contains("vm stubborn stopped: did not shut down within 30s; forced"), stopped.stdout)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 29, "it waited out the grace period")
        XCTAssertTrue(daemon.status()["stubborn"]?.line.contains("(did not shut down within 30s; forced)") == true,
                      daemon.status()["stubborn"]?.line ?? "")
        XCTAssertTrue(daemon.log.contains("guest did not shut down within 30s; forcing"), daemon.log)

        // -t sets the grace period of this stop; nonsense for it is refused before anything is sent.
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        for bad in [["-t", "0"], ["-t", "3601"], ["-t", "5", "-f"], ["-t", "soon"]] {
            let refused = daemon.vmctl(["stop", "stubborn"] + bad)
            XCTAssertNotEqual(refused.status, 0, "stop \(bad) was accepted")
            XCTAssertTrue(refused.stderr.contains("-t"), refused.stderr)
        }
        XCTAssertEqual(daemon.status()["stubborn"]?.state, "running")
        // A long grace period does not hold up a later, shorter one (nor vmd's own shutdown's 10 s).
        XCTAssertEqual(daemon.vmctl("stop", "stubborn", "-t", "3600").status, 0)
        let shortStop = daemon.vmctl("stop", "stubborn", "-w", "-t", "2")
        XCTAssertTrue(shortStop.stdout.contains("vm stubborn stopped: did not shut down within 2s; forced"), shortStop.stdout)
    }

    /// A daemon whose configuration is wrong does not start: it says where and exits 78
    /// (vmd.service does not restart it for that); one that cannot listen exits 71.
    func testAWrongConfigurationStopsTheDaemonWithWhereAndStatus78() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vmd-badconf-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let vmd = VmdHarness.productsDirectory + "/vmd"
        let socket = directory.appendingPathComponent("vmd.sock").path
        let cases = [("vm g {\n    memory lots\n}\n", "bad.conf:2:12: "), ("vm g { boot \"/k\"; owner no_such_user_here }\n", "bad.conf:1:19: ")]
        for (text, place) in cases {
            let config = directory.appendingPathComponent("bad.conf").path
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            let run = VmdHarness.runCommand([vmd, "-d", "-f", config, "-s", socket], seconds: 20)
            XCTAssertEqual(run.status, 78, run.output)
            XCTAssertTrue(run.output.contains(place), run.output)
        }
        let good = directory.appendingPathComponent("good.conf").path
        try "metrics listen on \"\(directory.path)/no/such/dir/m.sock\"\n".write(toFile: good, atomically: true, encoding: .utf8)
        let cannotListen = VmdHarness.runCommand([vmd, "-d", "-f", good, "-s", socket], seconds: 20)
        XCTAssertEqual(cannotListen.status, 71, cannotListen.output)
        XCTAssertTrue(cannotListen.output.contains("no/such/dir/m.sock"), cannotListen.output)
        // A file where the socket would go is not removed to make room.
        let precious = directory.appendingPathComponent("precious").path
        try "keep me".write(toFile: precious, atomically: true, encoding: .utf8)
        try "metrics listen on \"\(precious)\"\n".write(toFile: good, atomically: true, encoding: .utf8)
        XCTAssertEqual(VmdHarness.runCommand([vmd, "-d", "-f", good, "-s", socket], seconds: 20).status, 71)
        XCTAssertEqual(try String(contentsOfFile: precious, encoding: .utf8), "keep me")
        // A second vmd on a live daemon's socket is refused and leaves that socket in place.
        let first = try DaemonHarness("badconf-first")
        let second = VmdHarness.runCommand([vmd, "-d", "-f", good, "-s", first.socket], seconds: 20)
        XCTAssertEqual(second.status, 71, second.output)
        XCTAssertTrue(second.output.contains("another vmd is listening on \(first.socket)"), second.output)
        XCTAssertEqual(first.vmctl("status").status, 0, "the first vmd still answers on its socket")
        try "".write(toFile: good, atomically: true, encoding: .utf8)
        XCTAssertEqual(VmdHarness.runCommand([vmd, "-d", "-f", good, "-s", precious], seconds: 20).status, 71, "nor for the control socket")
        XCTAssertEqual(try String(contentsOfFile: precious, encoding: .utf8), "keep me")
    }

    func testTwoVMsStatusConsolePauseAndBothKindsOfStop() throws {
        let daemon = try DaemonHarness("two")
        let alpha = try daemon.writeGuestConfig("alpha", cmdline: "test=ticker every=10")
        let beta = try daemon.writeGuestConfig("beta", cmdline: "test=ticker every=10")
        XCTAssertEqual(daemon.vmctl("start", alpha).status, 0, daemon.log)
        XCTAssertEqual(daemon.vmctl("start", beta).status, 0, daemon.log)
        XCTAssertEqual(daemon.status()["alpha"]?.state, "running")
        XCTAssertEqual(daemon.status()["beta"]?.state, "running")
        XCTAssertEqual(daemon.vmctl("start", alpha).stderr, "vmctl: vm alpha is already running\n")

        // Attach to alpha's console and read its output.
        let consoleOutput = daemon.directory.appendingPathComponent("console.out").path
        let console = daemon.start(["console", "alpha"], stdout: consoleOutput)
        try console.run()
        XCTAssertTrue(daemon.eventually { self.tickCount(consoleOutput) >= 3 }, "console shows the guest's output")

        // Paused, its tick counter does not advance.
        XCTAssertEqual(daemon.vmctl("pause", "alpha").stdout, "vmctl: vm alpha paused\n")
        XCTAssertEqual(daemon.status()["alpha"]?.state, "paused")
        usleep(200_000)
        let ticksWhenPaused = tickCount(consoleOutput)
        usleep(1_500_000)
        XCTAssertEqual(tickCount(consoleOutput), ticksWhenPaused, "no ticks while paused")
        XCTAssertEqual(daemon.vmctl("unpause", "alpha").status, 0)
        XCTAssertTrue(daemon.eventually(5) { self.tickCount(consoleOutput) > ticksWhenPaused }, "ticks resume")

        // Graceful stop of alpha (the guest kit honours the request), forced stop of beta.
        let stopped = daemon.vmctl("stop", "alpha", "-w")
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertTrue(stopped.stdout.contains("vm alpha stopped: exited with code 0"), stopped.stdout)
        XCTAssertTrue(((try? String(contentsOfFile: consoleOutput, encoding: .utf8)) ?? "").contains("RESULT name=shutdown status=pass"))
        XCTAssertTrue(daemon.eventually { !console.isRunning }, "console ends when the VM stops")
        XCTAssertEqual(daemon.vmctl("stop", "beta", "-f").status, 0)
        XCTAssertTrue(daemon.eventually { daemon.status()["beta"]?.state == "stopped" })
        XCTAssertTrue(daemon.status()["beta"]?.line.contains("stopped by vmctl stop -f") == true, daemon.status()["beta"]?.line ?? "")

        // Nothing of either VM remains: no process, no memfd or pty left in vmd.
        XCTAssertEqual(daemon.processes("vm", vm: "alpha") + daemon.processes("vm", vm: "beta"), [])
        let vmdFiles = VmdHarness.openFiles(of: daemon.vmd.processIdentifier)
        XCTAssertFalse(vmdFiles.contains { $0.hasPrefix("/memfd:") }, "\(vmdFiles)")
        XCTAssertFalse(vmdFiles.contains { $0 == "/dev/ptmx" || $0.hasPrefix("/dev/pts/") }, "\(vmdFiles)")
    }

    func testKilledChildStopsItsVMAndVmdServesTheOther() throws {
        let daemon = try DaemonHarness("kill")
        let image = daemon.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let alpha = try daemon.writeGuestConfig("alpha", cmdline: "test=hang", extra: "    disk \"\(image)\"")
        let beta = try daemon.writeGuestConfig("beta", cmdline: "test=hang")
        XCTAssertEqual(daemon.vmctl("start", alpha).status, 0, daemon.log)
        XCTAssertEqual(daemon.vmctl("start", beta).status, 0, daemon.log)
        let blk = try XCTUnwrap(daemon.processes("virtio-blk", vm: "alpha").first)
        kill(blk, SIGKILL)
        XCTAssertTrue(daemon.eventually { daemon.status()["alpha"]?.state == "stopped" }, daemon.log)
        XCTAssertTrue(daemon.status()["alpha"]?.line.contains("virtio-blk disk0 process killed by signal 9") == true,
                      daemon.status()["alpha"]?.line ?? "")
        XCTAssertEqual(daemon.status()["beta"]?.state, "running", "the other VM is untouched")
        XCTAssertEqual(daemon.processes("vm", vm: "alpha") + daemon.processes("virtio-blk", vm: "alpha"), [])

        let betaVM = try XCTUnwrap(daemon.processes("vm", vm: "beta").first)
        kill(betaVM, SIGKILL)
        XCTAssertTrue(daemon.eventually { daemon.status()["beta"]?.state == "stopped" })
        XCTAssertTrue(daemon.status()["beta"]?.line.contains("vm process killed by signal 9") == true, daemon.status()["beta"]?.line ?? "")
        XCTAssertEqual(daemon.vmctl("start", beta).status, 0, "vmd still serves and can start it again")
        XCTAssertEqual(daemon.vmctl("stop", "beta", "-f", "-w").status, 0)
    }

    /// Every child of a VM starts a session of its own (POSIX_SPAWN_SETSID): no controlling
    /// terminal, so a ^C at vmd's terminal reaches vmd alone (which stops its VMs itself)
    /// and does not kill each child at once, and its own scheduler autogroup on a host that has them.
    func testEveryChildOfAVMLeadsASessionOfItsOwnWithoutATerminal() throws {
        let daemon = try DaemonHarness("session")
        let image = daemon.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let config = try daemon.writeGuestConfig("alone", cmdline: "test=hang", extra: "    disk \"\(image)\"")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let children = daemon.processes("vm", vm: "alone") + daemon.processes("virtio-blk", vm: "alone")
        XCTAssertEqual(children.count, 2, daemon.log)
        for pid in children {
            // /proc/PID/stat after "(comm)": state, ppid, pgrp, session, tty_nr, ...
            let stat = VmdHarness.readProcFile("/proc/\(pid)/stat")
            let fields = stat[stat.index(after: try XCTUnwrap(stat.lastIndex(of: ")")))...].split(separator: " ")
            XCTAssertEqual(fields[3], "\(pid)", "session of \(pid): \(stat)")
            XCTAssertEqual(fields[2], "\(pid)", "process group of \(pid): \(stat)")
            XCTAssertEqual(fields[4], "0", "no controlling terminal: \(stat)")
        }
        XCTAssertEqual(daemon.vmctl("stop", "alone", "-f", "-w").status, 0)
    }

    func testOnlyTheOwnerMayControlItsVM() throws {
        let user = "vmdtest"
        if getpwnam(user) == nil {
            let add = Process()
            add.executableURL = URL(fileURLWithPath: "/usr/sbin/useradd")
            add.arguments = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]
            try add.run()
            add.waitUntilExit()
            XCTAssertEqual(add.terminationStatus, 0, "useradd \(user)")
        }
        let daemon = try DaemonHarness("owner", globalConfig: """
            vm "owned" {
                memory 64M
                boot "\(VmdHarness.guestKit)"
                cmdline "test=hang"
                owner \(user)
                disable
            }
            vm "rootvm" {
                memory 64M
                boot "\(VmdHarness.guestKit)"
                cmdline "test=hang"
                disable
            }
            """)
        XCTAssertEqual(daemon.status()["owned"]?.state, "stopped", "disabled VMs are not started: \(daemon.log)")
        XCTAssertEqual(daemon.vmctl("start", "rootvm").status, 0)

        let started = daemon.vmctl("start", "owned", as: user)
        XCTAssertEqual(started.status, 0, started.stderr)
        let seen = daemon.vmctl("status", as: user).stdout
        XCTAssertTrue(seen.contains("owned") && !seen.contains("rootvm"), "a user sees only its VMs:\n\(seen)")

        // Another user's VM is answered as one that does not exist: its name and id are not
        // revealed (issue 13), as `status` does not list it.
        let rootID = try XCTUnwrap(daemon.vmctl("status", "rootvm").stdout.split(separator: "\n").dropFirst().first?
            .split(separator: " ").first.map(String.init))
        for verb in ["stop", "console", "pause", "unpause", "wait", "status", "start"] {
            for (target, missing) in [("rootvm", "nosuchvm"), (rootID, "99")] {
                let refused = daemon.vmctl(verb, target, as: user)
                let absent = daemon.vmctl(verb, missing, as: user)
                XCTAssertEqual(refused.status, 1, "\(verb) \(target)")
                XCTAssertEqual(refused.stderr, "vmctl: no vm \(target)\n", "\(verb) \(target)")
                XCTAssertEqual(absent.stderr, "vmctl: no vm \(missing)\n", "\(verb) \(missing): answered alike")
            }
        }
        let fromFile = daemon.vmctl("start", try daemon.writeGuestConfig("mine", cmdline: "test=hang"), as: user)
        XCTAssertEqual(fromFile.stderr, "vmctl: permission denied: only root may start a VM from a file\n")
        XCTAssertEqual(daemon.vmctl("log", "verbose", as: user).status, 1)

        let stop = daemon.vmctl("stop", "owned", "-f", "-w", as: user)
        XCTAssertEqual(stop.status, 0, stop.stderr)
        XCTAssertEqual(daemon.status()["rootvm"]?.state, "running", "the owner's stop touched only its VM")
        XCTAssertEqual(daemon.vmctl("stop", "rootvm", "-f", "-w").status, 0)
    }

    func testLogVerboseReachesEveryProcessOfEveryVM() throws {
        let daemon = try DaemonHarness("log")
        let image = daemon.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        XCTAssertEqual(daemon.vmctl("start", try daemon.writeGuestConfig("alpha", cmdline: "test=hang", extra: "    disk \"\(image)\"")).status, 0)
        XCTAssertFalse(daemon.log.contains("debug:"), "brief by default")
        XCTAssertEqual(daemon.vmctl("log", "verbose").status, 0)
        let vmPid = try XCTUnwrap(daemon.processes("vm", vm: "alpha").first)
        let blkPid = try XCTUnwrap(daemon.processes("virtio-blk", vm: "alpha").first)
        XCTAssertTrue(daemon.eventually { daemon.log.contains("vm[\(vmPid)] vm=alpha: debug: log level now debug") }, daemon.log)
        XCTAssertTrue(daemon.eventually { daemon.log.contains("virtio-blk[\(blkPid)] disk=disk0: debug: log level now debug") }, daemon.log)
        XCTAssertEqual(daemon.vmctl("pause", "alpha").status, 0)
        XCTAssertTrue(daemon.log.contains("debug: all vCPUs parked, devices quiesced, timers frozen"))
        XCTAssertEqual(daemon.vmctl("log", "brief").status, 0)
        XCTAssertEqual(daemon.vmctl("unpause", "alpha").status, 0)
        XCTAssertEqual(daemon.vmctl("pause", "alpha").status, 0)
        XCTAssertEqual(daemon.log.components(separatedBy: "all vCPUs parked").count - 1, 1, "brief again: no second debug line")
        XCTAssertEqual(daemon.vmctl("stop", "alpha", "-f", "-w").status, 0)
    }

    /// Pause parks the vCPUs and quiesces the devices: while paused, virtio-net takes no
    /// packet from its tap (it makes no read at all), and after unpause it serves again.
    func testPauseQuiescesTheDevicesAndUnpauseResumesThem() throws {
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdpq")
        let daemon = try DaemonHarness("pause", namespace: namespace)
        let image = daemon.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let config = try daemon.writeGuestConfig("alpha", cmdline: "test=net dhcp=1 seconds=60",
                                                 extra: "    disk \"\(image)\"\n    local interface")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let ping = { (count: Int) in namespace.exec(["ping", "-c", "\(count)", "-i", "0.2", "-W", "1", "100.64.0.1"]) }
        XCTAssertTrue(daemon.eventually(30) { ping(1).status == 0 }, "the guest answers before the pause\n\(daemon.log)")
        XCTAssertEqual(daemon.vmctl("log", "verbose").status, 0)
        let net = try XCTUnwrap(daemon.processes("virtio-net", vm: "alpha").first)
        let reads = { () -> Int in
            let line = VmdHarness.readProcFile("/proc/\(net)/io").split(separator: "\n").first { $0.hasPrefix("syscr:") }
            return Int(line?.split(separator: " ").last ?? "") ?? -1
        }

        XCTAssertEqual(daemon.vmctl("pause", "alpha").status, 0)
        let before = reads()
        XCTAssertNotEqual(ping(3).status, 0, "a paused guest answers nothing")
        XCTAssertEqual(reads(), before, "virtio-net read nothing from its tap while paused")
        XCTAssertEqual(daemon.vmctl("unpause", "alpha").status, 0)
        XCTAssertTrue(daemon.eventually(10) { ping(1).status == 0 }, "served again after unpause\n\(daemon.log)")
        XCTAssertGreaterThan(reads(), before)

        let log = daemon.log
        XCTAssertTrue(log.contains("alpha/net0: virtio-net[\(net)] nic=net0: debug: quiesced"), log)
        XCTAssertTrue(log.contains("alpha/disk0: virtio-blk[") && log.contains("disk=disk0: debug: resumed"), log)
        for trouble in ["did not confirm", "timers not saved", "timers not restored"] {
            XCTAssertFalse(log.contains(trouble), "\(trouble):\n\(log)")
        }
        XCTAssertEqual(daemon.vmctl("stop", "alpha", "-f", "-w").status, 0)
    }

    func testEachVMsLocalInterfaceGetsItsOwnSubnet() throws {
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmddl")
        let daemon = try DaemonHarness("local", namespace: namespace)
        var outputs: [String: String] = [:]
        var consoles: [Process] = []
        for name in ["alpha", "beta"] {
            let config = try daemon.writeGuestConfig(name, cmdline: "test=net dhcp=1 seconds=60", extra: "    local interface")
            XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
            outputs[name] = daemon.directory.appendingPathComponent("\(name).console").path
            let console = daemon.start(["console", name], stdout: outputs[name]!)
            try console.run()
            consoles.append(console)
        }
        let text = { (name: String) in (try? String(contentsOfFile: outputs[name]!, encoding: .utf8)) ?? "" }
        XCTAssertTrue(daemon.eventually(30) { text("alpha").contains("READY-NET ip=100.64.0.1\n") && text("beta").contains("READY-NET ip=100.64.0.9\n") },
                      "alpha:\n\(text("alpha"))\nbeta:\n\(text("beta"))\n\(daemon.log)")
        // VM 1 has the first /31 (100.64.0.0–1); VM 2 starts at the fifth (100.64.0.8–9).
        for address in ["100.64.0.1", "100.64.0.9"] {
            let ping = namespace.exec(["ping", "-c", "2", "-W", "2", address])
            XCTAssertEqual(ping.status, 0, ping.output)
        }
        XCTAssertEqual(daemon.vmctl("stop", "-a", "-f").status, 0)
        XCTAssertTrue(daemon.eventually { consoles.allSatisfy { !$0.isRunning } })
    }

    func testMalformedConfigurationsStartNothing() throws {
        let daemon = try DaemonHarness("bad")
        let cases: [(text: String, location: String, phrase: String)] = [
            ("vm \"a\" { memory lots; boot \"k\" }", "1:17", "expected a size"),
            ("vm \"a\" { boot \"k\"; cpus 0 }", "1:25", "cpus"),
            ("vm \"a\" {\n  boot \"k\"\n  disk\n}", "3:7", "expected a disk image path"),
            ("vm \"a\" { boot \"k\"; frobnicate }", "1:20", "unknown option 'frobnicate'"),
            ("vmm \"a\" { boot \"k\" }", "1:1", "expected 'vm'"),
            ("vm \"a\" { memory 64M }", "1:1", "no 'boot'"),
            ("vm \"a\" { boot \"k\"; interface { lladdr 01:00:00:00:00:01 } }", "1:39", "multicast"),
            ("vm \"a\" { boot \"k\"; owner }", "1:26", "owner"),
            ("vm \"a\" { boot $kernel }", "1:15", "undefined macro"),
            ("vm \"a\" { boot \"k\"", "1:8", "'}'"),
        ]
        for (index, bad) in cases.enumerated() {
            let path = daemon.directory.appendingPathComponent("bad\(index).conf").path
            try bad.text.write(toFile: path, atomically: true, encoding: .utf8)
            let result = daemon.vmctl("start", path)
            XCTAssertEqual(result.status, 1, "case \(index)")
            XCTAssertTrue(result.stderr.contains("\(path):\(bad.location):"), "case \(index): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(bad.phrase), "case \(index): \(result.stderr)")
        }
        XCTAssertEqual(daemon.status().count, 0, "no VM was defined or started")
        XCTAssertEqual(daemon.processes("vm", vm: "a"), [])
    }

    /// A host with more VMs than one frame lists (600 defined, each with a disk of a 200-byte
    /// path: about 150 KiB of status, and more than the 512 entries a frame holds): `vmctl
    /// status` and `status --json` show every one, where vmd used to answer "reply too large".
    func testStatusListsEveryVMOfAHostWithMoreThanAFrameOfThem() throws {
        let directory = "/var/tmp/" + String(repeating: "d", count: 180)
        let vms = (0..<600).map { index in
            """
            vm "many\(index)" {
                memory 64M
                boot "\(VmdHarness.guestKit)"
                disk "\(directory)/disk\(index).img"
                disable
            }
            """
        }
        let daemon = try DaemonHarness("many", globalConfig: vms.joined(separator: "\n"))
        let table = daemon.vmctl("status")
        XCTAssertEqual(table.status, 0, table.stderr + daemon.log)
        let names = Set(daemon.status().keys)
        XCTAssertEqual(names, Set((0..<600).map { "many\($0)" }), table.stdout.suffix(500) + table.stderr)
        let json = daemon.vmctl("status", "--json")
        XCTAssertEqual(json.status, 0, json.stderr)
        let objects = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(objects.count, 600)
        XCTAssertEqual(objects.compactMap { $0["name"] as? String }, (0..<600).map { "many\($0)" }, "in id order")
        XCTAssertEqual((objects.last?["disks"] as? [Any])?.count, 1)
    }
}

import Foundation
import Glibc
import XCTest

/// The guest kit boots under vmd → vm and ends the way it chose (issue: foundation).
final class BootTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    func testGuestKitBootsTakesTimerTicksInRing3AndExitsWithItsCode() throws {
        let vm = try VmdHarness("boot")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=boot ticks=12 exit=7"), arguments: ["--deadline", "30"])
        XCTAssertEqual(run.status, 7, "vmd exits with the guest's code; stderr: \(run.stderr)")
        XCTAssertTrue(run.stdout.contains("swift-vmd guest kit v1 entry=pvh"), "banner; stdout: \(run.stdout)")
        XCTAssertTrue(run.stdout.contains("READY"))
        let result = try XCTUnwrap(VmdHarness.result("boot", in: run.stdout), "no RESULT line in: \(run.stdout)")
        XCTAssertEqual(result["status"], "pass")
        XCTAssertEqual(result["cpl"], "3", "the ticks were taken while in ring 3")
        XCTAssertGreaterThanOrEqual(Int(result["ticks"] ?? "") ?? 0, 10)
        XCTAssertTrue(run.stderr.contains("vm \"\(vm.name)\" ended: exited with code 7"), run.stderr)
        XCTAssertEqual(vm.vmProcesses(), [], "no process of the VM remains")
    }

    func testPlainELF64EntryBootsTheSameGuest() throws {
        let vm = try VmdHarness("elf64")
        let run = try vm.run(config: try vm.writeConfig(boot: VmdHarness.guestKitELF64, cmdline: "test=boot exit=0"),
                             arguments: ["--deadline", "30"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(VmdHarness.result("boot", in: run.stdout)?["entry"], "elf64", run.stdout)
        XCTAssertEqual(VmdHarness.result("boot", in: run.stdout)?["status"], "pass", run.stdout)
    }

    func testEveryVcpuThreadStopsWhenTheGuestEnds() throws {
        // The second vCPU never gets a SIPI from the guest kit; it sits in KVM_RUN until kicked.
        let vm = try VmdHarness("smp")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=boot exit=4", extra: "    cpus 2"), arguments: ["--deadline", "30"])
        XCTAssertEqual(run.status, 4, run.stderr)
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    func testTripleFaultIsReportedAndNothingRemains() throws {
        let vm = try VmdHarness("triple")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=triple-fault"), arguments: ["--deadline", "30", "--no-reboot"])
        XCTAssertEqual(run.status, 65, run.stderr)
        XCTAssertTrue(run.stderr.contains("ended: triple fault"), run.stderr)
        XCTAssertTrue(run.stdout.contains("READY"), "it did boot first: \(run.stdout)")
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    func testHangPastTheDeadlineIsReportedAndKilled() throws {
        let vm = try VmdHarness("hang")
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=hang"), arguments: ["--deadline", "2"])
        XCTAssertEqual(run.status, 66, run.stderr)
        XCTAssertTrue(run.stderr.contains("ended: deadline of 2s passed; vm process killed"), run.stderr)
        XCTAssertEqual(VmdHarness.result("hang", in: run.stdout)?["status"], "running", run.stdout)
        XCTAssertEqual(vm.vmProcesses(), [], "the killed vm process was reaped")
    }

    func testRunningVMHasSealedGuestRAMAndNoBootFiles() throws {
        let vm = try VmdHarness("sealed")
        let run = try vm.start(config: try vm.writeConfig(cmdline: "test=hang"), arguments: ["--deadline", "60"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("status=running"), "guest did not start: \(run.stdout) \(run.stderr)")
        let children = VmdHarness.children(of: run.process.processIdentifier)
        XCTAssertEqual(children.count, 1, "vmd runs one vm process")
        let vmPid = try XCTUnwrap(children.first)
        XCTAssertEqual(vm.vmProcesses(), [vmPid])

        let slotFlags = VmdHarness.slotFlags(pid: vmPid, vmName: vm.name)
        XCTAssertEqual(slotFlags.count, 1, "one RAM slot for 64M")
        for flags in slotFlags {
            XCTAssertTrue(flags.isSuperset(of: ["dc", "dd", "sl"]), "\(flags)")
            XCTAssertFalse(flags.contains("ex"))
        }

        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(vmPid)/fd")) ?? []
        let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vmPid)/fd/\($0)") }
        XCTAssertFalse(targets.contains(VmdHarness.guestKit), "the vm process keeps no boot file open: \(targets)")
        XCTAssertFalse(targets.contains { $0.hasPrefix("/memfd:vmd-\(vm.name)-ram") }, "guest RAM memfds are closed after mapping: \(targets)")
        // The one memfd vm keeps is a live migration's dirty-page bitmap (made before the sandbox), not guest RAM.
        XCTAssertEqual(targets.filter { $0.hasPrefix("/memfd:") }, ["/memfd:vmd-dirty-pages (deleted)"], "\(targets)")

        kill(run.process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
        XCTAssertEqual(run.status, 67, run.stderr)
        XCTAssertTrue(run.stderr.contains("stopped by signal"), run.stderr)
        XCTAssertEqual(vm.vmProcesses(), [], "SIGTERM to vmd leaves no vm process behind")
    }

    func testMissingBootImageFailsBeforeAnythingStarts() throws {
        let vm = try VmdHarness("missing")
        let run = try vm.run(config: try vm.writeConfig(boot: "/nonexistent/kernel.elf", cmdline: ""))
        XCTAssertEqual(run.status, 71, run.stderr)
        XCTAssertTrue(run.stderr.contains("/nonexistent/kernel.elf"), run.stderr)
        XCTAssertTrue(run.stderr.contains("No such file or directory"), run.stderr)
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    /// vmd starts a VM's processes without waiting for each exec: a program that cannot run
    /// still fails the start with its own error (not a send to a process that is gone), and
    /// nothing is left running.
    func testADeviceProgramThatCannotRunFailsTheStartWithItsOwnError() throws {
        try VmdHarness.requireKVMAndRoot()
        let vm = try VmdHarness("noblkprogram")
        // vmd and vm beside each other, and no virtio-blk.
        let bin = vm.directory.appendingPathComponent("bin").path
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for program in ["vmd", "vm"] {
            try FileManager.default.copyItem(atPath: VmdHarness.productsDirectory + "/" + program, toPath: bin + "/" + program)
        }
        let disk = vm.directory.appendingPathComponent("disk.img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        let config = try vm.writeConfig(cmdline: "test=boot", extra: "    disk \"\(disk)\"\n")
        let run = VmdHarness.runCommand([bin + "/vmd", "boot", config, "--deadline", "30"])
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("\(bin)/virtio-blk"), run.output)
        XCTAssertTrue(run.output.contains("No such file or directory"), run.output)
        XCTAssertFalse(run.output.contains("Broken pipe"), run.output)
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    func testNotAnELFIsRefusedWithAReason() throws {
        let vm = try VmdHarness("notelf")
        let bogus = vm.directory.appendingPathComponent("kernel.txt").path
        try String(repeating: "not a kernel\n", count: 10).write(toFile: bogus, atomically: true, encoding: .utf8)
        let run = try vm.run(config: try vm.writeConfig(boot: bogus, cmdline: ""), arguments: ["--deadline", "30"])
        // Refused by vmd before any process starts, at the boot line.
        XCTAssertEqual(run.status, 71, run.stderr)
        XCTAssertTrue(run.stderr.contains("guest.conf:3:5: boot \(bogus): the kernel image is not an ELF file or a bzImage"), run.stderr)
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    func testMalformedConfigNamesFileLineAndColumn() throws {
        let vm = try VmdHarness("badconf")
        let path = vm.directory.appendingPathComponent("bad.conf").path
        try "vm \"x\" {\n    memory lots\n    boot \"k.elf\"\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let run = try vm.run(config: path)
        XCTAssertEqual(run.status, 78, run.stderr)
        XCTAssertTrue(run.stderr.contains("\(path):2:12:"), run.stderr)
        XCTAssertTrue(run.stderr.contains("expected a size"), run.stderr)
    }
}

import Foundation
import Glibc
import XCTest

/// virtio-net in its own process with a tap, checked from a network namespace
/// the test makes (issue: virtio-net). Traffic stays inside that namespace.
final class NetDeviceTests: XCTestCase {
    private var namespace = ""

    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
        guard FileManager.default.fileExists(atPath: "/dev/net/tun") else {
            print("SKIP: /dev/net/tun is missing")
            throw XCTSkip("/dev/net/tun is missing")
        }
        namespace = "vmdtest\(getpid())"
        XCTAssertEqual(command("/usr/sbin/ip", "netns", "add", namespace), 0)
        XCTAssertEqual(command("/usr/sbin/ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"), 0)
    }

    override func tearDown() {
        if !namespace.isEmpty { _ = command("/usr/sbin/ip", "netns", "del", namespace) }
    }

    @discardableResult
    private func command(_ arguments: String..., output: inout String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        guard (try? process.run()) != nil else { return -1 }
        output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus
    }

    private func command(_ arguments: String...) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// vmd boot inside the namespace.
    private func startVM(_ vm: VmdHarness, cmdline: String, interface: String = "local interface") throws -> VmdHarness.Run {
        let config = try vm.writeConfig(cmdline: cmdline, memory: "128M", extra: "    \(interface)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace, VmdHarness.productsDirectory + "/vmd", "boot", config, "--deadline", "90"]
        let stdoutPath = vm.directory.appendingPathComponent("stdout").path
        let stderrPath = vm.directory.appendingPathComponent("stderr").path
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return VmdHarness.Run(process: process, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    func testGuestGetsDHCPAnswersPingAndEchoesTenThousandDatagrams() throws {
        let vm = try VmdHarness("net")
        let run = try startVM(vm, cmdline: "test=net dhcp=1 seconds=60")
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("READY-NET ip=100.64.0.1"), "DHCP from the device: \(run.stdout)\n\(run.stderr)")
        XCTAssertEqual(VmdHarness.result("net-up", in: run.stdout)?["method"], "dhcp")

        var ping = ""
        XCTAssertEqual(command("/usr/sbin/ip", "netns", "exec", namespace, "ping", "-c", "5", "-i", "0.2", "-W", "2", "100.64.0.1", output: &ping), 0, ping)
        XCTAssertTrue(ping.contains("5 received"), ping)

        var echo = ""
        let script = VmdHarness.packageRoot.appendingPathComponent("Guest/tools/udp-echo-check.py").path
        XCTAssertEqual(command("/usr/sbin/ip", "netns", "exec", namespace, "python3", script, "100.64.0.1", "7", "10000", output: &echo), 0, echo)
        XCTAssertTrue(echo.contains("ok=10000 lost=0 bad=0"), echo)

        run.wait(seconds: 30)
        XCTAssertEqual(run.status, 0, run.stderr)
        let result = try XCTUnwrap(VmdHarness.result("net", in: run.stdout), run.stdout)
        XCTAssertEqual(result["status"], "pass")
        XCTAssertGreaterThanOrEqual(Int(result["echoed"] ?? "") ?? 0, 10000)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-net"), [])
    }

    func testOnlyTheNetProcessHoldsTheTap() throws {
        let vm = try VmdHarness("net-fds")
        let run = try startVM(vm, cmdline: "test=net dhcp=1 seconds=60")
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("READY-NET"), run.stdout + run.stderr)
        let vmPid = try XCTUnwrap(vm.processes(named: "vm").first)
        let netPid = try XCTUnwrap(vm.processes(named: "virtio-net").first)
        XCTAssertFalse(VmdHarness.openFiles(of: vmPid).contains("/dev/net/tun"), "the vm process holds no tap")
        XCTAssertTrue(VmdHarness.openFiles(of: netPid).contains("/dev/net/tun"), "the virtio-net process holds the tap")
        let vmdPid = run.process.processIdentifier  // `ip netns exec` execs vmd in place
        XCTAssertFalse(VmdHarness.openFiles(of: vmdPid).contains("/dev/net/tun"), "vmd handed the tap on and closed it")
        XCTAssertTrue(VmdHarness.slotFlags(pid: netPid, vmName: vm.name).allSatisfy { $0.isSuperset(of: ["dc", "dd", "sl"]) })
        kill(run.process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
    }

    func testStaticAddressOnANamedTap() throws {
        let vm = try VmdHarness("net-static")
        let run = try startVM(vm, cmdline: "test=net ip=10.77.0.2/24 seconds=60", interface: "interface \"vmdt0\" { lladdr 02:00:00:00:00:07 }")
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("READY-NET"), run.stdout + run.stderr)
        XCTAssertEqual(VmdHarness.result("net-up", in: run.stdout)?["mac"], "02:00:00:00:00:07")
        XCTAssertEqual(command("/usr/sbin/ip", "netns", "exec", namespace, "ip", "addr", "add", "10.77.0.1/24", "dev", "vmdt0"), 0)
        var ping = ""
        XCTAssertEqual(command("/usr/sbin/ip", "netns", "exec", namespace, "ping", "-c", "3", "-W", "2", "10.77.0.2", output: &ping), 0, ping)
        kill(run.process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
    }
}

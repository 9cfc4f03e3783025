import Foundation
import Glibc
import XCTest

/// virtio-net in its own process with a tap, checked from a network namespace
/// the test makes (issue: virtio-net). Traffic stays inside that namespace.
final class NetDeviceTests: XCTestCase {
    private var namespace: NetworkNamespace!

    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
        try NetworkNamespace.requireTun()
        namespace = try NetworkNamespace("vmdtest")
    }

    override func tearDown() {
        namespace = nil
    }

    /// vmd boot inside the namespace.
    private func startVM(_ vm: VmdHarness, cmdline: String, interface: String = "local interface") throws -> VmdHarness.Run {
        let config = try vm.writeConfig(cmdline: cmdline, memory: "128M", extra: "    \(interface)")
        return try namespace.startVmd(vm, config: config, arguments: ["--deadline", "90"])
    }

    func testGuestGetsDHCPAnswersPingAndEchoesTenThousandDatagrams() throws {
        let vm = try VmdHarness("net")
        let run = try startVM(vm, cmdline: "test=net dhcp=1 seconds=60")
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("READY-NET ip=100.64.0.1"), "DHCP from the device: \(run.stdout)\n\(run.stderr)")
        XCTAssertEqual(VmdHarness.result("net-up", in: run.stdout)?["method"], "dhcp")

        let ping = namespace.exec(["ping", "-c", "5", "-i", "0.2", "-W", "2", "100.64.0.1"])
        XCTAssertEqual(ping.status, 0, ping.output)
        XCTAssertTrue(ping.output.contains("5 received"), ping.output)

        let script = VmdHarness.packageRoot.appendingPathComponent("Guest/tools/udp-echo-check.py").path
        let echo = namespace.exec(["python3", script, "100.64.0.1", "7", "10000"])
        XCTAssertEqual(echo.status, 0, echo.output)
        XCTAssertTrue(echo.output.contains("ok=10000 lost=0 bad=0"), echo.output)

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
        XCTAssertEqual(namespace.exec(["ip", "addr", "add", "10.77.0.1/24", "dev", "vmdt0"]).status, 0)
        let ping = namespace.exec(["ping", "-c", "3", "-W", "2", "10.77.0.2"])
        XCTAssertEqual(ping.status, 0, ping.output)
        kill(run.process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
    }
}

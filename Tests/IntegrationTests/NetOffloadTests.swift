import Foundation
import Glibc
import LinuxSystem
import XCTest

/// USO end to end: the guest kit negotiates CSUM and HOST_USO and hands the device one
/// frame per 10 000-byte send; the device passes its header to the tap, the host kernel
/// cuts the frame into seven datagrams (six of 1472 bytes, one of 1168), and a receiver in
/// the test's namespace checks each one's length and bytes in arrival order, and their
/// number. Needs Linux 6.2 or later (USO on a tap), else it skips.
final class NetOffloadTests: XCTestCase {
    private let sends = 300
    private let size = 10_000
    private let segment = 1472

    func testUSOSendsArriveAsTheirDatagrams() throws {
        try NetworkNamespace.requireTun()
        try Self.requireTapUSO()
        let namespace = try NetworkNamespace("vmduso")
        let output = Pipe()
        let receiver = try namespace.startTool("udp-bench.py", ["recv", "9000", "--check", "\(size):\(segment)", "--max-seconds", "90"],
                                               stdout: output)
        defer { if receiver.isRunning { receiver.terminate() } }

        let vm = try VmdHarness("uso")
        let config = try vm.writeConfig(cmdline: "bench=net dir=tx size=\(size) seg=\(segment) uso=1 n=\(sends) "
                                        + "peer=100.64.0.0:9000 dhcp=1", memory: "128M", extra: "    local interface")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "90"])
        run.wait(seconds: 120)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let result = try XCTUnwrap(VmdHarness.result("bench-net", in: run.stdout), run.stdout)
        print("USO transmit: \(result)")
        XCTAssertEqual(result["status"], "pass", run.stdout)
        XCTAssertEqual(result["uso"], "1", "the device offers HOST_USO on this kernel: \(result)")
        XCTAssertEqual(result["frames"], "\(sends)", "one frame per send: \(result)")

        receiver.waitUntilExit()
        let line = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        print("receiver: \(line)")
        let received = VmdHarness.fields(line)
        let datagramsPerSend = (size + segment - 1) / segment
        XCTAssertEqual(received["count"], "\(sends * datagramsPerSend)", line)
        XCTAssertEqual(received["bytes"], "\(sends * size)", line)
        XCTAssertEqual(received["bad"], "0", line)
    }

    /// USO on a tap came with Linux 6.2 (TUN_F_USO4/6).
    static func requireTapUSO() throws {
        let release = KernelRelease.current
        guard release.isAtLeast(6, 2) else {
            print("SKIP: Linux \(release) has no USO on a tap (6.2 and later)")
            throw XCTSkip("Linux \(release) has no USO on a tap")
        }
    }
}

import Foundation
import Glibc
import XCTest

/// virtio-net with one queue pair per vCPU (VIRTIO_NET_F_MQ) end to end: the guest kit's
/// test=net-mq drives the control queue (refused commands get VIRTIO_NET_ERR, VQ_PAIRS_SET
/// gets OK), sends from one UDP port per pair through that pair, and checks that a peer
/// in the test's namespace echoes each flow back to the pair that sent it (the tap steers
/// by flow to the queue that transmitted it). The peer counts the tap's attached queues
/// from sysfs: every pair's after VQ_PAIRS_SET of all, one after VQ_PAIRS_SET 1.
final class NetMultiqueueIntegrationTests: XCTestCase {
    private func runGuest(cpus: Int) throws {
        try VmdHarness.requireKVMAndRoot()
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdmq")
        let peer = try namespace.startTool("mq-peer.py", ["9300", "--seconds", "60"])
        defer { if peer.isRunning { peer.terminate() } }

        let vm = try VmdHarness("mq\(cpus)")
        // The first local interface of a fresh vmd: the tap is 100.64.0.0/31, the guest .1.
        let config = try vm.writeConfig(cmdline: "test=net-mq ip=100.64.0.1 peer=100.64.0.0:9300 count=16 qsize=64",
                                        extra: "    cpus \(cpus)\n    local interface")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "60"])
        run.wait(seconds: 90)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let control = try XCTUnwrap(VmdHarness.result("net-mq-ctrl", in: run.stdout), run.stdout)
        XCTAssertEqual(control["status"], "pass", "\(control)")
        let result = try XCTUnwrap(VmdHarness.result("net-mq", in: run.stdout), run.stdout)
        print("net-mq with \(cpus) vCPUs: \(result)")
        XCTAssertEqual(result["status"], "pass", "\(result)\n\(run.stdout)\n\(run.stderr)")
        XCTAssertEqual(result["pairs"], "\(cpus)", "one queue pair per vCPU")
        XCTAssertEqual(result["own_queue"], "\(16 * cpus)", "every echo on the pair that sent its flow")
        XCTAssertEqual(result["tap_queues_wide"], "\(cpus)")
        XCTAssertEqual(result["tap_queues_narrow"], "1")
        peer.terminate()
        peer.waitUntilExit()
    }

    func testTwoPairsEachGetTheirOwnFlows() throws {
        try runGuest(cpus: 2)
    }

    func testFourPairsEachGetTheirOwnFlows() throws {
        try runGuest(cpus: 4)
    }

    /// The pairs in use are the device's own state: saved with `vmctl send` and put back by
    /// `vmctl receive`, on the new tap too. The kit holds between its exchanges while the VM
    /// is saved and restored, then its flows must come back on their own pairs again, with
    /// both of the new tap's queues attached.
    func testThePairsInUseSurviveSendAndReceive() throws {
        try VmdHarness.requireKVMAndRoot()
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdmqsnap")
        let peer = try namespace.startTool("mq-peer.py", ["9300", "--seconds", "120"])
        defer { if peer.isRunning { peer.terminate() } }

        let daemon = try DaemonHarness("mqsnap", namespace: namespace)
        let config = try daemon.writeGuestConfig("mqsnap", cmdline: "test=net-mq ip=100.64.0.1 peer=100.64.0.0:9300 count=16 qsize=64 hold=1",
                                                 extra: "    cpus 2\n    local interface")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        let before = daemon.directory.appendingPathComponent("before.out").path
        let console = daemon.start(["console", "mqsnap"], stdout: before)
        try console.run()
        let text = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        // Only a line whose newline is in: the console file grows a few bytes at a time, and
        // a check of a half-written line failed here once.
        let holding = {
            text(before).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                .first { $0.hasPrefix("info net-mq holding") }?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertTrue(daemon.eventually(30) { holding() != nil }, "\(text(before))\n\(daemon.log)")
        XCTAssertEqual(holding(), "info net-mq holding pairs=2 own_queue=32 tap_queues=2", text(before))

        let snapshot = daemon.directory.appendingPathComponent("mqsnap.snap").path
        let sent = try SnapshotTests.send(daemon, "mqsnap", to: snapshot)
        XCTAssertEqual(sent.status, 0, sent.stderr + daemon.log)
        let received = try SnapshotTests.receive(daemon, "mqsnap", from: snapshot)
        XCTAssertEqual(received.status, 0, received.stderr + daemon.log)
        let after = daemon.directory.appendingPathComponent("after.out").path
        let console2 = daemon.start(["console", "mqsnap"], stdout: after)
        try console2.run()
        try Self.releaseMovedGuest(daemon, console: console2, output: after, namespace: namespace, move: "send/receive")
    }

    /// A guest that `test=net-mq hold=1` holds, moved meanwhile (restored or migrated): sends
    /// it GO from `namespace` (where its tap now is) until it hears it, lets it finish, and
    /// checks what it found after the move: its pairs in use on the new tap, each flow on its
    /// own pair, and the announcement asked for with a config interrupt, acked and cleared.
    static func releaseMovedGuest(_ daemon: DaemonHarness, console: Process, output: String, namespace: NetworkNamespace,
                                  move: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        let go = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'GO', ('100.64.0.1', 20000))"
        XCTAssertTrue(daemon.eventually(30) {
            _ = namespace.exec(["python3", "-c", go])
            return text().contains("go=1")
        }, "the moved guest hears GO: \(text())\n\(daemon.log)", file: file, line: line)
        XCTAssertTrue(daemon.eventually(30) { !console.isRunning }, "the moved guest finishes: \(text())", file: file, line: line)
        let result = try XCTUnwrap(VmdHarness.result("net-mq", in: text()), text(), file: file, line: line)
        print("net-mq across \(move): \(result)")
        XCTAssertEqual(result["status"], "pass", "\(result)", file: file, line: line)
        XCTAssertEqual(result["own_after_hold"], "32", "each flow on its own pair after the move", file: file, line: line)
        XCTAssertEqual(result["tap_queues_after_hold"], "2", "the new tap has both queues attached", file: file, line: line)
        XCTAssertEqual(result["announce_seen"], "1", "the moved device asks the guest to announce itself", file: file, line: line)
        XCTAssertEqual(result["announce_ack"], "0", "and takes its ack", file: file, line: line)
        XCTAssertEqual(result["announce_cleared"], "1", file: file, line: line)
        XCTAssertNotEqual(result["config_irqs"], "0", "with a config interrupt", file: file, line: line)
    }

    /// A VM of one vCPU has the plain device: no MQ offered, and the kit's MQ driver says so.
    func testOneVCPUHasNoMultiqueue() throws {
        try VmdHarness.requireKVMAndRoot()
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdmq1")
        let vm = try VmdHarness("mq1")
        let config = try vm.writeConfig(cmdline: "test=net-mq ip=100.64.0.1 peer=100.64.0.0:9300", extra: "    local interface")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "30"])
        run.wait(seconds: 60)
        let result = try XCTUnwrap(VmdHarness.result("net-mq", in: run.stdout), run.stdout)
        XCTAssertEqual(result["status"], "fail")
        XCTAssertEqual(result["reason"], "no-mq", "\(result)")
    }
}

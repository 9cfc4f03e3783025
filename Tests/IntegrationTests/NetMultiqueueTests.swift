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
        let peer = Process()
        peer.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        peer.arguments = ["netns", "exec", namespace.name, "python3",
                          VmdHarness.packageRoot.appendingPathComponent("Guest/tools/mq-peer.py").path, "9300", "--seconds", "60"]
        let output = Pipe()
        peer.standardOutput = output
        try peer.run()
        defer { if peer.isRunning { peer.terminate() } }
        Thread.sleep(forTimeInterval: 0.5)  // bound before the guest sends

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

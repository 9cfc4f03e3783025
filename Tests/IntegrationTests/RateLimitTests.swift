import Foundation
import Glibc
import XCTest

/// `disk ... { bandwidth; ops }` and `interface { packets }` held by the device processes
/// under a real guest (issue 18, item 5). The guest kit's benchmark modes push as hard as
/// they can; what they report may not beat the limit plus its burst. The lower bounds only
/// say the limited device still makes progress (a quarter of its limit), not how fast it is.
final class RateLimitTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func benchBlk(_ name: String, limits: String, cmdline: String) throws -> [String: String] {
        let vm = try VmdHarness(name)
        let image = vm.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: nil)
        XCTAssertEqual(truncate(image, 16 << 20), 0)
        let config = try vm.writeConfig(cmdline: cmdline, extra: "    disk \"\(image)\" { \(limits) }")
        let run = try vm.run(config: config, arguments: ["--deadline", "120"], seconds: 150)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let result = try XCTUnwrap(VmdHarness.result("bench-blk", in: run.stdout), run.stdout)
        XCTAssertEqual(result["status"], "pass", run.stdout)
        print("rate-limited disk (\(limits)): \(result)")
        return result
    }

    /// 600 reads at depth 8 against 200 a second with a burst of 20: at least 2.9 s.
    func testADisksOpsLimitHoldsItsRequestRate() throws {
        let result = try benchBlk("rl-ops", limits: "ops 200 burst 20", cmdline: "bench=blk rw=randread bs=4096 qd=8 n=600")
        let iops = try XCTUnwrap(Double(result["iops"] ?? ""), "\(result)")
        XCTAssertLessThanOrEqual(iops, 600 / ((600 - 21) / 200.0), "\(result)")
        XCTAssertGreaterThan(iops, 50, "\(result)")
    }

    /// 4 MiB of 64 KiB reads against 1 MiB/s with a burst of 128 KiB: at least 3.8 s, each
    /// request charged its data bytes.
    func testADisksBandwidthLimitHoldsItsByteRate() throws {
        let result = try benchBlk("rl-bw", limits: "bandwidth 1M burst 128K", cmdline: "bench=blk rw=read bs=65536 qd=4 n=64")
        let megabytesPerSecond = try XCTUnwrap(Double(result["mbps"] ?? ""), "\(result)")
        let fastest = 4.194304 / ((4_194_304.0 - 131_072 - 65_536) / 1_048_576)
        XCTAssertLessThanOrEqual(megabytesPerSecond, fastest, "\(result)")
        XCTAssertGreaterThan(megabytesPerSecond, 0.25, "\(result)")
    }

    /// 2400 datagrams sent by the guest against 400 packets a second, burst 40. The guest's
    /// clock stops when it has put the last one on its transmit ring, which holds up to
    /// 256 the device has not sent yet: so at least (2400 - 41 - 256) / 400 = 5.3 s. The
    /// host side is a network namespace the test makes; nobody listens on the port, so the
    /// datagrams end there.
    func testAnInterfacesPacketLimitHoldsWhatTheGuestSends() throws {
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdrl")
        let vm = try VmdHarness("rl-net")
        let config = try vm.writeConfig(cmdline: "bench=net dir=tx size=64 n=2400 peer=100.64.0.0:9 dhcp=1 qsize=256", memory: "128M",
                                        extra: "    local interface { packets 400 burst 40 }")
        let run = try namespace.startVmd(vm, config: config, arguments: ["--deadline", "90"])
        run.wait(seconds: 120)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let result = try XCTUnwrap(VmdHarness.result("bench-net", in: run.stdout), run.stdout)
        XCTAssertEqual(result["status"], "pass", run.stdout)
        let packetsPerSecond = try XCTUnwrap(Double(result["pps"] ?? ""), "\(result)")
        print("rate-limited interface (packets 400 burst 40): \(result)")
        XCTAssertEqual(result["frames"], "2400", "\(result)")
        XCTAssertLessThanOrEqual(packetsPerSecond, 2400 / ((2400 - 41 - 256) / 400.0), "\(result)")
        XCTAssertGreaterThan(packetsPerSecond, 100, "\(result)")
    }
}

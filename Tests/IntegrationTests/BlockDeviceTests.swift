import Foundation
import Glibc
import XCTest

/// virtio-blk served by its own process straight from KVM eventfds (issue: virtio-blk).
final class BlockDeviceTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func makeImage(_ vm: VmdHarness, name: String = "disk.img", bytes: Int) throws -> String {
        let path = vm.directory.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: nil)
        XCTAssertEqual(truncate(path, off_t(bytes)), 0)
        return path
    }

    /// The guest kit's pattern: each 8-byte word at disk offset `off` holds off ^ (seed × golden ratio).
    static func checkPattern(image: String, seed: UInt64, skipping skipped: Range<Int>) throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: image))
        var mismatches = 0
        data.withUnsafeBytes { raw in
            let key = seed &* 0x9E37_79B9_7F4A_7C15
            for offset in stride(from: 0, to: raw.count, by: 8) where !skipped.contains(offset / 512) {
                let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                if UInt64(littleEndian: word) != UInt64(offset) ^ key { mismatches += 1 }
            }
        }
        return mismatches
    }

    func testGuestKitBlockTestPassesAndThePatternReachesTheImage() throws {
        let vm = try VmdHarness("blk")
        let image = try makeImage(vm, bytes: 2 << 20)
        let readOnly = try makeImage(vm, name: "ro.img", bytes: 1 << 20)
        let config = try vm.writeConfig(cmdline: "test=blk seed=9", extra: """
                disk "\(image)"
                disk "\(readOnly)" readonly
            """)
        let run = try vm.run(config: config, arguments: ["--deadline", "120"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let result = try XCTUnwrap(VmdHarness.result("blk", in: run.stdout), run.stdout)
        XCTAssertEqual(result["status"], "pass")
        XCTAssertEqual(result["disks"], "2")
        XCTAssertGreaterThan(Int(result["interrupts"] ?? "") ?? 0, 0, "completions arrived as MSI-X interrupts")
        for check in ["blk-msix", "blk-msix-mask", "blk-pattern", "blk-flush", "blk-write-zeroes", "blk-discard", "blk-read-past-end", "blk-readonly-write"] {
            XCTAssertEqual(VmdHarness.result(check, in: run.stdout)?["status"], "pass", "\(check): \(run.stdout)")
        }
        // With the VM gone, the host reads the guest's pattern back (sectors 8–15 zeroed, 16–23 discarded).
        XCTAssertEqual(try Self.checkPattern(image: image, seed: 9, skipping: 8..<24), 0)
        let zeroed = try Data(contentsOf: URL(fileURLWithPath: image))[(8 * 512)..<(16 * 512)]
        XCTAssertTrue(zeroed.allSatisfy { $0 == 0 }, "write-zeroes reached the image")
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    /// VIRTIO_BLK_F_MQ: with 4 vCPUs each disk has 4 request queues, each on its own ring
    /// and MSI-X entry (the kit masks each entry in turn and finds its PBA bit set); one
    /// disk on the page cache (served in the loop), one under `cache none` (served by the
    /// workers, whose completions go back to the queue each request came from).
    func testFourVCPUsGiveEachDiskFourRequestQueues() throws {
        let vm = try VmdHarness("blk-mq")
        let cached = try makeImage(vm, bytes: 1 << 20)
        let direct = try makeImage(vm, name: "direct.img", bytes: 1 << 20)
        let config = try vm.writeConfig(cmdline: "test=blk seed=5 expect_queues=4", extra: """
                cpus 4
                disk "\(cached)"
                disk "\(direct)" cache none
            """)
        let run = try vm.run(config: config, arguments: ["--deadline", "120"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let results = run.stdout.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("RESULT name=blk-mq ") }
        XCTAssertEqual(results.count, 2, run.stdout)
        for line in results {
            for field in ["status=pass", "queues=4", "rings_ok=4", "vectors_ok=4", "bad_words=0"] {
                XCTAssertTrue(line.split(separator: " ").contains(Substring(field)), "\(field) in \(line)")
            }
        }
        XCTAssertEqual(VmdHarness.result("blk", in: run.stdout)?["status"], "pass", run.stdout)
        for image in [cached, direct] {
            XCTAssertEqual(try Self.checkPattern(image: image, seed: 5, skipping: 8..<24), 0, image)
        }
    }

    /// One vCPU, one queue: the kit skips its queue check rather than pass it vacuously.
    func testOneVCPUGivesOneRequestQueue() throws {
        let vm = try VmdHarness("blk-1q")
        let image = try makeImage(vm, bytes: 1 << 20)
        let run = try vm.run(config: try vm.writeConfig(cmdline: "test=blk seed=6", extra: "    disk \"\(image)\""),
                             arguments: ["--deadline", "120"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let mq = try XCTUnwrap(VmdHarness.result("blk-mq", in: run.stdout), run.stdout)
        XCTAssertEqual(mq["status"], "skip")
        XCTAssertEqual(mq["queues"], "1")
        XCTAssertEqual(mq["reason"], "one-queue")
    }

    /// The disk's lock goes with its VM: the moment `vmd boot` has returned, another VM may
    /// take the image. (A file registered with the device's io_uring was let go by the
    /// kernel's asynchronous ring teardown 10-25 ms later, and a VM started again at once
    /// was refused with "in use by another VM".)
    func testTheDiskIsFreeTheMomentItsVMHasEnded() throws {
        let vm = try VmdHarness("blk-relock")
        let image = try makeImage(vm, bytes: 1 << 20)
        let config = try vm.writeConfig(cmdline: "test=blk seed=8", extra: "    disk \"\(image)\"")
        for round in 0..<3 {
            let run = try vm.run(config: config, arguments: ["--deadline", "60"])
            XCTAssertEqual(run.status, 0, "round \(round): \(run.stderr)")
            let probe = open(image, O_RDWR)
            XCTAssertGreaterThanOrEqual(probe, 0)
            XCTAssertEqual(flock(probe, LOCK_EX | LOCK_NB), 0, "round \(round): the image is still locked (errno \(errno))")
            close(probe)
        }
    }

    func testWithoutEventIndexAndIndirectDescriptors() throws {
        let vm = try VmdHarness("blk-plain")
        let image = try makeImage(vm, bytes: 1 << 20)
        let config = try vm.writeConfig(cmdline: "test=blk seed=3 event_idx=0 indirect=0", extra: "    disk \"\(image)\"")
        let run = try vm.run(config: config, arguments: ["--deadline", "120"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let result = try XCTUnwrap(VmdHarness.result("blk", in: run.stdout), run.stdout)
        XCTAssertEqual(result["event_idx"], "0")
        XCTAssertEqual(result["indirect"], "0")
        XCTAssertEqual(try Self.checkPattern(image: image, seed: 3, skipping: 8..<24), 0)
    }

    func testGuestMovingTheBARMovesTheTransportAndItsIOEventFDs() throws {
        // pci_assign=all makes the kit reprogram every BAR before using the device.
        let vm = try VmdHarness("blk-bar")
        let image = try makeImage(vm, bytes: 1 << 20)
        let config = try vm.writeConfig(cmdline: "test=blk seed=4 pci_assign=all", extra: "    disk \"\(image)\"")
        let run = try vm.run(config: config, arguments: ["--deadline", "120"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        XCTAssertEqual(VmdHarness.result("blk", in: run.stdout)?["status"], "pass", run.stdout)
        XCTAssertEqual(try Self.checkPattern(image: image, seed: 4, skipping: 8..<24), 0)
    }

    func testDiskIsServedByItsOwnProcessAndTheVMProcessHasNoImageFD() throws {
        let vm = try VmdHarness("blk-procs")
        let image = try makeImage(vm, bytes: 1 << 20)
        let run = try vm.start(config: try vm.writeConfig(cmdline: "test=hang", extra: "    disk \"\(image)\""),
                               arguments: ["--deadline", "60"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("status=running"), "guest did not start: \(run.stdout) \(run.stderr)")
        let vmPids = vm.processes(named: "vm")
        let blkPids = vm.processes(named: "virtio-blk")
        XCTAssertEqual(vmPids.count, 1)
        XCTAssertEqual(blkPids.count, 1, "one virtio-blk process for one disk")
        guard let vmPid = vmPids.first, let blkPid = blkPids.first else { return }
        XCTAssertNotEqual(vmPid, blkPid)

        XCTAssertFalse(VmdHarness.openFiles(of: vmPid).contains(image), "the vm process holds no fd of the image")
        XCTAssertTrue(VmdHarness.openFiles(of: blkPid).contains(image), "the device process holds the image")
        let flags = VmdHarness.slotFlags(pid: blkPid, vmName: vm.name)
        XCTAssertEqual(flags.count, 1, "the device process maps guest RAM")
        for slot in flags {
            XCTAssertTrue(slot.isSuperset(of: ["dc", "dd", "sl"]), "\(slot)")
            XCTAssertFalse(slot.contains("ex"))
        }
        kill(run.process.processIdentifier, SIGTERM)
        run.wait(seconds: 20)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-blk"), [])
    }

    func testKillingTheDeviceProcessStopsTheVM() throws {
        let vm = try VmdHarness("blk-kill")
        let image = try makeImage(vm, bytes: 1 << 20)
        let run = try vm.start(config: try vm.writeConfig(cmdline: "test=hang", extra: "    disk \"\(image)\""),
                               arguments: ["--deadline", "60"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput("status=running"), "guest did not start: \(run.stdout) \(run.stderr)")
        let blk = try XCTUnwrap(vm.processes(named: "virtio-blk").first)
        kill(blk, SIGKILL)
        run.wait(seconds: 20)
        XCTAssertEqual(run.status, 70, run.stderr)
        XCTAssertTrue(run.stderr.contains("virtio-blk disk0 process killed by signal 9"), run.stderr)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-blk"), [])
    }

    func testLockedOrMissingImagesAreRefusedBeforeAnythingStarts() throws {
        let vm = try VmdHarness("blk-locked")
        let image = try makeImage(vm, bytes: 1 << 20)
        let holder = open(image, O_RDWR)
        defer { close(holder) }
        XCTAssertEqual(flock(holder, LOCK_SH), 0, "another VM (here: the test) uses the image")
        var run = try vm.run(config: try vm.writeConfig(cmdline: "test=boot", extra: "    disk \"\(image)\""))
        XCTAssertEqual(run.status, 71, run.stderr)
        XCTAssertTrue(run.stderr.contains("disk \(image) is in use by another VM (locked)"), run.stderr)
        XCTAssertTrue(run.stderr.contains("guest.conf:5:"), "names the disk line: \(run.stderr)")

        run = try vm.run(config: try vm.writeConfig(cmdline: "test=boot", extra: "    disk \"/nonexistent.img\""))
        XCTAssertEqual(run.status, 71, run.stderr)
        XCTAssertTrue(run.stderr.contains("disk /nonexistent.img: No such file or directory"), run.stderr)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-blk"), [])
    }
}

import Foundation
import Glibc
import XCTest

/// qcow2 disks under a running VM: the guest kit's `test=blk` on a fresh image, on an
/// overlay of a raw base, and on a chain of three; qemu-img (Debian's qemu-utils) checks
/// each afterwards and converts it back to raw for the pattern check.
final class Qcow2DiskTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img") else {
            print("SKIP: qemu-img is missing (Debian's qemu-utils; scripts/setup installs it)")
            throw XCTSkip("qemu-img is missing")
        }
    }

    private func qemuImg(_ arguments: [String]) -> (status: Int32, output: String) {
        VmdHarness.runCommand(["/usr/bin/qemu-img"] + arguments, seconds: 60)
    }

    private func sha256(_ path: String) -> String {
        VmdHarness.runCommand(["/usr/bin/sha256sum", path]).output.split(separator: " ").first.map(String.init) ?? ""
    }

    /// Boots test=blk on `top` (format qcow2), then checks the image and the pattern.
    private func runBlockTest(_ vm: VmdHarness, top: String, seed: UInt64, options: String = "",
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try vm.writeConfig(cmdline: "test=blk seed=\(seed)", extra: "    disk \"\(top)\" format qcow2\(options)")
        let run = try vm.run(config: config, arguments: ["--deadline", "120", "-v"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)", file: file, line: line)
        XCTAssertEqual(VmdHarness.result("blk", in: run.stdout)?["status"], "pass", run.stdout, file: file, line: line)
        let check = qemuImg(["check", top])
        XCTAssertEqual(check.status, 0, check.output, file: file, line: line)
        XCTAssertTrue(check.output.contains("No errors were found"), check.output, file: file, line: line)
        let raw = vm.directory.appendingPathComponent("converted.raw").path
        XCTAssertEqual(qemuImg(["convert", "-O", "raw", top, raw]).status, 0, file: file, line: line)
        XCTAssertEqual(try BlockDeviceTests.checkPattern(image: raw, seed: seed, skipping: 8..<24), 0, "the guest's pattern", file: file, line: line)
        unlink(raw)
    }

    func testGuestKitBlockTestOnAFreshQcow2Image() throws {
        let vm = try VmdHarness("qcow2")
        let image = vm.directory.appendingPathComponent("disk.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", image, "2M"]).status, 0)
        try runBlockTest(vm, top: image, seed: 11)
    }

    /// An image with extended L2 entries (subclusters) over a zstd-compressed base: the
    /// kit's writes land in the top, the base is unchanged, both as qemu-img sees them.
    func testGuestKitBlockTestOnSubclustersOverAZstdBase() throws {
        let vm = try VmdHarness("qcow2-ext")
        let raw = vm.directory.appendingPathComponent("base.raw").path
        FileManager.default.createFile(atPath: raw, contents: Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 / 512) }))
        let base = vm.directory.appendingPathComponent("base.qcow2").path
        XCTAssertEqual(qemuImg(["convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", raw, base]).status, 0)
        let baseHash = sha256(base)
        let top = vm.directory.appendingPathComponent("top.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-o", "extended_l2=on", "-b", "base.qcow2", "-F", "qcow2", top]).status, 0)
        try runBlockTest(vm, top: top, seed: 14)
        XCTAssertEqual(sha256(base), baseHash, "the base is read-only to the guest")
    }

    /// A qcow2 image whose data is in an external raw data file: vmd opens the file the
    /// header names and hands it to the device with the image; the kit's writes go there,
    /// its FLUSHes reach both files, and the data file is itself the disk afterwards.
    func testGuestKitBlockTestOnAnImageWithAnExternalDataFile() throws {
        let vm = try VmdHarness("qcow2-data")
        let image = vm.directory.appendingPathComponent("disk.qcow2").path
        let data = vm.directory.appendingPathComponent("disk.data").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-o", "data_file=\(data),data_file_raw=on", image, "2M"]).status, 0)
        try runBlockTest(vm, top: image, seed: 15)
        XCTAssertEqual(try BlockDeviceTests.checkPattern(image: data, seed: 15, skipping: 8..<24), 0, "the raw data file holds the guest's pattern")
    }

    /// An image QEMU was killed in with refcount updates deferred (lazy refcounts): `vmd -n`
    /// says what the start will do, vmd starts the VM (it used to refuse the image), its
    /// device rebuilds the refcounts before the guest writes and says so, and the kit's test
    /// passes with the image clean after.
    func testAVMStartsOnADirtyImageWhoseRefcountsItsDeviceRebuilds() throws {
        let vm = try VmdHarness("qcow2-dirty")
        let image = vm.directory.appendingPathComponent("dirty.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", image, "2M"]).status, 0)
        _ = VmdHarness.runCommand(["/usr/bin/qemu-io", "-c", "write -P 0x5a 0 1M", "-c", "sigraise 9", image], seconds: 60)
        XCTAssertTrue(qemuImg(["check", image]).output.contains("ERROR"), "qemu-io left it with refcounts missing")
        let config = try vm.writeConfig(cmdline: "test=blk seed=16", extra: "    disk \"\(image)\" format qcow2")
        let checked = VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmd", "-n", "-f", config])
        XCTAssertEqual(checked.status, 0, checked.output)
        XCTAssertTrue(checked.output.contains("is dirty (lazy refcounts"), "vmd -n says what the start will do: \(checked.output)")
        let run = try vm.run(config: config, arguments: ["--deadline", "120", "-v"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        XCTAssertTrue(run.stderr.contains("its refcounts were rebuilt"), run.stderr)
        XCTAssertEqual(VmdHarness.result("blk", in: run.stdout)?["status"], "pass", run.stdout)
        let check = qemuImg(["check", image])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.output.contains("No errors were found"), check.output)
    }

    func testAnOverlayLeavesItsBaseUnchangedAndAChainOfThreeWorks() throws {
        let vm = try VmdHarness("qcow2-chain")
        let base = vm.directory.appendingPathComponent("base.raw").path
        FileManager.default.createFile(atPath: base, contents: Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) }))
        let baseHash = sha256(base)
        let overlay = vm.directory.appendingPathComponent("overlay.qcow2").path
        // The backing file named relatively: vmd resolves it against the overlay's directory.
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", overlay]).status, 0)
        try runBlockTest(vm, top: overlay, seed: 12)
        XCTAssertEqual(sha256(base), baseHash, "the base is read-only to the guest")

        let middle = vm.directory.appendingPathComponent("middle.qcow2").path
        let top = vm.directory.appendingPathComponent("top.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-b", base, "-F", "raw", middle]).status, 0)
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-b", middle, "-F", "qcow2", top]).status, 0)
        let middleHash = sha256(middle)
        try runBlockTest(vm, top: top, seed: 13)
        XCTAssertEqual(sha256(base), baseHash)
        XCTAssertEqual(sha256(middle), middleHash, "only the top of the chain is written")
    }

    func testVmdRefusesALoopingOrMissingChainBeforeAnythingStarts() throws {
        let vm = try VmdHarness("qcow2-bad")
        let a = vm.directory.appendingPathComponent("a.qcow2").path
        let b = vm.directory.appendingPathComponent("b.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-u", "-b", b, "-F", "qcow2", a, "2M"]).status, 0)
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-u", "-b", a, "-F", "qcow2", b, "2M"]).status, 0)
        let missing = vm.directory.appendingPathComponent("missing-base.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-u", "-b", "nothere.raw", "-F", "raw", missing, "2M"]).status, 0)
        for (image, reason) in [(a, "the backing chain loops"), (missing, "backing file of \(missing)")] {
            let config = try vm.writeConfig(cmdline: "test=blk", extra: "    disk \"\(image)\" format qcow2")
            let run = try vm.run(config: config, arguments: ["--deadline", "30"])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertTrue(run.stderr.contains(reason), run.stderr)
            XCTAssertEqual(vm.vmProcesses(), [], "nothing started")
        }
        // A user's image may not make root's vmd open what the user could not read.
        let secret = vm.directory.appendingPathComponent("secret.raw").path
        FileManager.default.createFile(atPath: secret, contents: Data(count: 2 << 20), attributes: [.posixPermissions: 0o600])
        let users = vm.directory.appendingPathComponent("users.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", users, "2M"]).status, 0)
        XCTAssertEqual(chown(users, 65534, 65534), 0)
        let usersConfig = try vm.writeConfig(cmdline: "test=blk", extra: "    disk \"\(users)\" format qcow2")
        let refused = VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmd", "-n", "-f", usersConfig])
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.output.contains("names \(secret) as its backing file, which that user may not read"), refused.output)
        XCTAssertEqual(chmod(secret, 0o644), 0)
        XCTAssertEqual(VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmd", "-n", "-f", usersConfig]).status, 0,
                       "a file everyone may read may be named")
        // Nor as its external data file.
        let secretData = vm.directory.appendingPathComponent("secret.data").path
        let usersData = vm.directory.appendingPathComponent("users-data.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-o", "data_file=\(secretData)", usersData, "2M"]).status, 0)
        XCTAssertEqual(chmod(secretData, 0o600), 0)
        XCTAssertEqual(chown(usersData, 65534, 65534), 0)
        let dataConfig = try vm.writeConfig(cmdline: "test=blk", extra: "    disk \"\(usersData)\" format qcow2")
        let refusedData = VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmd", "-n", "-f", dataConfig])
        XCTAssertNotEqual(refusedData.status, 0, refusedData.output)
        XCTAssertTrue(refusedData.output.contains("names \(secretData) as its external data file, which that user may not read"), refusedData.output)

        // A raw disk is raw whatever it starts with; vmd -n says so.
        let disguised = vm.directory.appendingPathComponent("disguised.raw").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", disguised, "2M"]).status, 0)
        XCTAssertEqual(truncate(disguised, 1 << 20), 0, "whole sectors, as a raw disk must be")
        let config = try vm.writeConfig(cmdline: "test=blk", extra: "    disk \"\(disguised)\"")
        let checked = VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmd", "-n", "-f", config])
        XCTAssertEqual(checked.status, 0, checked.output)
        XCTAssertTrue(checked.output.contains("starts with the qcow2 magic but is raw here"), checked.output)

        // A writable qcow2 disk with dirty bitmaps: vmd -n says they will be dropped; read-only, nothing is said.
        let backedUp = vm.directory.appendingPathComponent("backed-up.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", backedUp, "2M"]).status, 0)
        XCTAssertEqual(qemuImg(["bitmap", "--add", backedUp, "incremental0"]).status, 0)
        for (options, warned) in [("", true), (" readonly", false)] {
            let bitmapConfig = try vm.writeConfig(cmdline: "test=blk", extra: "    disk \"\(backedUp)\" format qcow2\(options)")
            let bitmapCheck = VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmd", "-n", "-f", bitmapConfig])
            XCTAssertEqual(bitmapCheck.status, 0, bitmapCheck.output)
            XCTAssertEqual(bitmapCheck.output.contains("has persistent dirty bitmaps, which swift-vmd does not keep"), warned, bitmapCheck.output)
        }
    }

    /// QEMU's image locks, both ways: a VM here does not start on an image QEMU (qemu-io
    /// here) has open for writing; while a VM runs, qemu-img may neither write its disk or
    /// the disk's backing file nor open them without -U (force share), as with a QEMU VM;
    /// once the VM is gone it may.
    func testQemuAndVmdSeeEachOthersImageLocks() throws {
        let daemon = try DaemonHarness("qemu-locks")
        let base = daemon.directory.appendingPathComponent("base.raw").path
        let top = daemon.directory.appendingPathComponent("top.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "raw", base, "8M"]).status, 0)
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-b", base, "-F", "raw", top]).status, 0)
        let config = try daemon.writeGuestConfig("locked", cmdline: "test=migrate ticks=600 seed=3",
                                                 extra: "    disk \"\(top)\" format qcow2")

        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-io")
        holder.arguments = ["-f", "qcow2", "-c", "sleep 30000", top]
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        XCTAssertTrue(daemon.eventually(10) { (try? String(contentsOfFile: "/proc/locks", encoding: .utf8))?.contains("OFDLCK") == true })
        let refused = daemon.vmctl("start", config)
        holder.terminate()
        holder.waitUntilExit()
        XCTAssertNotEqual(refused.status, 0, refused.stdout)
        XCTAssertTrue(refused.stderr.contains("disk \(top): in use: another program (QEMU or qemu-img) has it open and"), refused.stderr)

        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        XCTAssertTrue(daemon.eventually { daemon.status()["locked"]?.state == "running" }, daemon.log)
        let write = VmdHarness.runCommand(["/usr/bin/qemu-io", "-f", "qcow2", "-c", "write 0 4k", top])
        XCTAssertNotEqual(write.status, 0, write.output)
        XCTAssertTrue(write.output.contains("Failed to get \"write\" lock"), write.output)
        let snapshot = qemuImg(["snapshot", "-c", "while-running", top])
        XCTAssertNotEqual(snapshot.status, 0, snapshot.output)
        let baseWrite = VmdHarness.runCommand(["/usr/bin/qemu-io", "-f", "raw", "-c", "write 0 4k", base])
        XCTAssertNotEqual(baseWrite.status, 0, "the backing file is not written under a running VM: \(baseWrite.output)")
        XCTAssertNotEqual(qemuImg(["info", top]).status, 0, "as with QEMU, info needs -U while the VM writes")
        XCTAssertEqual(qemuImg(["info", "-U", top]).status, 0)
        // vmctl create copies no image a VM writes, as qemu-img convert; an overlay of the read-only base is fine.
        let copy = daemon.directory.appendingPathComponent("copy.raw").path
        let copied = VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmctl", "create", "-i", top, copy])
        XCTAssertEqual(copied.status, 1, copied.output)
        XCTAssertTrue(copied.output.contains("input \(top): in use: another program (QEMU or qemu-img) has it open and writes it"), copied.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: copy))
        let overlay = daemon.directory.appendingPathComponent("overlay.qcow2").path
        XCTAssertEqual(VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmctl", "create", "-b", base, overlay]).status, 0)

        XCTAssertEqual(daemon.vmctl("stop", "-f", "-w", "locked").status, 0, daemon.log)
        let after = VmdHarness.runCommand(["/usr/bin/qemu-io", "-f", "qcow2", "-c", "write 0 4k", top])
        XCTAssertEqual(after.status, 0, "the locks went with the VM: \(after.output)")
        XCTAssertEqual(qemuImg(["check", top]).status, 0)
        XCTAssertEqual(VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmctl", "create", "-i", top, copy]).status, 0)
    }

    /// `cache none`: the images open O_DIRECT; the guest's test and the image checks are the same.
    func testCacheNoneOnQcow2AndRaw() throws {
        let vm = try VmdHarness("cache-none")
        let image = vm.directory.appendingPathComponent("direct.qcow2").path
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", image, "2M"]).status, 0)
        try runBlockTest(vm, top: image, seed: 14, options: " cache none")
        let raw = vm.directory.appendingPathComponent("direct.raw").path
        FileManager.default.createFile(atPath: raw, contents: nil)
        XCTAssertEqual(truncate(raw, 2 << 20), 0)
        let config = try vm.writeConfig(cmdline: "test=blk seed=15", extra: "    disk \"\(raw)\" cache none")
        let run = try vm.run(config: config, arguments: ["--deadline", "120", "-v"])
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        XCTAssertEqual(VmdHarness.result("blk", in: run.stdout)?["status"], "pass", run.stdout)
        XCTAssertEqual(try BlockDeviceTests.checkPattern(image: raw, seed: 15, skipping: 8..<24), 0)
    }
}

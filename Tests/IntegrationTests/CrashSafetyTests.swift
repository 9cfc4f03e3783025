import Foundation
import Glibc
import XCTest

/// Crash safety of virtio-blk: the guest kit's `test=crash` writes 4 KiB blocks with a
/// sequence number in every sector and, after each batch, waits for the writes and a
/// FLUSH; then it prints the highest sequence number that FLUSH covered. The test kills
/// the device process (or the whole VM) with SIGKILL in the middle of the writes and
/// demands from the image every write a completed FLUSH covered: each block holds at
/// least its last covered write, and every sector is a whole, well-formed one. A qcow2
/// image may leak clusters after a kill, but `qemu-img check` must find no corruption.
final class CrashSafetyTests: XCTestCase {
    static let blocks = 64
    static let magic: UInt64 = 0x48_5341_5243

    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img") else {
            print("SKIP: qemu-img is missing (Debian's qemu-utils; scripts/setup installs it)")
            throw XCTSkip("qemu-img is missing")
        }
    }

    private enum Target { case deviceProcess, wholeVM }

    private func crash(format: String, killing target: Target, cache: String = "writeback",
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let vm = try VmdHarness("crash-\(format)-\(cache)-\(target == .deviceProcess ? "device" : "vm")")
        let image = vm.directory.appendingPathComponent("disk.\(format)").path
        if format == "qcow2" {
            XCTAssertEqual(VmdHarness.runCommand(["/usr/bin/qemu-img", "create", "-f", "qcow2", image, "2M"]).status, 0)
        } else {
            FileManager.default.createFile(atPath: image, contents: nil)
            XCTAssertEqual(truncate(image, 2 << 20), 0)
        }
        let config = try vm.writeConfig(cmdline: "test=crash blocks=\(Self.blocks) qd=8 flush_every=64",
                                        extra: "    disk \"\(image)\" format \(format) cache \(cache)")
        let run = try vm.start(config: config, arguments: ["--deadline", "120", "--no-reboot"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        // Let a few FLUSHes complete (whole lines: the console arrives a byte at a time),
        // then kill in the middle of the next batch.
        func completeFlushLines() -> Int {
            run.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().filter { $0.hasPrefix("CRASH flushed seq=") }.count
        }
        let deadline = Date().addingTimeInterval(60)
        while completeFlushLines() < 3, Date() < deadline, run.process.isRunning { usleep(5_000) }
        let blk = try XCTUnwrap(vm.processes(named: "virtio-blk").first, "no device process: \(run.stdout) \(run.stderr)", file: file, line: line)
        switch target {
        case .deviceProcess:
            kill(blk, SIGKILL)
        case .wholeVM:
            for pid in vm.processes(named: "vm") + [blk] { kill(pid, SIGKILL) }
        }
        run.wait(seconds: 30, file: file, line: line)
        // Only whole lines count: the last may have been cut by the kill.
        let flushed = run.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().compactMap { line -> Int? in
            guard line.hasPrefix("CRASH flushed seq=") else { return nil }
            return Int(line.dropFirst("CRASH flushed seq=".count).trimmingCharacters(in: .whitespacesAndNewlines))
        }.max()
        let covered = try XCTUnwrap(flushed, "no FLUSH completed: \(run.stdout)", file: file, line: line)
        XCTAssertGreaterThanOrEqual(covered, 3 * 64, "three batches at least", file: file, line: line)

        var raw = image
        if format == "qcow2" {
            let check = VmdHarness.runCommand(["/usr/bin/qemu-img", "check", image])
            // 0: clean; 3: leaked clusters only (allowed after a kill); 1 or 2: errors, corruption.
            XCTAssertTrue(check.status == 0 || check.status == 3, "qemu-img check after the kill:\n\(check.output)", file: file, line: line)
            raw = vm.directory.appendingPathComponent("converted.raw").path
            XCTAssertEqual(VmdHarness.runCommand(["/usr/bin/qemu-img", "convert", "-O", "raw", image, raw]).status, 0, file: file, line: line)
        }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: raw)))
        func word(_ offset: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) } }
        var problems: [String] = []
        for block in 0..<Self.blocks {
            // The last write to this block that the FLUSH covered.
            var expected = covered - ((covered - block) % Self.blocks + Self.blocks) % Self.blocks
            if expected <= 0 { expected = 0 }
            for sector in 0..<8 {
                let base = (block * 8 + sector) * 512
                let seq = word(base + 8)
                if expected == 0 && word(base) == 0 { continue }  // never written before the kill
                let wellFormed = word(base) == Self.magic && word(base + 16) == UInt64(block) && seq % UInt64(Self.blocks) == UInt64(block)
                    && (3..<64).allSatisfy { word(base + 8 * $0) == seq ^ (UInt64(sector) << 56) }
                if !wellFormed || seq < UInt64(expected) {
                    problems.append("block \(block) sector \(sector): seq \(seq), expected at least \(expected)\(wellFormed ? "" : ", malformed")")
                }
            }
        }
        XCTAssertEqual(problems, [], "after the last completed FLUSH (seq \(covered)), the image lost: \(problems.prefix(5))", file: file, line: line)
        XCTAssertEqual(vm.processes(named: "vm") + vm.processes(named: "virtio-blk"), [], file: file, line: line)
    }

    func testRawSurvivesKillingItsDeviceProcess() throws { try crash(format: "raw", killing: .deviceProcess) }
    func testRawSurvivesKillingTheWholeVM() throws { try crash(format: "raw", killing: .wholeVM) }
    func testQcow2SurvivesKillingItsDeviceProcess() throws { try crash(format: "qcow2", killing: .deviceProcess) }
    func testQcow2SurvivesKillingTheWholeVM() throws { try crash(format: "qcow2", killing: .wholeVM) }
    /// `cache none` on raw: requests in flight on the device's workers when the kill comes.
    func testRawWithCacheNoneSurvivesKillingItsDeviceProcess() throws { try crash(format: "raw", killing: .deviceProcess, cache: "none") }
    func testQcow2WithCacheNoneSurvivesKillingTheWholeVM() throws { try crash(format: "qcow2", killing: .wholeVM, cache: "none") }
}

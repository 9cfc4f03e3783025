import Foundation
import Glibc
import XCTest

/// `vmctl create` as vmctl(8): empty images, a qcow2 overlay on a base (-b), a copy of
/// an image (-i); qemu-img (Debian's qemu-utils) checks and compares what it makes.
final class VmctlCreateTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img") else {
            print("SKIP: qemu-img is missing (Debian's qemu-utils; scripts/setup installs it)")
            throw XCTSkip("qemu-img is missing")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vmctl-create-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    private func vmctl(_ arguments: [String]) -> (status: Int32, output: String) {
        VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmctl", "create"] + arguments)
    }
    private func qemuImg(_ arguments: [String]) -> (status: Int32, output: String) {
        VmdHarness.runCommand(["/usr/bin/qemu-img"] + arguments)
    }
    private func assertClean(_ image: String, file: StaticString = #filePath, line: UInt = #line) {
        let check = qemuImg(["check", image])
        XCTAssertEqual(check.status, 0, check.output, file: file, line: line)
        XCTAssertTrue(check.output.contains("No errors were found"), check.output, file: file, line: line)
    }

    func testEmptyImagesOfBothFormats() {
        XCTAssertEqual(vmctl(["-s", "64M", path("empty.qcow2")]).status, 0)
        assertClean(path("empty.qcow2"))
        XCTAssertTrue(qemuImg(["info", path("empty.qcow2")]).output.contains("virtual size: 64 MiB (67108864 bytes)"))
        XCTAssertEqual(vmctl(["-s", "3G", path("big.qcow2")]).status, 0, "more than one L2 table's reach")
        assertClean(path("big.qcow2"))
        XCTAssertEqual(vmctl(["-s", "10M", path("empty.raw")]).status, 0)
        var info = stat()
        XCTAssertEqual(stat(path("empty.raw"), &info), 0)
        XCTAssertEqual(info.st_size, 10 << 20)
        XCTAssertEqual(info.st_blocks, 0, "sparse")
    }

    func testAnOverlayReadsAsItsBaseAndACopyAsItsInput() throws {
        let input = path("input.raw")
        var bytes = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        bytes.replaceSubrange((1 << 20)..<(2 << 20), with: repeatElement(0, count: 1 << 20))
        try Data(bytes).write(to: URL(fileURLWithPath: input))

        XCTAssertEqual(vmctl(["-b", input, path("overlay.qcow2")]).status, 0)
        assertClean(path("overlay.qcow2"))
        let info = qemuImg(["info", path("overlay.qcow2")]).output
        XCTAssertTrue(info.contains("backing file: \(input)") && info.contains("backing file format: raw"), info)
        XCTAssertEqual(qemuImg(["compare", input, path("overlay.qcow2")]).status, 0, "the overlay reads as its base")

        XCTAssertEqual(vmctl(["-i", input, path("copy.qcow2")]).status, 0)
        assertClean(path("copy.qcow2"))
        XCTAssertEqual(qemuImg(["compare", input, path("copy.qcow2")]).status, 0)
        XCTAssertEqual(vmctl(["-i", path("copy.qcow2"), path("back.raw")]).status, 0, "qcow2 back to raw")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("back.raw"))), Data(bytes))
        XCTAssertEqual(vmctl(["-i", input, "-s", "8M", path("grown.qcow2")]).status, 0, "a copy may be larger")
        XCTAssertTrue(qemuImg(["info", path("grown.qcow2")]).output.contains("virtual size: 8 MiB"))
    }

    func testMistakesAreRefusedWithTheReasonAndLeaveNothing() {
        XCTAssertEqual(vmctl(["-s", "1M", path("a.raw")]).status, 0)
        let cases: [([String], String)] = [
            (["-s", "1M", path("a.raw")], "File exists"),
            (["-b", path("a.raw"), path("b.raw")], "a raw image has no base"),
            (["-b", path("nothere.raw"), path("c.qcow2")], "base \(path("nothere.raw")): No such file or directory"),
            (["-s", "1000", path("d.qcow2")], "invalid size 1000"),
            ([path("e.qcow2")], "give the size with -s"),
            (["-b", path("a.raw"), "-i", path("a.raw"), path("f.qcow2")], "-b and -i exclude each other"),
            (["-b", path("a.raw"), "-s", "512K", path("g.qcow2")], "smaller than the base"),
            (["-i", path("a.raw"), "-s", "512K", path("h.qcow2")], "smaller than the input"),
        ]
        for (arguments, reason) in cases {
            let run = vmctl(arguments)
            XCTAssertEqual(run.status, 1, "\(arguments): \(run.output)")
            XCTAssertTrue(run.output.contains(reason), "\(arguments): \(run.output)")
        }
        for leftover in ["b.raw", "c.qcow2", "d.qcow2", "e.qcow2", "f.qcow2", "g.qcow2", "h.qcow2"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(leftover)), leftover)
        }
    }
}

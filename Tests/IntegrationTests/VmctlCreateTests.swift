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
    private func vmctl(_ arguments: [String], in directory: String? = nil) -> (status: Int32, output: String) {
        VmdHarness.runCommand([VmdHarness.productsDirectory + "/vmctl", "create"] + arguments, directory: directory)
    }
    private func qemuImg(_ arguments: [String], tool: String = "qemu-img") -> (status: Int32, output: String) {
        VmdHarness.runCommand(["/usr/bin/" + tool] + arguments)
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

    /// An input that is the top of a chain is copied as it reads, as qemu-img convert
    /// flattens it: through its backing files and its external data file, each named
    /// relative to the image that names it, wherever vmctl runs.
    func testAnInputIsCopiedThroughItsWholeChain() {
        XCTAssertEqual(qemuImg(["create", "-f", "raw", path("base.raw"), "4M"]).status, 0)
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", path("middle.qcow2")]).status, 0)
        let top = qemuImg(["create", "-f", "qcow2", "-o", "data_file=" + path("top.data"), "-b", "middle.qcow2", "-F", "qcow2", path("top.qcow2")])
        XCTAssertEqual(top.status, 0, top.output)
        for (image, format, command) in [("base.raw", "raw", "write -P 0x11 0 3M"), ("middle.qcow2", "qcow2", "write -P 0x22 1M 1M"),
                                         ("top.qcow2", "qcow2", "write -P 0x33 1536K 1M")] {
            let written = qemuImg(["-f", format, "-c", command, path(image)], tool: "qemu-io")
            XCTAssertEqual(written.status, 0, written.output)
        }
        for copy in ["flat.raw", "flat.qcow2"] {
            let made = vmctl(["-i", path("top.qcow2"), path(copy)])
            XCTAssertEqual(made.status, 0, made.output)
            XCTAssertEqual(qemuImg(["compare", path("top.qcow2"), path(copy)]).status, 0, "\(copy) reads as the chain")
        }
        assertClean(path("flat.qcow2"))
        XCTAssertFalse(qemuImg(["info", path("flat.qcow2")]).output.contains("backing file"), "a copy stands alone")

        // Loops are refused, and leave nothing.
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", path("loop1.qcow2"), "1M"]).status, 0)
        XCTAssertEqual(qemuImg(["create", "-f", "qcow2", "-b", "loop1.qcow2", "-F", "qcow2", path("loop2.qcow2")]).status, 0)
        XCTAssertEqual(qemuImg(["rebase", "-u", "-b", "loop2.qcow2", "-F", "qcow2", path("loop1.qcow2")]).status, 0)
        let looped = vmctl(["-i", path("loop2.qcow2"), path("never.raw")])
        XCTAssertEqual(looped.status, 1, looped.output)
        XCTAssertTrue(looped.output.contains("input \(path("loop2.qcow2")): backing file") && looped.output.contains("the backing chain loops"), looped.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("never.raw")))
    }

    /// A relative base is stored as given and read where the new image will find it
    /// (relative to that image, as qemu-img create -b does), not from vmctl's directory.
    func testARelativeBaseIsReadRelativeToTheNewImage() throws {
        XCTAssertEqual(vmctl(["-s", "2M", path("base.qcow2")]).status, 0)
        try FileManager.default.createDirectory(atPath: path("vms"), withIntermediateDirectories: true)
        let made = vmctl(["-b", "../base.qcow2", "vms/overlay.qcow2"], in: directory.path)
        XCTAssertEqual(made.status, 0, made.output)
        let info = qemuImg(["info", path("vms/overlay.qcow2")]).output
        XCTAssertTrue(info.contains("backing file: ../base.qcow2") && info.contains("virtual size: 2 MiB"), info)
        assertClean(path("vms/overlay.qcow2"))
        // Where the name means nothing next to the new image, it is refused, even if it means something here.
        let wrong = vmctl(["-b", "base.qcow2", "vms/other.qcow2"], in: directory.path)
        XCTAssertEqual(wrong.status, 1, wrong.output)
        XCTAssertTrue(wrong.output.contains("base vms/base.qcow2: No such file or directory"), wrong.output)
    }

    func testMistakesAreRefusedWithTheReasonAndLeaveNothing() {
        XCTAssertEqual(vmctl(["-s", "1M", path("a.raw")]).status, 0)
        // A FIFO as input is refused at once (an open would wait for a writer), as is a device that never ends.
        XCTAssertEqual(mkfifo(path("pipe"), 0o600), 0)
        let cases: [([String], String)] = [
            (["-s", "1M", path("a.raw")], "File exists"),
            (["-b", path("a.raw"), path("b.raw")], "a raw image has no base"),
            (["-b", path("nothere.raw"), path("c.qcow2")], "base \(path("nothere.raw")): No such file or directory"),
            (["-s", "1000", path("d.qcow2")], "invalid size 1000"),
            ([path("e.qcow2")], "give the size with -s"),
            (["-b", path("a.raw"), "-i", path("a.raw"), path("f.qcow2")], "-b and -i exclude each other"),
            (["-b", path("a.raw"), "-s", "512K", path("g.qcow2")], "smaller than the base"),
            (["-i", path("a.raw"), "-s", "512K", path("h.qcow2")], "smaller than the input"),
            (["-i", path("pipe"), path("i.raw")], "input \(path("pipe")): is a FIFO, not a regular file"),
            (["-i", "/dev/zero", path("j.raw")], "input /dev/zero: is a character device, not a regular file"),
            (["-b", path("pipe"), path("k.qcow2")], "base \(path("pipe")): is a FIFO, not a regular file"),
        ]
        for (arguments, reason) in cases {
            let run = vmctl(arguments)
            XCTAssertEqual(run.status, 1, "\(arguments): \(run.output)")
            XCTAssertTrue(run.output.contains(reason), "\(arguments): \(run.output)")
        }
        for leftover in ["b.raw", "c.qcow2", "d.qcow2", "e.qcow2", "f.qcow2", "g.qcow2", "h.qcow2", "i.raw", "j.raw", "k.qcow2"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(leftover)), leftover)
        }
    }
}

import Foundation
import Glibc
import XCTest
@testable import BlockDevice
@testable import LinuxSystem

/// qemu-img (Debian's qemu-utils, which scripts/setup installs) as the oracle for qcow2:
/// it makes the images we read and checks and converts the ones we write.
enum QemuImg {
    static let path = ["/usr/bin/qemu-img", "/usr/local/bin/qemu-img"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func require() throws -> String {
        guard let path else {
            print("SKIP: qemu-img is missing (Debian's qemu-utils; scripts/setup installs it)")
            throw XCTSkip("qemu-img is missing")
        }
        return path
    }

    /// Runs qemu-img with `arguments`; returns its status and output.
    @discardableResult
    static func run(_ arguments: [String], tool: String = "qemu-img") throws -> (status: Int32, output: String) {
        let process = Process()
        // qemu-io (same package) stands beside qemu-img.
        process.executableURL = URL(fileURLWithPath: try require()).deletingLastPathComponent().appendingPathComponent(tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// The image as `qemu-img convert -O raw` reads it.
    static func rawContents(of image: String, in directory: URL) throws -> [UInt8] {
        let out = directory.appendingPathComponent("converted-\(UUID().uuidString).raw").path
        let converted = try QemuImg.run(["convert", "-O", "raw", image, out])
        XCTAssertEqual(converted.status, 0, converted.output)
        defer { unlink(out) }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    /// `qemu-img check` finds no error (nor a leak).
    static func assertCheckClean(_ image: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let check = try QemuImg.run(["check", image])
        XCTAssertEqual(check.status, 0, "qemu-img check \(image):\n\(check.output)", file: file, line: line)
        XCTAssertTrue(check.output.contains("No errors were found"), check.output, file: file, line: line)
    }
}

/// A scratch directory for one test's images.
func makeImageDirectory(_ name: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qcow2-\(name)-\(getpid())")
    try? FileManager.default.removeItem(at: directory)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

func openImage(_ path: String, writable: Bool = false) throws -> FileDescriptor {
    try FileDescriptor.open(path, flags: writable ? O_RDWR : O_RDONLY)
}

/// Bytes that differ at every 8-byte word, seeded.
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

extension BlockBackend {
    /// Reads `count` bytes at `offset` through the backend's iovec interface.
    func readBytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0xA5, count: count)
        try buffer.withUnsafeMutableBytes { raw in
            // Two iovecs, split off-center, so the pieces cross them.
            let split = count / 3
            var vectors = [iovec(iov_base: raw.baseAddress, iov_len: split), iovec(iov_base: raw.baseAddress! + split, iov_len: count - split)]
            try read(into: &vectors, at: offset)
        }
        return buffer
    }

    func writeBytes(_ bytes: [UInt8], at offset: UInt64) throws {
        var copy = bytes
        try copy.withUnsafeMutableBytes { raw in
            var vectors = [iovec(iov_base: raw.baseAddress, iov_len: raw.count)]
            try write(from: &vectors, at: offset)
        }
    }
}

/// What a qcow2 disk under test should read as, changed alongside the backend.
struct ExpectedDisk {
    var bytes: [UInt8]

    /// Writes `count` pattern bytes at `offset` through `backend`, and here.
    mutating func write(_ backend: Qcow2Backend, at offset: Int, count: Int, seed: UInt64) throws {
        let written = patternBytes(count: count, seed: seed)
        try backend.writeBytes(written, at: UInt64(offset))
        bytes.replaceSubrange(offset..<(offset + count), with: written)
    }

    /// Writes each (offset, count) of pattern bytes, seeded by where it goes.
    mutating func write(_ backend: Qcow2Backend, pieces: [(offset: Int, count: Int)]) throws {
        for piece in pieces { try write(backend, at: piece.offset, count: piece.count, seed: UInt64(piece.offset + piece.count)) }
    }

    /// Write-zeroes through `backend` over `range`, which reads as zeros after it.
    mutating func writeZeroes(_ backend: Qcow2Backend, _ range: Range<Int>, unmap: Bool) throws {
        try backend.writeZeroes(offset: UInt64(range.lowerBound), length: UInt64(range.count), unmap: unmap)
        bytes.replaceSubrange(range, with: repeatElement(0, count: range.count))
    }

    /// A discard of whole clusters of a version 3 image: they read as zeros after it.
    mutating func discard(_ backend: Qcow2Backend, _ range: Range<Int>) throws {
        try backend.discard(offset: UInt64(range.lowerBound), length: UInt64(range.count))
        bytes.replaceSubrange(range, with: repeatElement(0, count: range.count))
    }

    /// After a flush: the backend reads it back, `qemu-img check` is clean, and qemu-img reads the same.
    func assertImageHoldsIt(_ backend: Qcow2Backend, image: String, in directory: URL, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        try backend.flush()
        XCTAssertTrue(try backend.readBytes(at: 0, count: bytes.count) == bytes, "\(what): read back", file: file, line: line)
        try QemuImg.assertCheckClean(image, file: file, line: line)
        XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == bytes, "\(what): as qemu-img reads it", file: file, line: line)
    }
}

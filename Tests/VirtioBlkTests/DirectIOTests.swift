import CLinux
import Foundation
import Glibc
import XCTest
@testable import BlockDevice
@testable import LinuxSystem

/// `cache none`: images open O_DIRECT. Guest buffers that are not sector-aligned are
/// bounced, qcow2 metadata is read-modify-written in whole sectors, and the bytes on
/// the image are the same as through the page cache.
final class DirectIOTests: XCTestCase {
    private func openDirect(_ path: String) throws -> FileDescriptor {
        try FileDescriptor.open(path, flags: O_RDWR | VMD_O_DIRECT)
    }

    /// Writes through iovecs that start one byte into a buffer (never sector-aligned) and
    /// through aligned ones, reads both back the same two ways.
    private func exercise(_ backend: BlockBackend, expected: inout [UInt8]) throws {
        for (offset, length, misaligned) in [(0, 4096, true), (4096 * 5 + 512, 1536, false), (70_000 & ~511, 9 * 512, true), (1 << 20, 65536, false)] {
            let bytes = patternBytes(count: length, seed: UInt64(offset + length))
            var storage = [UInt8](repeating: 0, count: length + 4096 + 1)
            try storage.withUnsafeMutableBytes { raw in
                let aligned = raw.baseAddress!.alignedUp(toMultipleOf: 4096)
                let start = misaligned ? aligned + 1 : aligned
                bytes.withUnsafeBytes { _ = memcpy(start, $0.baseAddress!, length) }
                var vectors = [iovec(iov_base: start, iov_len: length)]
                try backend.write(from: &vectors, at: UInt64(offset))
            }
            expected.replaceSubrange(offset..<(offset + length), with: bytes)
        }
        try backend.flush()
        XCTAssertTrue(try backend.readBytes(at: 0, count: expected.count) == expected, "read back (unaligned iovecs)")
    }

    func testRawImagesUnderODirectBounceUnalignedBuffers() throws {
        let directory = try makeImageDirectory("direct-raw")
        let path = directory.appendingPathComponent("disk.raw").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        XCTAssertEqual(truncate(path, 2 << 20), 0)
        let file = try openDirect(path)
        let backend = try RawFileBackend(file: file, readOnly: false)
        XCTAssertTrue(backend.direct, "the backend sees O_DIRECT on its descriptor")
        var expected = [UInt8](repeating: 0, count: 2 << 20)
        try exercise(backend, expected: &expected)
        try backend.writeZeroes(offset: 4096, length: 4096, unmap: false)
        expected.replaceSubrange(4096..<8192, with: repeatElement(0, count: 4096))
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), expected, "the file holds what was written")
    }

    func testQcow2ImagesUnderODirectStayConsistent() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("direct-qcow2")
        for clusterSize in [4096, 65536] {
            let path = directory.appendingPathComponent("disk-\(clusterSize).qcow2").path
            XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=\(clusterSize)", path, "2M"]).status, 0)
            let backend = try Qcow2Backend(file: try openDirect(path), readOnly: false, backing: nil)
            var expected = [UInt8](repeating: 0, count: 2 << 20)
            try exercise(backend, expected: &expected)
            try QemuImg.assertCheckClean(path)
            XCTAssertTrue(try QemuImg.rawContents(of: path, in: directory) == expected, "qemu-img reads what was written, \(clusterSize)")
        }
    }
}

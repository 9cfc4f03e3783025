import CZstd
import DiskFormats
import XCTest
@testable import BlockDevice

/// zstd clusters as a hostile or unusual image may hold them, made with libzstd itself:
/// each fails its read with a reason, or reads, as qcow2.txt allows.
final class Qcow2DecompressorTests: XCTestCase {
    private let cluster = 4096

    /// One zstd frame of `bytes`; `checksum` adds the 4-byte content checksum.
    private func frame(_ bytes: [UInt8], checksum: Bool = false) throws -> [UInt8] {
        let context = try XCTUnwrap(ZSTD_createCCtx())
        defer { ZSTD_freeCCtx(context) }
        XCTAssertEqual(ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, checksum ? 1 : 0)), 0)
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
        let written = output.withUnsafeMutableBytes { target in
            bytes.withUnsafeBytes { source in
                // SAFETY: both buffers outlive the call; zstd writes at most target.count bytes.
                ZSTD_compress2(context, target.baseAddress, target.count, source.baseAddress, source.count)
            }
        }
        XCTAssertEqual(ZSTD_isError(written), 0)
        return Array(output.prefix(written))
    }

    /// A frame written by hand: no content size, a declared window of 2^windowLog bytes, and
    /// `bytes` as one raw block (RFC 8878, 3.1.1). libzstd never declares more window than
    /// its input needs, a hostile image may.
    private func rawFrame(_ bytes: [UInt8], windowLog: Int) -> [UInt8] {
        let blockHeader = UInt32(bytes.count) << 3 | 1  // last block, raw
        return [0x28, 0xB5, 0x2F, 0xFD, 0x00, UInt8(windowLog - 10) << 3]
            + [UInt8(blockHeader & 0xFF), UInt8(blockHeader >> 8 & 0xFF), UInt8(blockHeader >> 16)] + bytes
    }

    private func text(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        patternBytes(count: count, seed: seed).map { $0 & 0x0F | 0x40 }  // compressible
    }

    func testAFrameFollowedByTheNextClustersBytesReads() throws {
        let content = text(cluster)
        let decompressor = Qcow2Decompressor(type: .zstd)
        let trailing = try frame(text(cluster, seed: 2))  // what the last sector may also hold
        XCTAssertEqual(try decompressor.decompress(try frame(content) + trailing, clusterSize: cluster, host: 0), content)
        XCTAssertEqual(try decompressor.decompress(try frame(content, checksum: true) + [1, 2, 3], clusterSize: cluster, host: 0), content,
                       "a frame with a content checksum (not qemu-img's) reads too")
        XCTAssertEqual(try decompressor.decompress(rawFrame(content, windowLog: Int(Qcow2Decompressor.zstdWindowLogMax)), clusterSize: cluster, host: 0),
                       content, "a window up to the limit is taken")
    }

    func testShortLongDamagedAndGreedyFramesFailTheirReadWithAReason() throws {
        let decompressor = Qcow2Decompressor(type: .zstd)
        let shortFrame = try frame(text(cluster / 2))
        var damaged = try frame(patternBytes(count: cluster, seed: 5))
        damaged[damaged.count / 2] ^= 0xFF
        let cases: [([UInt8], String)] = [
            (shortFrame + (try frame(text(cluster, seed: 3))), "ends after 2048 bytes"),
            (Array(try frame(text(cluster)).dropLast(3)), "ends after"),
            (try frame(text(2 * cluster)), "more than a cluster"),
            (rawFrame(text(cluster), windowLog: 27), "too much memory"),  // 128 MiB of window
            ([0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF], "does not decompress"),
            ([], "ends after 0 bytes"),
        ]
        for (index, (input, reason)) in cases.enumerated() {
            XCTAssertThrowsError(try decompressor.decompress(input, clusterSize: cluster, host: 512), "case \(index)") { error in
                XCTAssertTrue("\(error)".contains(reason) && "\(error)".contains("at 512"), "case \(index): \(error) should say \(reason)")
            }
        }
        // A damaged frame (one byte flipped in its middle) must not read as the original.
        if let read = try? decompressor.decompress(damaged, clusterSize: cluster, host: 0) {
            XCTAssertNotEqual(read, patternBytes(count: cluster, seed: 5))
        }
        // After all that, the same decompressor still reads a good cluster.
        let content = text(cluster, seed: 9)
        XCTAssertEqual(try decompressor.decompress(try frame(content), clusterSize: cluster, host: 0), content)
    }
}

import Glibc
import XCTest
@testable import BlockDevice

/// Merging a pass's pieces into submissions, and splitting a merged result back.
final class RingSubmissionTests: XCTestCase {
    private func piece(_ operation: BlockRingRequest.Operation, at host: UInt64, length: Int, slot: Int,
                       vectors: Int = 1) -> RingSubmission {
        let each = length / vectors
        return RingSubmission(operation: operation, host: host,
                              vectors: (0..<vectors).map { _ in iovec(iov_base: nil, iov_len: each) },
                              members: [.init(slot: slot, piece: 0, length: length)], length: length)
    }

    private func shape(_ merged: [RingSubmission]) -> [[Int]] { merged.map { $0.members.map(\.slot) } }

    func testAdjacentReadsMergeInFileOrderWhateverOrderTheyCameIn() {
        let merged = RingSubmission.merged([
            piece(.read, at: 8192, length: 4096, slot: 2),
            piece(.read, at: 0, length: 4096, slot: 0),
            piece(.read, at: 4096, length: 4096, slot: 1),
        ])
        XCTAssertEqual(shape(merged), [[0, 1, 2]])
        XCTAssertEqual(merged[0].host, 0)
        XCTAssertEqual(merged[0].length, 12288)
        XCTAssertEqual(merged[0].vectors.count, 3)
    }

    func testAGapAWriteAndAFlushEachStayApart() {
        let merged = RingSubmission.merged([
            piece(.read, at: 0, length: 4096, slot: 0),
            piece(.read, at: 8192, length: 4096, slot: 1),  // a gap of 4 KiB
            piece(.write, at: 4096, length: 4096, slot: 2),  // adjacent to slot 0, but a write
            piece(.write, at: 12288, length: 4096, slot: 3),
            piece(.flush, at: 0, length: 0, slot: 4),
            piece(.flush, at: 0, length: 0, slot: 5),
        ])
        XCTAssertEqual(shape(merged), [[0], [1], [2], [3], [4], [5]])
    }

    func testAdjacentWritesMerge() {
        let merged = RingSubmission.merged([piece(.write, at: 512, length: 512, slot: 0),
                                            piece(.write, at: 1024, length: 1536, slot: 1)])
        XCTAssertEqual(shape(merged), [[0, 1]])
        XCTAssertEqual(merged[0].length, 2048)
    }

    /// Two pieces of the same place (a guest may send them) are not adjacent: not merged.
    func testOverlappingPiecesAreNotMerged() {
        XCTAssertEqual(shape(RingSubmission.merged([piece(.read, at: 0, length: 4096, slot: 0),
                                                    piece(.read, at: 0, length: 4096, slot: 1)])), [[0], [1]])
    }

    /// Offsets at the top of the range (a hostile image's table can name them) neither
    /// trap on an overflow nor merge around the end.
    func testOffsetsAtTheTopOfTheRangeDoNotWrapIntoAMerge() {
        let top = UInt64.max - 4095
        XCTAssertEqual(shape(RingSubmission.merged([piece(.read, at: top, length: 4096, slot: 0),
                                                    piece(.read, at: 0, length: 4096, slot: 1)])), [[1], [0]])
    }

    func testAMergeStopsAtTheLargestTransfer() {
        let half = RingSubmission.maximumLength / 2
        let merged = RingSubmission.merged((0..<5).map { piece(.read, at: UInt64($0 * half), length: half, slot: $0) })
        XCTAssertEqual(shape(merged), [[0, 1], [2, 3], [4]])
        XCTAssertTrue(merged.allSatisfy { $0.length <= RingSubmission.maximumLength })
    }

    func testAMergeStopsAtTheIovecLimit() {
        let vectors = RingSubmission.maximumVectors / 2 + 1
        let merged = RingSubmission.merged([piece(.read, at: 0, length: 512 * vectors, slot: 0, vectors: vectors),
                                            piece(.read, at: UInt64(512 * vectors), length: 512, slot: 1)])
        XCTAssertEqual(shape(merged), [[0, 1]], "within the limit")
        let over = RingSubmission.merged([piece(.read, at: 0, length: 512 * vectors, slot: 0, vectors: vectors),
                                          piece(.read, at: UInt64(512 * vectors), length: 512 * vectors, slot: 1,
                                                vectors: vectors)])
        XCTAssertEqual(shape(over), [[0], [1]], "over it")
    }

    func testAMergedResultIsSplitInOrder() {
        let merged = RingSubmission.merged([piece(.read, at: 0, length: 4096, slot: 0),
                                            piece(.read, at: 4096, length: 4096, slot: 1),
                                            piece(.read, at: 8192, length: 4096, slot: 2)])[0]
        func shares(_ result: Int32) -> [Int32] {
            var shares: [Int32] = []
            merged.forEachMemberResult(result) { member, share in
                XCTAssertEqual(member, merged.members[shares.count], "members in order")
                shares.append(share)
            }
            return shares
        }
        XCTAssertEqual(shares(12288), [4096, 4096, 4096])
        XCTAssertEqual(shares(5000), [4096, 904, 0], "short: the first whole, one short, the rest none")
        XCTAssertEqual(shares(0), [0, 0, 0])
        XCTAssertEqual(shares(-EIO), [-EIO, -EIO, -EIO], "an error is every member's")
    }
}

import Glibc

/// One operation handed to the io_uring: a read or write of a run of the image file, or a
/// flush, on behalf of one or more request pieces (`BlockRingRequest.Piece`).
///
/// Reads (or writes) of one pass that are adjacent in the file are merged into one
/// submission, as QEMU's virtio-blk merges a batch: a guest reading a file sequentially
/// sends 128 KiB requests, several per kick, and the disk does far better with one
/// large transfer than with as many small ones (under O_DIRECT the host does not merge
/// them: each readv is its own I/O). Merged, the submission's result is split among its
/// members in order (`memberResults`): a short transfer leaves the later members short,
/// which each request's completion then finishes itself.
struct RingSubmission {
    struct Member: Equatable {
        let slot: Int
        let piece: Int
        let length: Int
    }

    let operation: BlockRingRequest.Operation
    let host: UInt64
    var vectors: [iovec]
    var members: [Member]
    var length: Int

    /// The largest merged transfer, and the iovecs one submission may carry (readv's limit).
    static let maximumLength = 2 << 20
    static let maximumVectors = Int(UIO_MAXIOV)

    /// `pieces` in file order, adjacent reads and adjacent writes merged while they fit
    /// the limits; flushes stay as they are. The order among operations of one pass is not
    /// kept, and need not be: the guest has no answer to any of them yet, so the device may
    /// do them in any order (a driver waits for its writes before it sends the flush that
    /// must cover them).
    static func merged(_ pieces: [RingSubmission]) -> [RingSubmission] {
        let ordered = pieces.enumerated().sorted { a, b in
            (a.element.operation.mergeOrder, a.element.host, a.offset) < (b.element.operation.mergeOrder, b.element.host, b.offset)
        }.map(\.element)
        var result: [RingSubmission] = []
        for piece in ordered {
            if var last = result.last, last.canAbsorb(piece) {
                last.vectors += piece.vectors
                last.members += piece.members
                last.length += piece.length
                result[result.count - 1] = last
            } else {
                result.append(piece)
            }
        }
        return result
    }

    private func canAbsorb(_ next: RingSubmission) -> Bool {
        operation == next.operation && operation != .flush
            && next.host >= host && next.host - host == UInt64(length)  // adjacent, no overflow whatever the offsets
            && length + next.length <= Self.maximumLength
            && vectors.count + next.vectors.count <= Self.maximumVectors
    }

    /// Calls `body` with each member and its share of `result` (bytes moved, or -errno for
    /// all of them): bytes in order, so after a short transfer the first members are whole,
    /// one may be short and the rest have none.
    func forEachMemberResult(_ result: Int32, _ body: (Member, Int32) -> Void) {
        var left = Int(max(result, 0))
        for member in members {
            guard result >= 0 else {
                body(member, result)
                continue
            }
            let share = min(left, member.length)
            left -= share
            body(member, Int32(share))
        }
    }
}

extension BlockRingRequest.Operation {
    /// Reads first, then writes, then flushes, in a pass's merged order.
    fileprivate var mergeOrder: Int {
        switch self {
        case .read: 0
        case .write: 1
        case .flush: 2
        }
    }
}

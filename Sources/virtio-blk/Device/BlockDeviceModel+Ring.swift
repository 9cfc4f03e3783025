import Glibc
import GuestRAM
import LinuxSystem
import MemorySlots
import VirtioCore

/// A read, write or flush on its way through the io_uring: what its completion needs.
struct BlockRingRequest {
    enum Operation {
        case read
        case write
        case flush
    }

    /// One submission: a run of the image file and the guest buffers it fills or empties
    /// (a flush is one piece with none).
    struct Piece {
        var host: UInt64
        var vectors: [iovec]
        var length: Int
        /// Bytes moved or -errno, once completed.
        var result: Int32?
    }

    let operation: Operation
    let head: UInt16
    let statusAddress: GuestAddress
    var pieces: [Piece]
    /// The request's data bytes.
    let length: Int
    /// Pieces not completed yet.
    var pending: Int
}

/// The model's half of serving through an io_uring (`BlockRingServer`): `start` parses a
/// chain as `process` does and hands back the reads, writes and flushes to submit, as
/// runs of the image file; `finish` takes the results and writes the status byte.
/// Everything else (GET_ID, discard, write-zeroes, what the backend must serve itself)
/// and every refusal is served by `process`, synchronously. `start` and `finish` count but
/// do not publish: the device publishes once per pass of the event loop, as ten stores per
/// request were 4 % of the device's time at 4 KiB.
extension BlockDeviceModel {
    enum RingStart {
        case submit(BlockRingRequest)
        /// For `process`. `changesLayout`: a write, discard or write-zeroes, which on some
        /// backends must wait for the ring to be idle.
        case serveHere(changesLayout: Bool)
    }

    /// Writes go to the ring only under O_DIRECT (`backend.ringDirect`): a page-cache write
    /// through the ring goes to a kernel worker thread (ext4 cannot do it without
    /// blocking), measured 0.26x (QD1) and 0.44x (QD32) the speed of writing it here.
    /// Under O_DIRECT the guest's buffers must be whole, aligned sectors (others are
    /// bounced by `process`). At most `maximumPieces` submissions for one request.
    func start(_ chain: DescriptorChain, memory: GuestMemory, backend: RingBackend, maximumPieces: Int) -> RingStart {
        guard let statusAddress = BlockRequest.statusAddress(of: chain),
              let request = try? BlockRequest.parse(chain, memory: memory, limits: limits) else {
            return .serveHere(changesLayout: false)  // refused: counted and logged by `process`
        }
        let operation: BlockRingRequest.Operation
        let sector: UInt64
        let data: [DescriptorBuffer]
        switch request.operation {
        case .read(let at, let buffers): (operation, sector, data) = (.read, at, buffers)
        case .write(let at, let buffers) where backend.ringDirect: (operation, sector, data) = (.write, at, buffers)
        case .flush: (operation, sector, data) = (.flush, 0, [])
        case .write, .discard, .writeZeroes: return .serveHere(changesLayout: true)
        case .getID: return .serveHere(changesLayout: false)
        }
        var vectors: [iovec] = []
        do {
            for range in data {
                try memory.forEachSlice(at: range.address, length: UInt64(range.length), forWriting: operation == .read) {
                    if $0.count > 0 { vectors.append($0.iovec) }
                }
            }
        } catch {
            return .serveHere(changesLayout: false)  // the guest-memory error, counted there
        }
        guard vectors.count <= Int(UIO_MAXIOV), !backend.ringDirect || AlignedBuffer.isAligned(vectors) else {
            return .serveHere(changesLayout: operation == .write)
        }
        let length = IOVectors.totalLength(vectors)
        var pieces: [BlockRingRequest.Piece]
        if operation == .flush {
            // Served after the ring is quiet: every write it carried is then in the files.
            guard backend.ringFlushIsEnough else { return .serveHere(changesLayout: true) }
            pieces = [.init(host: 0, vectors: [], length: 0)]
        } else {
            let offset = sector << VirtioBlock.sectorShift
            guard let extents = try? backend.fileExtents(at: offset, length: length, forWriting: operation == .write,
                                                         limit: maximumPieces) else {
                return .serveHere(changesLayout: operation == .write)
            }
            if extents.count == 1, extents[0].length == length {
                // The usual case (always for raw): one run of the file takes all the vectors.
                pieces = [.init(host: extents[0].host, vectors: vectors, length: extents[0].length)]
            } else {
                pieces = extents.map { extent in
                    .init(host: extent.host, vectors: IOVectors.takePrefix(&vectors, length: extent.length), length: extent.length)
                }
            }
        }
        counters.requests += 1  // published by the device once per pass (`publishCounters`)
        return .submit(BlockRingRequest(operation: operation, head: chain.head, statusAddress: statusAddress,
                                        pieces: pieces, length: length, pending: pieces.count))
    }

    /// Completes `request` once every piece has its result: a short transfer is finished
    /// by the backend, as preadv's loop would; then the status byte.
    func finish(_ request: inout BlockRingRequest, backend: RingBackend, memory: GuestMemory) -> UInt32 {
        defer { counters.completed += 1 }
        var status = BlockStatus.ok
        do {
            for index in request.pieces.indices {
                let result = request.pieces[index].result ?? -EIO
                if result < 0 { throw SystemError(request.operation.call, errno: -result) }
                if Int(result) < request.pieces[index].length {
                    _ = IOVectors.takePrefix(&request.pieces[index].vectors, length: Int(result))
                    try backend.finishShortTransfer(reading: request.operation == .read, &request.pieces[index].vectors,
                                                    at: request.pieces[index].host + UInt64(result))
                }
            }
            switch request.operation {
            case .read: counters.reads += 1; counters.bytesRead += UInt64(request.length)
            case .write: counters.writes += 1; counters.bytesWritten += UInt64(request.length)
            case .flush: counters.flushes += 1
            }
        } catch {
            counters.ioErrors += 1
            status = .ioError
            onFailure?("virtio-blk: request \(request.head) failed: \(error)")
        }
        do {
            try memory.write(status.rawValue, at: request.statusAddress)
        } catch {
            counters.dropped += 1
            onFailure?("virtio-blk: request \(request.head): status byte not writable: \(error)")
            return 0
        }
        let dataWritten = status == .ok && request.operation == .read ? request.length : 0
        return UInt32(clamping: dataWritten + 1)
    }
}

extension BlockRingRequest.Operation {
    var call: String {
        switch self {
        case .read: "readv"
        case .write: "writev"
        case .flush: "fdatasync"
        }
    }
}

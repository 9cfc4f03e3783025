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

    let operation: Operation
    let head: UInt16
    let statusAddress: GuestAddress
    /// Byte offset on the disk (0 for a flush).
    let offset: UInt64
    /// The guest's data buffers; kept so that a short transfer can be finished.
    var vectors: [iovec]
    let length: Int
}

/// The model's half of serving through an io_uring (`BlockRingServer`): `start` parses a
/// chain as `process` does and hands back the reads, writes and flushes to submit;
/// `finish` takes the ring's result and writes the status byte. Everything else (GET_ID,
/// discard, write-zeroes) and every refusal is served by `process`, synchronously.
extension BlockDeviceModel {
    enum RingStart {
        /// Served here: the used length.
        case finished(UInt32)
        case submit(BlockRingRequest)
    }

    /// `direct`: the file is open O_DIRECT, so the guest's buffers must be whole, aligned
    /// sectors to go to the ring (others are bounced by `process`). Without it, writes are
    /// served here too: a page-cache write through the ring goes to a kernel worker thread
    /// (ext4 cannot do it without blocking), measured 0.26x (QD1) and 0.44x (QD32) the
    /// speed of writing it here.
    func start(_ chain: DescriptorChain, memory: GuestMemory, direct: Bool) -> RingStart {
        guard let statusAddress = BlockRequest.statusAddress(of: chain),
              let request = try? BlockRequest.parse(chain, memory: memory, limits: limits) else {
            return .finished(process(chain, memory: memory))  // counted and logged there
        }
        let operation: BlockRingRequest.Operation
        let sector: UInt64
        let data: [DescriptorBuffer]
        switch request.operation {
        case .read(let at, let buffers): (operation, sector, data) = (.read, at, buffers)
        case .write(let at, let buffers) where direct: (operation, sector, data) = (.write, at, buffers)
        case .flush: (operation, sector, data) = (.flush, 0, [])
        default: return .finished(process(chain, memory: memory))
        }
        var vectors: [iovec] = []
        do {
            for range in data {
                try memory.forEachSlice(at: range.address, length: UInt64(range.length), forWriting: operation == .read) {
                    if $0.count > 0 { vectors.append($0.iovec) }
                }
            }
        } catch {
            return .finished(process(chain, memory: memory))  // the guest-memory error, counted there
        }
        guard vectors.count <= Int(UIO_MAXIOV), !direct || AlignedBuffer.isAligned(vectors) else {
            return .finished(process(chain, memory: memory))
        }
        counters.requests += 1
        return .submit(BlockRingRequest(operation: operation, head: chain.head, statusAddress: statusAddress,
                                        offset: sector << VirtioBlock.sectorShift, vectors: vectors,
                                        length: IOVectors.totalLength(vectors)))
    }

    /// Completes `request` with the ring's `result` (bytes moved, or -errno): a short
    /// transfer is finished with the backend, as preadv's loop would; then the status.
    func finish(_ request: inout BlockRingRequest, result: Int32, memory: GuestMemory) -> UInt32 {
        var status = BlockStatus.ok
        do {
            if result < 0 { throw SystemError(request.operation.call, errno: -result) }
            if request.operation != .flush, Int(result) < request.length {
                _ = IOVectors.takePrefix(&request.vectors, length: Int(result))
                let rest = request.offset + UInt64(result)
                if request.operation == .read {
                    try backend.read(into: &request.vectors, at: rest)
                } else {
                    try backend.write(from: &request.vectors, at: rest)
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

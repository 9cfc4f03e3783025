import Glibc
import LinuxSystem

/// Where a run of a request's bytes lies in the image file, for the io_uring.
struct FileExtent: Equatable {
    var host: UInt64
    var length: Int
}

/// A backend whose reads and writes can go to the io_uring: it says where a guest range
/// lies in its one file, and finishes what the ring left short.
protocol RingBackend: BlockBackend {
    /// The file the ring reads and writes: the image, or a qcow2 image's external data file.
    var ringFile: FileDescriptor { get }
    /// `ringFile` is open O_DIRECT (`cache none`).
    var ringDirect: Bool { get }
    /// An fsync of `ringFile` makes everything written durable (false where the image's
    /// tables are in another file: then a flush is served by the backend, which syncs both).
    var ringFlushIsEnough: Bool { get }
    /// A change of the image's layout (an allocating write, discard, write-zeroes) must not
    /// overlap I/O in flight: a cluster freed under an in-flight write may hold another
    /// guest offset by the time the write lands. The ring is waited out first.
    var layoutChangesWaitForTheRing: Bool { get }

    /// Where guest bytes [offset, offset + length) lie in `file`, adjacent runs merged, at
    /// most `limit` runs; nil when this backend must serve the request itself (zero or
    /// unallocated clusters, compressed data, a write that allocates).
    func fileExtents(at offset: UInt64, length: Int, forWriting: Bool, limit: Int) throws -> [FileExtent]?
    /// The ring moved only part of an extent: the rest of `vectors`, at file offset `host`.
    func finishShortTransfer(reading: Bool, _ vectors: inout [iovec], at host: UInt64) throws
}

extension RawFileBackend: RingBackend {
    var ringFile: FileDescriptor { file }
    var ringDirect: Bool { direct }
    var ringFlushIsEnough: Bool { true }
    var layoutChangesWaitForTheRing: Bool { false }

    func fileExtents(at offset: UInt64, length: Int, forWriting: Bool, limit: Int) throws -> [FileExtent]? {
        limit >= 1 ? [FileExtent(host: offset, length: length)] : nil
    }

    func finishShortTransfer(reading: Bool, _ vectors: inout [iovec], at host: UInt64) throws {
        if reading { try read(into: &vectors, at: host) } else { try write(from: &vectors, at: host) }
    }
}

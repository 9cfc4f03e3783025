import Glibc

/// A checked window of guest memory for I/O, valid while its `GuestMemory` is.
///
/// The guest may change these bytes at any moment, so callers copy out once
/// and then validate the copy; they never read the same field twice.
public struct VolatileSlice: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    public let count: Int

    init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    /// The slice as an iovec, for preadv/pwritev/readv/writev straight to guest memory.
    public var iovec: Glibc.iovec { Glibc.iovec(iov_base: base, iov_len: count) }

    public func copyBytes(to destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= count, "destination too small")
        memcpy(destination.baseAddress!, base, count)
    }

    public func copyBytes(from source: UnsafeRawBufferPointer) {
        precondition(source.count <= count, "source larger than slice")
        if let from = source.baseAddress { memcpy(base, from, source.count) }
    }

    public func fill(_ byte: UInt8) {
        memset(base, Int32(byte), count)
    }
}

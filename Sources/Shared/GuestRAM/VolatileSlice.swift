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

    /// The bytes themselves, for bulk copies and scans while no vCPU runs (a snapshot's RAM).
    /// SAFETY: valid as long as the slice is; while the guest runs it may change them.
    public var unsafeBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count) }

    /// The slice as an iovec, for preadv/pwritev/readv/writev straight to guest memory.
    /// SAFETY: the iovec is valid as long as the slice is; the kernel reads or writes within it.
    public var iovec: Glibc.iovec { Glibc.iovec(iov_base: base, iov_len: count) }

    public func copyBytes(to destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= count, "destination too small")
        // SAFETY: `base..<base+count` lies in one mapped slot (GuestMemory made this slice after
        // checking it) and stays mapped for the process (sealed) or the GuestMemory (tests);
        // the destination holds at least `count` bytes (checked above). Guest RAM is shared
        // with the guest, so this is a racy copy of plain bytes, which callers validate after.
        memcpy(destination.baseAddress!, base, count)
    }

    public func copyBytes(from source: UnsafeRawBufferPointer) {
        precondition(source.count <= count, "source larger than slice")
        // SAFETY: as above; the source is at most `count` bytes (checked), the slice is writable
        // (GuestMemory checks a slot's access before it hands out a slice for writing).
        if let from = source.baseAddress { memcpy(base, from, source.count) }
    }

    public func fill(_ byte: UInt8) {
        // SAFETY: `count` bytes from `base` are inside one writable mapped slot, as above.
        memset(base, Int32(byte), count)
    }
}

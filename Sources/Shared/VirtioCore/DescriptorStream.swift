import GuestRAM
import MemorySlots
/// The buffers of a chain taken end to end as one byte stream: virtio 1.2 §2.7.4 lets a
/// driver split any structure (a header, a frame) over buffers wherever it likes.
extension Collection where Element == DescriptorBuffer {
    // @inlinable: generic over the collection, so without it every caller in another module
    // would go through witness tables on the per-packet path.

    /// Calls `body` with the guest range of each piece of bytes `[start, start + count)` of
    /// the stream, in order, skipping empty pieces. Allocates nothing. The caller checked that
    /// the buffers hold that many bytes (and the walker that no buffer overflows).
    @inlinable
    public func forEachRange<Failure: Error>(
        from start: UInt64, count: UInt64, _ body: (DescriptorBuffer) throws(Failure) -> Void
    ) throws(Failure) {
        var skip = start
        var remaining = count
        for buffer in self where remaining > 0 {
            let length = UInt64(buffer.length)
            if skip >= length {
                skip -= length
                continue
            }
            let take = Swift.min(length - skip, remaining)
            try body(DescriptorBuffer(address: GuestAddress(buffer.address.value + skip), length: UInt32(take)))
            remaining -= take
            skip = 0
        }
        precondition(remaining == 0, "stream shorter than the caller checked")
    }

    /// The pieces of `forEachRange` as an array, for requests that keep them.
    @inlinable
    public func ranges(from start: UInt64, count: UInt64) -> [DescriptorBuffer] {
        var result: [DescriptorBuffer] = []
        forEachRange(from: start, count: count) { result.append($0) }
        return result
    }

    /// Copies bytes `[start, start + destination.count)` of the stream out of guest memory.
    @inlinable
    public func copyBytes(from start: UInt64, into destination: UnsafeMutableRawBufferPointer,
                          memory: GuestMemory) throws(GuestMemoryError) {
        var done = 0
        try forEachRange(from: start, count: UInt64(destination.count)) { range throws(GuestMemoryError) in
            // SAFETY: the ranges add up to the destination's size (checked by the caller), so each piece is inside it.
            let piece = UnsafeMutableRawBufferPointer(rebasing: destination[done..<(done + Int(range.length))])
            try memory.read(into: piece, at: range.address)
            done += piece.count
        }
    }

    /// Writes `source` over bytes `[start, start + source.count)` of the stream.
    @inlinable
    public func writeBytes(_ source: UnsafeRawBufferPointer, at start: UInt64,
                           memory: GuestMemory) throws(GuestMemoryError) {
        var done = 0
        try forEachRange(from: start, count: UInt64(source.count)) { range throws(GuestMemoryError) in
            // SAFETY: as above, inside the source.
            let piece = UnsafeRawBufferPointer(rebasing: source[done..<(done + Int(range.length))])
            try memory.write(piece, at: range.address)
            done += piece.count
        }
    }

    /// Appends the guest slices of bytes `[start, start + count)` of the stream to `vectors`.
    /// False, with `vectors` holding part of it, when they do not fit.
    @inlinable
    public func appendSlices(from start: UInt64, count: UInt64, forWriting: Bool, memory: GuestMemory,
                             to vectors: IOVectorBuffer) throws(GuestMemoryError) -> Bool {
        var fits = true
        try forEachRange(from: start, count: count) { range throws(GuestMemoryError) in
            guard fits else { return }
            try memory.forEachSlice(at: range.address, length: UInt64(range.length), forWriting: forWriting) { slice in
                if fits { fits = vectors.append(slice) }
            }
        }
        return fits
    }
}

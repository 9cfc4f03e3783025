import Glibc

/// Guest-memory iovecs as a backend splits and fills them. The iovecs were built from
/// checked guest slices (`VolatileSlice`): each names memory that stays mapped for the
/// request, so writing or reading exactly their bytes is in bounds.
enum IOVectors {
    static func totalLength(_ vectors: [iovec]) -> Int { vectors.reduce(0) { $0 + $1.iov_len } }

    /// Removes the first `length` bytes from `vectors` and returns them as their own list,
    /// splitting an entry where the boundary falls inside it.
    static func takePrefix(_ vectors: inout [iovec], length: Int) -> [iovec] {
        var taken: [iovec] = []
        var left = length
        var index = 0
        while left > 0, index < vectors.count {
            let entry = vectors[index]
            if entry.iov_len <= left {
                taken.append(entry)
                left -= entry.iov_len
                index += 1
            } else {
                taken.append(iovec(iov_base: entry.iov_base, iov_len: left))
                vectors[index].iov_base = entry.iov_base + left
                vectors[index].iov_len -= left
                left = 0
            }
        }
        vectors.removeFirst(index)
        return taken
    }

    static func fillZero(_ vectors: [iovec]) {
        // SAFETY: each iovec names checked, mapped guest memory of iov_len bytes.
        for entry in vectors where entry.iov_len > 0 { memset(entry.iov_base, 0, entry.iov_len) }
    }

    /// Copies `bytes` (at least the vectors' total length) into the vectors.
    static func copy(_ bytes: ArraySlice<UInt8>, into vectors: [iovec]) {
        precondition(bytes.count >= totalLength(vectors), "the caller sized the source")
        bytes.withUnsafeBytes { raw in
            var offset = 0
            for entry in vectors where entry.iov_len > 0 {
                // SAFETY: the vector is mapped guest memory of iov_len bytes; the source range is inside `bytes`.
                memcpy(entry.iov_base, raw.baseAddress! + offset, entry.iov_len)
                offset += entry.iov_len
            }
        }
    }

    /// The vectors' bytes, in order.
    static func gather(_ vectors: [iovec]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: totalLength(vectors))
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            for entry in vectors where entry.iov_len > 0 {
                // SAFETY: the vector is mapped guest memory of iov_len bytes; the buffer holds the total.
                memcpy(raw.baseAddress! + offset, entry.iov_base, entry.iov_len)
                offset += entry.iov_len
            }
        }
        return bytes
    }
}

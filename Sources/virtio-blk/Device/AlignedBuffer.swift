import CLinux
import Glibc
import LinuxSystem

/// Host memory aligned for O_DIRECT (`cache none`): a bounce buffer for guest memory
/// that is not sector-aligned, and for the qcow2 metadata a backend reads and writes.
/// The only raw allocation of the block backends; freed with the buffer.
final class AlignedBuffer {
    /// Page alignment satisfies every device's direct-I/O memory alignment.
    static let alignment = 4096
    /// The sector: direct I/O offsets and lengths are multiples of it.
    static let sector = 512

    let count: Int
    private let base: UnsafeMutableRawPointer

    /// `count` zeroed bytes.
    init(count: Int) throws {
        var memory: UnsafeMutableRawPointer?
        let size = max(count, 1)
        // SAFETY: posix_memalign either fails (checked) or gives `size` bytes at the alignment.
        guard posix_memalign(&memory, AlignedBuffer.alignment, size) == 0, let memory else {
            throw SystemError("posix_memalign(\(size))", errno: ENOMEM)
        }
        memset(memory, 0, size)
        self.base = memory
        self.count = count
    }

    deinit { free(base) }

    /// One iovec over the whole buffer, for preadv and pwritev.
    var vector: iovec { iovec(iov_base: base, iov_len: count) }

    func bytes(_ range: Range<Int>) -> [UInt8] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "inside the buffer")
        // SAFETY: the range is inside the allocation (checked above).
        return Array(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    func replace(at offset: Int, with bytes: [UInt8]) {
        precondition(offset >= 0 && offset + bytes.count <= count, "inside the buffer")
        guard !bytes.isEmpty else { return }
        // SAFETY: the destination range is inside the allocation (checked above).
        bytes.withUnsafeBytes { source in _ = memcpy(base + offset, source.baseAddress!, source.count) }
    }

    /// Fills the buffer from `file` at `offset` (aligned); returns how many bytes the file
    /// had (fewer at its end; the rest stays zero).
    func fill(from file: FileDescriptor, at offset: UInt64) throws -> Int {
        var done = 0
        while done < count {
            // SAFETY: done < count: the read lands inside the allocation.
            let got = try retryingInterrupts("pread") { pread(file.rawValue, base + done, count - done, off_t(offset) + off_t(done)) }
            if got == 0 { break }
            done += got
        }
        return done
    }

    /// Writes the whole buffer to `file` at `offset` (aligned).
    func write(to file: FileDescriptor, at offset: UInt64) throws {
        var vectors = [vector]
        try PositionalIO.transfer(file, &vectors, at: offset, call: "pwritev") { pwritev($0, $1, $2, $3) }
    }

    /// Whether `file` is open O_DIRECT (`cache none`; vmd opened it so).
    static func isDirect(_ file: FileDescriptor) -> Bool {
        let flags = fcntl(file.rawValue, F_GETFL)
        return flags >= 0 && flags & VMD_O_DIRECT != 0
    }

    /// Whether guest iovecs can go to the file as they are under O_DIRECT.
    static func isAligned(_ vectors: [iovec]) -> Bool {
        vectors.allSatisfy { entry in
            Int(bitPattern: entry.iov_base) % sector == 0 && entry.iov_len % sector == 0
        }
    }
}

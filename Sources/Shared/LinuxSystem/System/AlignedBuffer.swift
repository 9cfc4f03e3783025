import CLinux
import Glibc

/// Host memory aligned for O_DIRECT (`cache none`): the block backends' bounce buffer
/// for guest memory that is not sector-aligned and for qcow2 metadata, and vmd's for
/// the first bytes of an image it opened O_DIRECT. Freed with the buffer.
public final class AlignedBuffer {
    /// Page alignment satisfies every device's direct-I/O memory alignment.
    public static let alignment = 4096
    /// The sector: direct I/O offsets and lengths are multiples of it.
    public static let sector = 512

    public let count: Int
    private let base: UnsafeMutableRawPointer

    /// `count` zeroed bytes.
    public init(count: Int) throws {
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
    public var vector: iovec { iovec(iov_base: base, iov_len: count) }

    public func bytes(_ range: Range<Int>) -> [UInt8] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "inside the buffer")
        // SAFETY: the range is inside the allocation (checked above).
        return Array(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    public func replace(at offset: Int, with bytes: [UInt8]) {
        precondition(offset >= 0 && offset + bytes.count <= count, "inside the buffer")
        guard !bytes.isEmpty else { return }
        // SAFETY: the destination range is inside the allocation (checked above).
        bytes.withUnsafeBytes { source in _ = memcpy(base + offset, source.baseAddress!, source.count) }
    }

    /// Fills the buffer from `file` at `offset` (aligned); returns how many bytes the file
    /// had (fewer at its end; the rest stays zero).
    public func fill(from file: FileDescriptor, at offset: UInt64) throws -> Int {
        var done = 0
        while done < count {
            // SAFETY: done < count: the read lands inside the allocation.
            let got = try retryingInterrupts("pread") { pread(file.rawValue, base + done, count - done, off_t(offset) + off_t(done)) }
            if got == 0 { break }
            done += got
        }
        return done
    }

    /// Whether `file` is open O_DIRECT (`cache none`; vmd opened it so).
    public static func isDirect(_ file: FileDescriptor) -> Bool {
        let flags = fcntl(file.rawValue, F_GETFL)
        return flags >= 0 && flags & VMD_O_DIRECT != 0
    }

    /// Whether guest iovecs can go to the file as they are under O_DIRECT.
    public static func isAligned(_ vectors: [iovec]) -> Bool {
        vectors.allSatisfy { entry in
            Int(bitPattern: entry.iov_base) % sector == 0 && entry.iov_len % sector == 0
        }
    }
}

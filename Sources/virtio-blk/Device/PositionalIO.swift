import Glibc
import LinuxSystem

/// preadv and pwritev between a disk image and guest-memory iovecs, as the backends use
/// them. With `direct` (the image is open O_DIRECT, `cache none`) iovecs that are not
/// sector-aligned go through an aligned bounce buffer; offsets and lengths are whole
/// sectors already (the request parser and the qcow2 layout see to it).
enum PositionalIO {
    static func write(_ file: FileDescriptor, from iovecs: inout [iovec], at offset: UInt64, direct: Bool = false) throws {
        guard direct, !AlignedBuffer.isAligned(iovecs) else {
            return try transfer(file, &iovecs, at: offset, call: "pwritev") { pwritev($0, $1, $2, $3) }
        }
        let bounce = try AlignedBuffer(count: IOVectors.totalLength(iovecs))
        bounce.replace(at: 0, with: IOVectors.gather(iovecs))
        var vectors = [bounce.vector]
        try transfer(file, &vectors, at: offset, call: "pwritev") { pwritev($0, $1, $2, $3) }
    }

    /// Reads into `iovecs`. With `zeroPastEnd` what lies past the end of the file reads
    /// as zeros (a qcow2 image's last data cluster may be short); without, it is EIO.
    static func read(_ file: FileDescriptor, into iovecs: inout [iovec], at offset: UInt64, direct: Bool = false,
                     zeroPastEnd: Bool = false) throws {
        guard direct, !AlignedBuffer.isAligned(iovecs) else {
            return try transfer(file, &iovecs, at: offset, call: "preadv", zeroPastEnd: zeroPastEnd) { preadv($0, $1, $2, $3) }
        }
        let bounce = try AlignedBuffer(count: IOVectors.totalLength(iovecs))
        var vectors = [bounce.vector]
        try transfer(file, &vectors, at: offset, call: "preadv", zeroPastEnd: zeroPastEnd) { preadv($0, $1, $2, $3) }
        IOVectors.copy(bounce.bytes(0..<bounce.count)[...], into: iovecs)
    }

    /// preadv/pwritev over `iovecs`, at most UIO_MAXIOV (IOV_MAX) per call, continuing after
    /// short transfers (which advance the entries in place). Zero bytes transferred (end of
    /// file) is reported as EIO, or with `zeroPastEnd` ends the read with the rest zeroed.
    static func transfer(
        _ file: FileDescriptor, _ iovecs: inout [iovec], at offset: UInt64, call: String, zeroPastEnd: Bool = false,
        _ body: (Int32, UnsafePointer<iovec>, Int32, off_t) -> Int
    ) throws {
        var index = 0
        var position = offset
        while index < iovecs.count {
            let batch = Int32(min(iovecs.count - index, Int(UIO_MAXIOV)))
            let fd = file.rawValue
            // SAFETY: the iovecs (checked guest slices) stay valid for the call; count <= IOV_MAX per call.
            let transferred = try iovecs.withUnsafeBufferPointer { vectors in
                try retryingInterrupts(call) { body(fd, vectors.baseAddress! + index, batch, off_t(position)) }
            }
            guard transferred > 0 else {
                guard zeroPastEnd else { throw SystemError(call, errno: EIO) }
                return IOVectors.fillZero(Array(iovecs[index...]))
            }
            position += UInt64(transferred)
            // Step over what was transferred: whole iovecs, then part of the next one.
            var left = transferred
            while left > 0 {
                if left >= iovecs[index].iov_len {
                    left -= iovecs[index].iov_len
                    index += 1
                } else {
                    iovecs[index].iov_base += left
                    iovecs[index].iov_len -= left
                    left = 0
                }
            }
        }
    }
}

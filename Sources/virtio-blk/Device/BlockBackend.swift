import Glibc
import CLinux
import LinuxSystem

/// What executes block requests once they are parsed and validated. Offsets and lengths
/// are in bytes and inside `capacityBytes` (the parser checked that); failures are host
/// errors, thrown (as `SystemError` for system calls), and become VIRTIO_BLK_S_IOERR.
package protocol BlockBackend: AnyObject {
    /// The usable size, a multiple of 512.
    var capacityBytes: UInt64 { get }
    var readOnly: Bool { get }

    /// Fills `vectors` (guest memory) in order from `offset`. A short read (end of file) is
    /// an error. `vectors` is the caller's scratch list: it is consumed.
    func read(into vectors: inout [iovec], at offset: UInt64) throws
    /// Writes `vectors` in order at `offset`; consumes them like `read`.
    func write(from vectors: inout [iovec], at offset: UInt64) throws
    /// Makes completed writes stable (VIRTIO_BLK_T_FLUSH).
    func flush() throws
    /// Deallocates the range if it can; reads of it are then unspecified (virtio 1.2 §5.2.6.2).
    func discard(offset: UInt64, length: UInt64) throws
    /// Makes the range read as zeroes; with `unmap` it may deallocate it.
    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) throws
    /// Reads again what it keeps of the image, which another process may have written
    /// since the open (a live migration's sender); at activation, nothing in flight.
    func takeOver() throws
}

extension BlockBackend {
    /// A backend that keeps nothing of the image in memory has nothing to read again.
    package func takeOver() throws {}
}

/// A raw disk image (a regular file or a block device): byte `n` of the disk is byte `n`
/// of the file. Data moves straight between the file and guest memory with preadv/pwritev.
package final class RawFileBackend: BlockBackend {
    let file: FileDescriptor
    package let capacityBytes: UInt64
    package let readOnly: Bool
    /// Open O_DIRECT (`cache none`): unaligned guest buffers are bounced.
    let direct: Bool

    /// `file` must be open for reading, and for writing unless `readOnly`. The capacity is
    /// the size rounded down to whole sectors (a partial last sector is not addressable).
    package init(file: FileDescriptor, readOnly: Bool) throws {
        // lseek rather than fstat: st_size is 0 for block devices.
        let size = try retryingInterrupts("lseek(SEEK_END)") { lseek(file.rawValue, 0, SEEK_END) }
        self.file = file
        self.capacityBytes = UInt64(size) & ~(VirtioBlock.sectorSize - 1)
        self.readOnly = readOnly
        direct = AlignedBuffer.isDirect(file)
    }

    package func read(into vectors: inout [iovec], at offset: UInt64) throws {
        checkRange(offset: offset, length: UInt64(IOVectors.totalLength(vectors)))
        try PositionalIO.read(file, into: &vectors, at: offset, direct: direct)
    }

    package func write(from vectors: inout [iovec], at offset: UInt64) throws {
        guard !readOnly else { throw SystemError("pwritev", errno: EROFS) }
        checkRange(offset: offset, length: UInt64(IOVectors.totalLength(vectors)))
        try PositionalIO.write(file, from: &vectors, at: offset, direct: direct)
    }

    package func flush() throws {
        try retryingInterrupts("fdatasync") { fdatasync(file.rawValue) }
    }

    package func discard(offset: UInt64, length: UInt64) throws {
        guard !readOnly else { throw SystemError("fallocate(PUNCH_HOLE)", errno: EROFS) }
        do {
            try fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset: offset, length: length,
                          call: "fallocate(PUNCH_HOLE)")
        } catch let error as SystemError where error.errno == EOPNOTSUPP {
            // Discard is a hint: the device MAY deallocate (virtio 1.2 §5.2.6.2). Nothing to do.
        }
    }

    package func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) throws {
        guard !readOnly else { throw SystemError("fallocate(ZERO_RANGE)", errno: EROFS) }
        // A punched hole reads as zeroes, so it satisfies write-zeroes when unmapping is allowed.
        if unmap {
            do {
                return try fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset: offset, length: length,
                                     call: "fallocate(PUNCH_HOLE)")
            } catch let error as SystemError where error.errno == EOPNOTSUPP {}
        }
        do {
            return try fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset: offset, length: length,
                                 call: "fallocate(ZERO_RANGE)")
        } catch let error as SystemError where error.errno == EOPNOTSUPP {}
        try writeZeroBytes(offset: offset, length: length)
    }

    // MARK: Helpers

    private func checkRange(offset: UInt64, length: UInt64) {
        let (end, overflow) = offset.addingReportingOverflow(length)
        precondition(!overflow && end <= capacityBytes, "the parser let a range beyond the disk through")
    }

    private func fallocate(_ mode: Int32, offset: UInt64, length: UInt64, call: String) throws {
        checkRange(offset: offset, length: length)
        guard length > 0 else { return }
        try retryingInterrupts(call) { vmd_fallocate(file.rawValue, mode, off_t(offset), off_t(length)) }
    }

    /// The portable fallback for write-zeroes: plain writes from a zeroed (aligned) buffer.
    private func writeZeroBytes(offset: UInt64, length: UInt64) throws {
        checkRange(offset: offset, length: length)
        let zeroes = try AlignedBuffer(count: 64 * 1024)
        var done: UInt64 = 0
        while done < length {
            let count = Int(min(UInt64(zeroes.count), length - done))
            var vectors = [iovec(iov_base: zeroes.vector.iov_base, iov_len: count)]
            try PositionalIO.write(file, from: &vectors, at: offset + done, direct: direct)
            done += UInt64(count)
        }
    }
}

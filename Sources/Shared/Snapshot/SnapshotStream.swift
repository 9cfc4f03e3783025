import Glibc
import LinuxSystem

/// Where a snapshot goes: vmctl's standard output (a file or a pipe), or memory in tests.
public protocol SnapshotSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Where a snapshot comes from. `read` fills the buffer whole or throws: a short stream is
/// `SnapshotError.truncated`.
public protocol SnapshotSource {
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws
    /// Passes over `count` bytes (a lazy restore leaves the pages in the file).
    mutating func skip(_ count: UInt64) throws
}

/// A descriptor as a sink or source: blocking, whatever it is (file, pipe, socket).
public struct DescriptorStream: SnapshotSink, SnapshotSource {
    public let fd: FileDescriptor

    public init(_ fd: FileDescriptor) { self.fd = fd }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        try fd.writeAll(bytes)
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws {
        try fill(buffer, "read snapshot", end: "\(buffer.count) more bytes expected") { Glibc.read(fd.rawValue, $0, $1) }
    }

    /// Seeks: only a regular file can (a lazy restore needs one), and not past its end.
    public mutating func skip(_ count: UInt64) throws {
        let here = lseek(fd.rawValue, 0, SEEK_CUR)
        guard here >= 0 else { throw SystemError("a lazy restore needs the snapshot in a file, not a pipe", errno: errno) }
        let size = try fd.fileSize()
        guard count <= UInt64(max(0, size - Int64(here))) else { throw SnapshotError.truncated("\(count) bytes of pages expected") }
        guard lseek(fd.rawValue, off_t(count), SEEK_CUR) >= 0 else { throw SystemError("lseek snapshot", errno: errno) }
    }
}

/// A snapshot in memory: for tests and the fuzz target.
public struct MemoryStream: SnapshotSink, SnapshotSource {
    public private(set) var bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        self.bytes.append(contentsOf: bytes)
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws {
        guard bytes.count - offset >= buffer.count else { throw SnapshotError.truncated("\(buffer.count) more bytes expected") }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + buffer.count)]))
        }
        offset += buffer.count
    }

    public mutating func skip(_ count: UInt64) throws {
        guard count <= UInt64(bytes.count - offset) else { throw SnapshotError.truncated("\(count) bytes of pages expected") }
        offset += Int(count)
    }
}

/// A file read with pread from an offset of its own: two processes holding the same open
/// file (vm and the pager) do not move each other's position.
public struct PositionedFileStream: SnapshotSource {
    public let fd: FileDescriptor
    public private(set) var offset: UInt64

    public init(_ fd: FileDescriptor, offset: UInt64 = 0) {
        self.fd = fd
        self.offset = offset
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws {
        try Self.read(fd, into: buffer, at: offset)
        offset += UInt64(buffer.count)
    }

    public mutating func skip(_ count: UInt64) throws {
        let size = try fd.fileSize()
        guard count <= UInt64(max(0, size - Int64(offset))) else { throw SnapshotError.truncated("\(count) bytes of pages expected") }
        offset += count
    }

    /// Fills `buffer` from `offset` of the file, or throws `truncated` at its end.
    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        // `fill` hands each call the rest of the buffer: its offset in the buffer is where to read in the file.
        try fill(buffer, "pread snapshot", end: "the file ends inside its pages") { pointer, count in
            pread(fd.rawValue, pointer, count, off_t(offset) + off_t(pointer - buffer.baseAddress!))
        }
    }
}

/// Fills `buffer` with as many calls of `read(pointer, count)` (read or pread) as it takes,
/// retrying EINTR; the end of the stream before it is full is `SnapshotError.truncated(end)`.
private func fill(_ buffer: UnsafeMutableRawBufferPointer, _ call: String, end: String,
                  _ read: (UnsafeMutableRawPointer, Int) -> Int) throws {
    var done = 0
    while done < buffer.count {
        // SAFETY: the kernel writes at most `buffer.count - done` bytes after `done`.
        let count = read(buffer.baseAddress! + done, buffer.count - done)
        if count < 0 {
            if errno == EINTR { continue }
            throw SystemError(call, errno: errno)
        }
        guard count > 0 else { throw SnapshotError.truncated(end) }
        done += count
    }
}

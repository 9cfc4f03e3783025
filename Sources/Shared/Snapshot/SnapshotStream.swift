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
}

/// A descriptor as a sink or source: blocking, whatever it is (file, pipe, socket).
public struct DescriptorStream: SnapshotSink, SnapshotSource {
    public let fd: FileDescriptor

    public init(_ fd: FileDescriptor) { self.fd = fd }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        try fd.writeAll(bytes)
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            // SAFETY: the kernel writes at most `buffer.count - done` bytes after `done`.
            let count = Glibc.read(fd.rawValue, buffer.baseAddress! + done, buffer.count - done)
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read snapshot", errno: errno)
            }
            guard count > 0 else { throw SnapshotError.truncated("\(buffer.count - done) more bytes expected") }
            done += count
        }
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
}

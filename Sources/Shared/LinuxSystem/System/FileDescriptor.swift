import Glibc
import CLinux

/// An open file descriptor with exactly one owner, which closes it.
///
/// A class rather than a ~Copyable struct because descriptors travel in arrays
/// and in message enums; the reference is the single owner. `take()` hands the
/// raw number over to someone else (for example the kernel, in SCM_RIGHTS).
public final class FileDescriptor: CustomStringConvertible {
    private var raw: Int32

    /// Adopts `raw`, which must be an open descriptor nobody else closes.
    public init(adopting raw: Int32) {
        precondition(raw >= 0, "adopting an invalid descriptor")
        self.raw = raw
    }

    deinit {
        if raw >= 0 { Glibc.close(raw) }
    }

    /// The descriptor number, for system calls. Valid while `self` is alive.
    public var rawValue: Int32 {
        precondition(raw >= 0, "descriptor used after take() or close()")
        return raw
    }

    public var isOpen: Bool { raw >= 0 }

    /// Gives up ownership: the caller now closes the returned number.
    public func take() -> Int32 {
        let value = rawValue
        raw = -1
        return value
    }

    public func close() {
        if raw >= 0 { Glibc.close(raw) }
        raw = -1
    }

    /// A second descriptor for the same open file, close-on-exec.
    public func duplicate() throws -> FileDescriptor {
        let copy = try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") { vmd_fcntl_int(rawValue, F_DUPFD_CLOEXEC, 0) }
        return FileDescriptor(adopting: copy)
    }

    public var description: String { "fd \(raw)" }

    /// The process's standard streams; never closed by their owner.
    public static let standardInput = FileDescriptor(standardStream: STDIN_FILENO)
    public static let standardOutput = FileDescriptor(standardStream: STDOUT_FILENO)

    private init(standardStream: Int32) {
        raw = standardStream
    }

    // MARK: Opening

    public static func open(_ path: String, flags: Int32, mode: mode_t = 0) throws -> FileDescriptor {
        let raw = try retryingInterrupts("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(adopting: raw)
    }

    public static func eventFD(nonBlocking: Bool = true) throws -> FileDescriptor {
        let flags = Int32(EFD_CLOEXEC) | (nonBlocking ? Int32(EFD_NONBLOCK) : 0)
        let raw = try retryingInterrupts("eventfd") { eventfd(0, flags) }
        return FileDescriptor(adopting: raw)
    }

    /// A connected pair of SOCK_SEQPACKET unix sockets: message boundaries are kept,
    /// which is what the IPC framing relies on.
    public static func socketPair() throws -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try retryingInterrupts("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (FileDescriptor(adopting: fds[0]), FileDescriptor(adopting: fds[1]))
    }

    /// A pipe, both ends close-on-exec: (read end, write end).
    public static func pipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try retryingInterrupts("pipe2") { vmd_pipe2(&fds, O_CLOEXEC) }
        return (FileDescriptor(adopting: fds[0]), FileDescriptor(adopting: fds[1]))
    }

    // MARK: I/O

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            // SAFETY: offset < bytes.count here, so the base exists and the range is inside the buffer.
            let written = try retryingInterrupts("write") {
                Glibc.write(rawValue, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += written
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll($0) }
    }

    /// One read of at most `capacity` bytes; an empty result means end of file.
    public func read(upTo capacity: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: capacity)
        // SAFETY: the kernel writes at most `capacity` bytes, the buffer's size.
        let count = try buffer.withUnsafeMutableBytes { raw in
            try retryingInterrupts("read") { Glibc.read(rawValue, raw.baseAddress, capacity) }
        }
        buffer.removeSubrange(count...)
        return buffer
    }

    /// One read of at most `capacity` bytes from a non-blocking descriptor: nil when
    /// nothing is there now (EAGAIN), empty at end of file.
    public func readAvailable(upTo capacity: Int) throws -> [UInt8]? {
        do {
            return try read(upTo: capacity)
        } catch let error as SystemError where error.errno == EAGAIN {
            return nil
        }
    }

    /// Reads from the current position to end of file (also for /proc files, whose size reads as 0).
    public func readToEnd() throws -> [UInt8] {
        var contents: [UInt8] = []
        while true {
            let chunk = try read(upTo: 64 * 1024)
            if chunk.isEmpty { return contents }
            contents += chunk
        }
    }

    /// Reads at `offset` until `count` bytes or end of file.
    public func pread(count: Int, offset: Int64) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        // SAFETY: done < count inside the loop: each pread writes within the buffer's `count` bytes.
        try buffer.withUnsafeMutableBytes { raw in
            while done < count {
                let got = try retryingInterrupts("pread") {
                    Glibc.pread(rawValue, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
                if got == 0 { break }
                done += got
            }
        }
        buffer.removeSubrange(done...)
        return buffer
    }

    /// Writes all of `bytes` at `offset` (a short write continues; none at all is EIO).
    public func pwriteAll(_ bytes: [UInt8], offset: UInt64) throws {
        var done = 0
        // SAFETY: done < bytes.count inside the loop: each pwrite reads within the array.
        try bytes.withUnsafeBytes { raw in
            while done < bytes.count {
                let wrote = try retryingInterrupts("pwrite") {
                    Glibc.pwrite(rawValue, raw.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                }
                guard wrote > 0 else { throw SystemError("pwrite", errno: EIO) }
                done += wrote
            }
        }
    }

    public func fileSize() throws -> Int64 {
        var info = stat()
        try retryingInterrupts("fstat") { fstat(rawValue, &info) }
        return Int64(info.st_size)
    }

    /// Whether epoll can watch it: terminals, pipes and sockets (not regular files or /dev/null).
    public var isPollable: Bool {
        if isatty(rawValue) == 1 { return true }
        var info = stat()
        guard fstat(rawValue, &info) == 0 else { return false }
        let kind = info.st_mode & S_IFMT
        return kind == S_IFIFO || kind == S_IFSOCK
    }

    public func setNonBlocking(_ enabled: Bool) throws {
        let flags = try retryingInterrupts("fcntl(F_GETFL)") { vmd_fcntl_int(rawValue, F_GETFL, 0) }
        let wanted = enabled ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        try retryingInterrupts("fcntl(F_SETFL)") { vmd_fcntl_int(rawValue, F_SETFL, wanted) }
    }

    /// Signals an eventfd (adds 1 to its counter).
    public func signalEvent() throws {
        var one: UInt64 = 1
        try withUnsafeBytes(of: &one) { try writeAll($0) }
    }

    /// Reads and resets an eventfd's counter; 0 when nothing was pending (non-blocking).
    public func drainEvent() -> UInt64 {
        var value: UInt64 = 0
        let got = withUnsafeMutableBytes(of: &value) { Glibc.read(rawValue, $0.baseAddress, 8) }
        return got == 8 ? value : 0
    }
}

extension FileDescriptor {
    /// Writes a message to standard error, unbuffered (for one-line reports).
    public static func standardError(_ message: String) {
        var bytes = Array(message.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 { if written == -1 && errno == EINTR { continue } else { return } }
                offset += written
            }
        }
    }
}

/// Two descriptors are the same when they are the same object (messages that carry one
/// compare that way; the number alone says nothing once passed to another process).
extension FileDescriptor: Equatable {
    public static func == (a: FileDescriptor, b: FileDescriptor) -> Bool { a === b }
}

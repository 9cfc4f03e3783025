import Glibc
import LinuxSystem

/// Filesystem unix sockets for the control socket: the address, and a
/// SOCK_SEQPACKET client connection (vmctl, and vmd testing for a live server).
public enum UnixSocket {
    public struct PathTooLong: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "socket path too long: \(path)" }
    }

    public static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw PathTooLong(path: path) }
        // SAFETY: bytes.count < sizeof(sun_path) (checked above), so the path and its NUL fit.
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    /// Removes a socket left at `path` (by a server that died) so that a new one can be bound
    /// there. Anything else at the path stays: a mistyped path must not cost a file, and bind
    /// then fails on it with EADDRINUSE.
    public static func removeStale(at path: String) {
        var status = stat()
        if lstat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
    }

    /// Connects a SOCK_SEQPACKET client to `path`.
    public static func connect(_ path: String) throws -> FileDescriptor {
        var address = try address(path)
        let raw = try retryingInterrupts("socket") { socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let fd = FileDescriptor(adopting: raw)
        // SAFETY: sockaddr_un begins with the sockaddr header; connect reads sizeof(sockaddr_un).
        _ = try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                try retryingInterrupts("connect(\(path))") { Glibc.connect(fd.rawValue, generic, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        return fd
    }
}

/// The directory part of a path ("." for a bare name), for resolving paths
/// relative to a configuration file.
public func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

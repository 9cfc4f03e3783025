import CLinux
import Glibc
import IPC
import LinuxSystem

/// Where a live migration goes: `HOST:PORT` (TCP; a numeric IPv4 or [IPv6] address or a
/// name) or a unix socket path (anything with a `/`). The receiving vmd listens on one
/// (`vmd -m`), the sending vmd connects to it (`vmctl migrate NAME DEST`).
enum MigrationEndpoint: Equatable, CustomStringConvertible {
    case tcp(host: String, port: UInt16)
    case unix(String)

    struct Invalid: Error, CustomStringConvertible {
        let text: String
        var description: String { "not a migration address: \"\(text)\" (HOST:PORT, [IPv6]:PORT or a socket path)" }
    }

    init(_ text: String) throws {
        if text.contains("/") {
            self = .unix(text)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
            throw Invalid(text: text)
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.count < 256 else { throw Invalid(text: text) }
        self = .tcp(host: host, port: port)
    }

    var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): path
        }
    }

    /// The first line of a migration, sender to receiver: what it is and which VM.
    static func hello(vm name: String) -> [UInt8] { Array("SVMDMIGRATE 1 \(name)\n".utf8) }

    /// The VM name of a hello line, nil if it is not one.
    static func vmName(inHello line: String) -> String? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "SVMDMIGRATE", fields[1] == "1", !fields[2].isEmpty, fields[2].utf8.count <= 64 else { return nil }
        return String(fields[2])
    }

    /// Connects, with `timeout` seconds for the connection and for every send and receive.
    func connect(timeout: Int = 10) throws -> FileDescriptor {
        try withAddresses { family, address, length in
            let fd = FileDescriptor(adopting: try retryingInterrupts("socket") { socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
            try Self.setTimeouts(fd, seconds: timeout)
            try retryingInterrupts("connect(\(self))") { Glibc.connect(fd.rawValue, address, length) }
            return fd
        }
    }

    /// A listening socket (non-blocking, close-on-exec). A unix socket left at the path is
    /// replaced; anything else there is not removed, and bind fails on it (EADDRINUSE).
    func listen() throws -> FileDescriptor {
        if case .unix(let path) = self { UnixSocket.removeStale(at: path) }
        return try withAddresses { family, address, length in
            let fd = FileDescriptor(adopting: try retryingInterrupts("socket") {
                socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            })
            var on: Int32 = 1
            if family != AF_UNIX { setsockopt(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size)) }
            try retryingInterrupts("bind(\(self))") { bind(fd.rawValue, address, length) }
            try retryingInterrupts("listen(\(self))") { Glibc.listen(fd.rawValue, 8) }
            return fd
        }
    }

    static func setTimeouts(_ fd: FileDescriptor, seconds: Int) throws {
        var time = timeval(tv_sec: seconds, tv_usec: 0)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            try retryingInterrupts("setsockopt") { setsockopt(fd.rawValue, SOL_SOCKET, option, &time, socklen_t(MemoryLayout<timeval>.size)) }
        }
    }

    /// Runs `body` on each address of the endpoint until one works; the last error if none does.
    private func withAddresses(_ body: (Int32, UnsafePointer<sockaddr>, socklen_t) throws -> FileDescriptor) throws -> FileDescriptor {
        switch self {
        case .unix(let path):
            var address = try UnixSocket.address(path)
            // SAFETY: sockaddr_un begins with the sockaddr header; the length is sizeof(sockaddr_un).
            return try withUnsafePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body(AF_UNIX, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, let list else {
                throw SystemError("\(self): \(String(cString: gai_strerror(status)))", errno: EINVAL)
            }
            defer { freeaddrinfo(list) }
            var failure: Error = SystemError("\(self): no address", errno: EADDRNOTAVAIL)
            var entry: UnsafeMutablePointer<addrinfo>? = list
            while let current = entry {
                // SAFETY: getaddrinfo's entries are valid until freeaddrinfo (deferred above).
                do {
                    return try body(current.pointee.ai_family, current.pointee.ai_addr, current.pointee.ai_addrlen)
                } catch {
                    failure = error
                }
                entry = current.pointee.ai_next
            }
            throw failure
        }
    }
}

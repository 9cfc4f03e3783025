import Glibc
import CLinux
import LinuxSystem

/// sd_notify(3) without libsystemd: one datagram of `KEY=VALUE` lines to the unix socket
/// systemd names in NOTIFY_SOCKET (a path, or an abstract name written with a leading `@`).
/// Outside systemd (no NOTIFY_SOCKET) every call does nothing.
struct SystemdNotifier {
    private let address: sockaddr_un
    private let addressLength: socklen_t

    /// Reads NOTIFY_SOCKET, and unsets it so that no child of vmd talks to systemd as vmd.
    static func fromEnvironment() -> SystemdNotifier? {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }) else { return nil }
        unsetenv("NOTIFY_SOCKET")
        return SystemdNotifier(socket: value)
    }

    init?(socket: String) {
        var bytes = Array(socket.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else { return nil }
        if first == UInt8(ascii: "@") { bytes[0] = 0 }  // the abstract namespace
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        // SAFETY: bytes.count < sizeof(sun_path) (checked above).
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        self.address = address
        // An abstract name's length is exact (no NUL terminator); a path's includes its NUL.
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        addressLength = socklen_t(pathOffset + bytes.count + (first == UInt8(ascii: "@") ? 0 : 1))
    }

    /// Sends the lines as one datagram. Failing to tell systemd is logged by the caller,
    /// never fatal: vmd serves its VMs either way.
    func notify(_ lines: [String]) throws {
        let message = Array(lines.joined(separator: "\n").utf8)
        let raw = try retryingInterrupts("socket(AF_UNIX, SOCK_DGRAM)") {
            socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        let fd = FileDescriptor(adopting: raw)
        var target = address
        // SAFETY: sockaddr_un begins with the sockaddr header; sendto reads addressLength <= sizeof(sockaddr_un) bytes.
        _ = try withUnsafePointer(to: &target) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                try retryingInterrupts("sendto(NOTIFY_SOCKET)") {
                    message.withUnsafeBytes { sendto(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), generic, addressLength) }
                }
            }
        }
    }

    /// CLOCK_MONOTONIC in µs, as RELOADING=1's MONOTONIC_USEC wants it.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}

import Glibc
import Shared

/// vmctl's connection to vmd: one request, one reply.
struct ControlClient {
    let channel: Channel

    init(socketPath: String) throws {
        do {
            channel = Channel(socket: try connectSeqPacket(socketPath))
        } catch let error as SystemError where [ENOENT, ECONNREFUSED].contains(error.errno) {
            throw VmctlError("cannot reach vmd at \(socketPath): is it running? (\(String(cString: strerror(error.errno))))")
        }
    }

    func request(_ request: ControlRequest) throws -> ControlReply {
        try channel.send(request)
        return try channel.receive(ControlReply.self)
    }

    /// Sends `request` and turns a `.failed` reply into an error.
    func expectSuccess(_ request: ControlRequest) throws -> ControlReply {
        let reply = try self.request(request)
        if case .failed(let message) = reply { throw VmctlError(message) }
        return reply
    }
}

/// A one-line error for the user; vmctl exits 1 with it.
struct VmctlError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Connects a SOCK_SEQPACKET unix socket.
func connectSeqPacket(_ path: String) throws -> FileDescriptor {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw VmctlError("socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let raw = try retryingInterrupts("socket") { socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    let fd = FileDescriptor(adopting: raw)
    try withUnsafePointer(to: &address) { pointer in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
            try retryingInterrupts("connect(\(path))") { connect(fd.rawValue, generic, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
    return fd
}

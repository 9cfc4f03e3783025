import Glibc
import IPC
import LinuxSystem

/// vmctl's connection to vmd: one request, one reply.
struct ControlClient {
    let channel: Channel

    init(socketPath: String) throws {
        do {
            channel = Channel(socket: try UnixSocket.connect(socketPath))
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

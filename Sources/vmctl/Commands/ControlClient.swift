import Glibc
import IPC
import LinuxSystem

/// vmctl's connection to vmd: one request, one reply (a long status list in several frames).
struct ControlClient {
    let channel: Channel

    init(socketPath: String) throws {
        do {
            channel = Channel(socket: try UnixSocket.connect(socketPath))
        } catch let error as SystemError where [ENOENT, ECONNREFUSED].contains(error.errno) {
            throw VmctlError("cannot reach vmd at \(socketPath): is it running? (\(String(cString: strerror(error.errno))))")
        }
    }

    /// More VMs than one status list may hold: a vmd that sends more parts is not believed.
    static let maximumStatusEntries = 1_000_000

    func request(_ request: ControlRequest) throws -> ControlReply {
        try channel.send(request)
        // A status list longer than a frame comes in parts, the last one a `.status`.
        var parts: [VMStatusEntry] = []
        while true {
            let reply = try channel.receive(ControlReply.self)
            switch reply {
            case .statusPart(let entries):
                parts += entries
                guard parts.count <= Self.maximumStatusEntries else {
                    throw VmctlError("vmd sent a status list of more than \(Self.maximumStatusEntries) VMs")
                }
            case .status(let rest):
                return .status(parts + rest)
            default:
                guard parts.isEmpty else { throw VmctlError("vmd broke off a status list with another reply") }
                return reply
            }
        }
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

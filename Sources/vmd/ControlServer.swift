import CLinux
import Glibc
import Logging
import Shared

/// vmd's control socket (design §1): a SOCK_SEQPACKET unix socket anyone may
/// connect to; what each peer may do is decided per request from SO_PEERCRED.
final class ControlServer {
    let path: String
    private let listener: FileDescriptor
    private var acceptWatch: EventWatch?
    private var connections: [ObjectIdentifier: ControlConnection] = [:]
    private let loop: EventLoop
    private let logger: Logger
    private let handle: (ControlRequest, PeerCredentials, @escaping (ControlReply) -> Void) -> Void

    enum ServerError: Error, CustomStringConvertible {
        case inUse(String)

        var description: String {
            switch self {
            case .inUse(let path): "another vmd is listening on \(path)"
            }
        }
    }

    init(path: String, loop: EventLoop, logger: Logger,
         handle: @escaping (ControlRequest, PeerCredentials, @escaping (ControlReply) -> Void) -> Void) throws {
        self.path = path
        self.loop = loop
        self.logger = logger
        self.handle = handle
        let raw = try retryingInterrupts("socket") {
            socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        listener = FileDescriptor(adopting: raw)
        var address = try UnixSocket.address(path)
        // A socket file left by a vmd that died may be replaced; a live one may not.
        if ControlServer.isLive(path) { throw ServerError.inUse(path) }
        unlink(path)
        _ = try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                try retryingInterrupts("bind(\(path))") { bind(listener.rawValue, generic, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        try retryingInterrupts("chmod(\(path))") { chmod(path, 0o666) }
        try retryingInterrupts("listen") { listen(listener.rawValue, 16) }
        acceptWatch = try loop.watchReadable(listener.rawValue) { [weak self] in self?.acceptAll() }
    }

    deinit {
        acceptWatch?.cancel()
        unlink(path)
    }

    private static func isLive(_ path: String) -> Bool {
        (try? UnixSocket.connect(path)) != nil
    }

    private func acceptAll() {
        while true {
            let raw = vmd_accept4(listener.rawValue, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
            guard raw >= 0 else { return }
            let socket = FileDescriptor(adopting: raw)
            do {
                let connection = try ControlConnection(socket: socket, server: self)
                connections[ObjectIdentifier(connection)] = connection
            } catch {
                logger.warning("control connection: \(error)")
            }
        }
    }

    fileprivate func serve(_ request: ControlRequest, from connection: ControlConnection) {
        handle(request, connection.peer) { [weak connection] reply in connection?.send(reply) }
    }

    fileprivate func drop(_ connection: ControlConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }

    fileprivate var eventLoop: EventLoop { loop }
}

/// One vmctl connected to vmd: requests in order, replies possibly later (wait, pause).
final class ControlConnection {
    let peer: PeerCredentials
    private let channel: Channel
    private var watch: EventWatch?
    private weak var server: ControlServer?

    fileprivate init(socket: FileDescriptor, server: ControlServer) throws {
        peer = try PeerCredentials(socket: socket)
        channel = Channel(socket: socket)
        self.server = server
        watch = try server.eventLoop.watchReadable(socket.rawValue) { [weak self] in self?.readable() }
    }

    private func readable() {
        do {
            guard let (bytes, descriptors) = try channel.receiveRaw() else { return }
            let request = try IPCFrame.decode(ControlRequest.self, bytes: bytes, descriptors: descriptors)
            server?.serve(request, from: self)
        } catch IPCError.peerClosed {
            close()
        } catch {
            send(.failed("bad request: \(error)"))
            close()
        }
    }

    func send(_ reply: ControlReply) {
        try? channel.send(reply)
    }

    private func close() {
        watch?.cancel()
        watch = nil
        server?.drop(self)
    }
}

import CLinux
import Glibc
import Logging
import IPC
import LinuxSystem

/// vmd's control socket (design §1): a SOCK_SEQPACKET unix socket anyone may
/// connect to; what each peer may do is decided per request from SO_PEERCRED.
/// What any one user may hold of vmd through it is bounded (`ControlLimits`).
final class ControlServer {
    let path: String
    private let listener: FileDescriptor
    private var acceptWatch: EventWatch?
    /// Set once this server's socket is at `path`: only then is the path its to remove
    /// (a failed start must not take away another vmd's socket, or a file that was there).
    private var bound = false
    private var backoff: EventWatch?
    /// Kept open so that when accept(2) fails for want of descriptors one can be freed
    /// to take the pending connection and close it, instead of leaving it to hang.
    private var reserve: FileDescriptor?
    private var connections: [ObjectIdentifier: ControlConnection] = [:]
    private var openPerUser: [uid_t: Int] = [:]
    private let loop: EventLoop
    private let logger: Logger
    private let refusals: RateLimitedLog
    let limits: ControlLimits
    private let handle: (ControlRequest, PeerCredentials, @escaping (ControlReply) -> Void) -> Void

    enum ServerError: Error, CustomStringConvertible {
        case inUse(String)

        var description: String {
            switch self {
            case .inUse(let path): "another vmd is listening on \(path)"
            }
        }
    }

    init(path: String, loop: EventLoop, logger: Logger, limits: ControlLimits = ControlLimits(),
         handle: @escaping (ControlRequest, PeerCredentials, @escaping (ControlReply) -> Void) -> Void) throws {
        self.path = path
        self.loop = loop
        self.logger = logger
        self.limits = limits
        self.handle = handle
        refusals = RateLimitedLog(logger: logger, perSecond: 2)
        let raw = try retryingInterrupts("socket") {
            socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        listener = FileDescriptor(adopting: raw)
        var address = try UnixSocket.address(path)
        // A socket file left by a vmd that died may be replaced; a live one may not.
        if ControlServer.isLive(path) { throw ServerError.inUse(path) }
        UnixSocket.removeStale(at: path)
        // SAFETY: sockaddr_un begins with the sockaddr header; bind reads sizeof(sockaddr_un).
        _ = try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                try retryingInterrupts("bind(\(path))") { bind(listener.rawValue, generic, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        bound = true
        try retryingInterrupts("chmod(\(path))") { chmod(path, 0o666) }
        try retryingInterrupts("listen") { listen(listener.rawValue, 64) }
        reserve = try? FileDescriptor.open("/dev/null", flags: O_RDONLY)
        try watchListener()
    }

    deinit {
        acceptWatch?.cancel()
        backoff?.cancel()
        if bound { unlink(path) }
    }

    private static func isLive(_ path: String) -> Bool {
        (try? UnixSocket.connect(path)) != nil
    }

    private func watchListener() throws {
        acceptWatch = try loop.watchReadable(listener.rawValue) { [weak self] in self?.acceptAll() }
    }

    private func acceptAll() {
        while true {
            let raw = vmd_accept4(listener.rawValue, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
            guard raw >= 0 else {
                let error = vmd_errno()
                if error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM { outOfDescriptors(error) }
                return
            }
            admit(FileDescriptor(adopting: raw))
        }
    }

    /// The listener stays readable while a connection waits, so retrying now would spin:
    /// turn the one waiting away (with the reserve descriptor), stop watching for a moment.
    private func outOfDescriptors(_ error: Int32) {
        refusals.note("control socket: accept: \(String(cString: strerror(error))); refusing connections for \(limits.acceptBackoffSeconds)s")
        if reserve != nil {
            reserve = nil
            let raw = vmd_accept4(listener.rawValue, Int32(SOCK_CLOEXEC.rawValue))
            if raw >= 0 { Glibc.close(raw) }
            reserve = try? FileDescriptor.open("/dev/null", flags: O_RDONLY)
        }
        acceptWatch?.cancel()
        acceptWatch = nil
        backoff = try? loop.after(seconds: limits.acceptBackoffSeconds) { [weak self] in
            guard let self else { return }
            self.backoff = nil
            try? self.watchListener()
            self.acceptAll()
        }
    }

    private func admit(_ socket: FileDescriptor) {
        let peer: PeerCredentials
        do {
            peer = try PeerCredentials(socket: socket)
        } catch {
            logger.warning("control connection: \(error)")
            return
        }
        guard limits.admits(uid: peer.uid, open: openPerUser) else {
            refusals.note("control socket: refusing a connection of uid \(peer.uid): too many open")
            try? Channel(socket: socket).send(ControlReply.failed("too many connections to vmd; close some and try again"))
            return
        }
        do {
            let connection = try ControlConnection(socket: socket, peer: peer, server: self)
            connections[ObjectIdentifier(connection)] = connection
            openPerUser[peer.uid, default: 0] += 1
        } catch {
            logger.warning("control connection: \(error)")
        }
    }

    fileprivate func serve(_ request: ControlRequest, from connection: ControlConnection) {
        handle(request, connection.peer) { [weak connection] reply in connection?.send(reply) }
    }

    fileprivate func drop(_ connection: ControlConnection) {
        guard connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        openPerUser[connection.peer.uid, default: 1] -= 1
        if openPerUser[connection.peer.uid] == 0 { openPerUser[connection.peer.uid] = nil }
    }

    fileprivate var eventLoop: EventLoop { loop }
    fileprivate var log: Logger { logger }
}

/// One vmctl connected to vmd: requests in order, one reply each, possibly later
/// (wait, pause). Replies queue while the client does not read, up to a limit.
final class ControlConnection {
    let peer: PeerCredentials
    private let channel: Channel
    private var readWatch: EventWatch?
    private var writeWatch: EventWatch?
    private var idleTimer: EventWatch?
    private var queued: [ControlReply] = []
    /// Requests served whose reply has not been sent yet.
    private var unanswered = 0
    private weak var server: ControlServer?

    fileprivate init(socket: FileDescriptor, peer: PeerCredentials, server: ControlServer) throws {
        self.peer = peer
        channel = Channel(socket: socket)
        self.server = server
        readWatch = try server.eventLoop.watchReadable(socket.rawValue) { [weak self] in self?.readable() }
        armIdleTimer()
    }

    private func readable() {
        do {
            guard let (bytes, descriptors) = try channel.receiveRaw() else { return }
            let request = try IPCFrame.decode(ControlRequest.self, bytes: bytes, descriptors: descriptors)
            unanswered += 1
            idleTimer?.cancel()
            idleTimer = nil
            server?.serve(request, from: self)
        } catch IPCError.peerClosed {
            close()
        } catch {
            send(.failed("bad request: \(error)"))
            close()
        }
    }

    func send(_ reply: ControlReply) {
        guard readWatch != nil else { return }
        unanswered = max(0, unanswered - 1)
        // A status list longer than a frame goes in parts (the client joins them).
        if case .status(let entries) = reply {
            queued.append(contentsOf: ControlReply.statusFrames(entries))
        } else {
            queued.append(reply)
        }
        flush()
        if unanswered == 0 && idleTimer == nil { armIdleTimer() }
    }

    private func flush() {
        while let reply = queued.first {
            do {
                try channel.send(reply)
            } catch let error as IPCError {
                // Too large for a frame (one status entry with four 4 KiB paths and a long reason): say so instead.
                queued[0] = .failed("reply too large: \(error)")
                continue
            } catch let error as SystemError where error.errno == EAGAIN {
                // Replies unread, the parts of one status list counted as one.
                let unread = queued.count - queued.filter { if case .statusPart = $0 { true } else { false } }.count
                guard unread <= server?.limits.queuedReplies ?? 0 else {
                    server?.log.warning("control connection of uid \(peer.uid): \(queued.count) replies unread; closing it")
                    return close()
                }
                if writeWatch == nil {
                    writeWatch = try? server?.eventLoop.watchWritable(channel.socket.rawValue) { [weak self] in self?.flush() }
                }
                return
            } catch {
                return close()  // the client went away
            }
            queued.removeFirst()
        }
        writeWatch?.cancel()
        writeWatch = nil
    }

    private func armIdleTimer() {
        guard let server else { return }
        idleTimer = try? server.eventLoop.after(seconds: server.limits.idleSeconds) { [weak self] in self?.close() }
    }

    private func close() {
        readWatch?.cancel()
        readWatch = nil
        writeWatch?.cancel()
        writeWatch = nil
        idleTimer?.cancel()
        idleTimer = nil
        queued = []
        server?.drop(self)
    }
}

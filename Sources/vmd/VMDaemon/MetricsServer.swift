import CLinux
import Glibc
import Logging
import LinuxSystem

/// vmd's metrics endpoint (`metrics listen on ADDRESS` in vmd.conf): a scraper connects,
/// sends one HTTP request, gets the counters as Prometheus text, and the connection closes.
/// All on vmd's event loop without blocking it: reads and writes are non-blocking, at most
/// a few connections are served at once, and each gets a few seconds in all, so a peer
/// that connects and says nothing, or reads nothing, holds nothing for long.
final class MetricsServer {
    private let listener: FileDescriptor
    private let loop: EventLoop
    private let logger: Logger
    private let metrics: () -> [UInt8]
    private var acceptWatch: EventWatch?
    private var connections: [ObjectIdentifier: Connection] = [:]
    let endpoint: MigrationEndpoint

    static let maximumConnections = 8
    static let connectionTimeout: Double = 10

    private final class Connection {
        let socket: FileDescriptor
        var received: [UInt8] = []
        var unsent: ArraySlice<UInt8> = []
        var watch: EventWatch?
        var timer: EventWatch?
        init(_ socket: FileDescriptor) { self.socket = socket }
    }

    /// `metrics()` renders the exposition text; it is called once per GET.
    init(endpoint: MigrationEndpoint, loop: EventLoop, logger: Logger, metrics: @escaping () -> [UInt8]) throws {
        listener = try endpoint.listen()
        self.endpoint = endpoint
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        acceptWatch = try loop.watchReadable(listener.rawValue) { [weak self] in self?.acceptOne() }
    }

    /// Stops listening and drops every connection (a unix socket's path is removed).
    func close() {
        acceptWatch?.cancel()
        acceptWatch = nil
        for key in Array(connections.keys) { drop(key) }
        listener.close()
        if case .unix(let path) = endpoint { unlink(path) }
    }

    private func acceptOne() {
        let raw = vmd_accept4(listener.rawValue, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
        guard raw >= 0 else { return }
        let socket = FileDescriptor(adopting: raw)
        guard connections.count < Self.maximumConnections else {
            logger.warning("metrics: \(Self.maximumConnections) scrapes already being served; one connection refused")
            return
        }
        let connection = Connection(socket)
        let key = ObjectIdentifier(connection)
        connections[key] = connection
        connection.timer = try? loop.after(seconds: Self.connectionTimeout) { [weak self] in self?.drop(key) }
        connection.watch = try? loop.watchReadable(raw) { [weak self] in self?.readRequest(key) }
        if connection.watch == nil || connection.timer == nil { drop(key) }
    }

    private func readRequest(_ key: ObjectIdentifier) {
        guard let connection = connections[key] else { return }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = buffer.withUnsafeMutableBytes { recv(connection.socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0 else { return drop(key) }  // closed, or an error: nothing to answer
        connection.received += buffer[..<count]
        let response: MetricsResponse
        if let end = MetricsResponse.headEnd(in: connection.received), end <= MetricsResponse.maximumHead {
            response = MetricsResponse.answer(head: Array(connection.received[..<end]), metrics: metrics)
        } else if connection.received.count > MetricsResponse.maximumHead {
            response = .plain(431, "Request Header Fields Too Large")
        } else {
            return  // the rest of the head is still to come
        }
        connection.watch?.cancel()
        connection.unsent = response.bytes[...]
        connection.watch = try? loop.watchWritable(connection.socket.rawValue) { [weak self] in self?.sendResponse(key) }
        if connection.watch == nil { drop(key) }
    }

    private func sendResponse(_ key: ObjectIdentifier) {
        guard let connection = connections[key] else { return }
        let sent = connection.unsent.withUnsafeBytes {
            send(connection.socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
        }
        if sent < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard sent > 0 else { return drop(key) }  // the scraper went away
        connection.unsent = connection.unsent.dropFirst(sent)
        if connection.unsent.isEmpty { drop(key) }
    }

    private func drop(_ key: ObjectIdentifier) {
        guard let connection = connections.removeValue(forKey: key) else { return }
        connection.watch?.cancel()
        connection.timer?.cancel()
        connection.socket.close()
    }
}

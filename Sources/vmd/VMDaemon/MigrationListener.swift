import CLinux
import Glibc
import Logging
import LinuxSystem

/// The receiving end of live migrations (`vmd -m ADDRESS`): accepts a connection, reads its
/// hello line (which VM) without blocking the daemon, and hands the connection on. At most a
/// few connections wait for their hello at once, each for a few seconds: a peer that connects
/// and says nothing holds nothing for long.
final class MigrationListener {
    private let listener: FileDescriptor
    private let loop: EventLoop
    private let logger: Logger
    private let incoming: (String, FileDescriptor) -> Void
    private var acceptWatch: EventWatch?
    private var pending: [ObjectIdentifier: Pending] = [:]

    static let maximumPending = 4
    static let helloTimeout: Double = 5

    private final class Pending {
        let connection: FileDescriptor
        var line = MigrationLine(limit: 128)
        var watch: EventWatch?
        var timer: EventWatch?
        init(_ connection: FileDescriptor) { self.connection = connection }
    }

    /// `incoming(vmName, connection)`: a hello was read; the stream follows on the connection.
    init(endpoint: MigrationEndpoint, loop: EventLoop, logger: Logger, incoming: @escaping (String, FileDescriptor) -> Void) throws {
        listener = try endpoint.listen()
        self.loop = loop
        self.logger = logger
        self.incoming = incoming
        acceptWatch = try loop.watchReadable(listener.rawValue) { [weak self] in self?.acceptOne() }
    }

    private func acceptOne() {
        let raw = vmd_accept4(listener.rawValue, Int32(SOCK_CLOEXEC.rawValue))
        guard raw >= 0 else { return }
        let connection = FileDescriptor(adopting: raw)
        guard pending.count < Self.maximumPending else {
            logger.warning("migration: too many connections waiting for their hello; one refused")
            return
        }
        let entry = Pending(connection)
        let key = ObjectIdentifier(entry)
        pending[key] = entry
        entry.timer = try? loop.after(seconds: Self.helloTimeout) { [weak self] in
            self?.logger.warning("migration: a connection sent no hello within \(Int(Self.helloTimeout)) s")
            self?.drop(key)
        }
        entry.watch = try? loop.watchReadable(raw) { [weak self] in self?.readHello(key) }
        if entry.watch == nil { drop(key) }
    }

    private func readHello(_ key: ObjectIdentifier) {
        guard let entry = pending[key] else { return }
        let line: String
        switch entry.line.read(from: entry.connection) {
        case .waiting: return
        case .closed, .tooLong: return drop(key)
        case .line(let text): line = text
        }
        let connection = entry.connection
        drop(key, keeping: true)
        guard let name = MigrationEndpoint.vmName(inHello: line) else {
            logger.warning("migration: not a migration hello; connection closed")
            _ = try? connection.writeAll(Array("FAIL not a swift-vmd migration\n".utf8))
            return
        }
        incoming(name, connection)
    }

    private func drop(_ key: ObjectIdentifier, keeping: Bool = false) {
        guard let entry = pending.removeValue(forKey: key) else { return }
        entry.watch?.cancel()
        entry.timer?.cancel()
        if !keeping { entry.connection.close() }
    }
}

import Glibc
import Logging
import Configuration
import IPC
import LinuxSystem

/// vmd as a daemon (issue 5): the VMs of its configuration file and those
/// started with `vmctl start path.conf`, the control socket, one event loop.
final class Daemon {
    struct Options {
        var configPath: String
        var socketPath: String
        /// `-m`: where this vmd takes live migrations of the VMs its configuration defines.
        var migrationListen: MigrationEndpoint? = nil
    }

    /// A VM vmd knows about, running or not.
    final class Record {
        let id: Int
        var config: VMConfig
        var directory: String
        var owner: ResolvedOwner
        /// Defined in vmd's own configuration (kept after it stops), rather than started from a file.
        var fromGlobalConfig: Bool
        var instance: VMInstance?
        var lastOutcome: VMOutcome?
        /// For a VM started from a file: forgets it once it has been stopped a while.
        var expiry: EventWatch?

        init(id: Int, config: VMConfig, directory: String, owner: ResolvedOwner, fromGlobalConfig: Bool) {
            (self.id, self.config, self.directory, self.owner, self.fromGlobalConfig) = (id, config, directory, owner, fromGlobalConfig)
        }

        var isRunning: Bool { instance.map { $0.state != .stopped } ?? false }
    }

    let options: Options
    /// Where vmd looks without -f; its absence there is no error (a daemon with no predefined VMs).
    static let defaultConfigPath = "/etc/vmd.conf"
    private let loop: EventLoop
    private var logger = Logger(label: "vmd")
    private var server: ControlServer?
    private var migrationListener: MigrationListener?
    /// The metrics endpoint, while the configuration names one (`metrics listen on`).
    private var metricsServer: MetricsServer?
    private var records: [Record] = []
    private var nextID = 1
    private var watches: [EventWatch] = []
    private var shuttingDown = false
    /// systemd's NOTIFY_SOCKET, when vmd runs as vmd.service (Type=notify).
    private let systemd = SystemdNotifier.fromEnvironment()
    /// Where `local interface` /31s come from (the configuration's `local prefix`).
    private var localPrefix = IPv4Prefix.defaultLocal
    /// How long a stopped VM that was started from a file stays listed (with why it
    /// stopped) before vmd forgets it; a VM of vmd's own configuration stays for good.
    static let stoppedFileVMRetention: Double = 600

    init(options: Options) throws {
        self.options = options
        loop = try EventLoop()
    }

    func run() throws {
        let file = try loadGlobalConfig()
        localPrefix = file.localPrefix
        try define(file, directory: directory(of: options.configPath), fromGlobalConfig: true)
        var descriptors = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &descriptors)
        let limits = ControlLimits(descriptorLimit: Int(clamping: descriptors.rlim_cur))
        server = try ControlServer(path: options.socketPath, loop: loop, logger: logger, limits: limits) { [unowned self] request, peer, reply in
            self.handle(request, from: peer, reply: reply)
        }
        watches.append(try loop.onSignal(SIGCHLD) { [unowned self] in self.reapAll() })
        watches.append(try loop.onSignal(SIGHUP) { [unowned self] in
            do { try self.reload() } catch { self.logger.error("reload: \(error)") }
        })
        for signal in [SIGTERM, SIGINT] {
            watches.append(try loop.onSignal(signal) { [unowned self] in self.shutDown() })
        }
        watches.append(try loop.onSignal(SIGPIPE) {})
        logger.notice("listening on \(options.socketPath)")
        if let endpoint = options.migrationListen {
            migrationListener = try MigrationListener(endpoint: endpoint, loop: loop, logger: logger) { [unowned self] name, connection in
                self.receiveMigration(of: name, over: connection)
            }
            logger.notice("taking live migrations on \(endpoint)")
        }
        try serveMetrics(on: file.metricsAddress)
        for record in records where record.config.enabled {
            do { try start(record) } catch { logger.error("vm \(record.config.name): \(error)") }
        }
        // Ready: the control socket listens and the enabled VMs have been started (or logged why not).
        tellSystemd(["READY=1", "STATUS=\(statusLine())", "MAINPID=\(getpid())"])
        try loop.run()
        server = nil
        metricsServer?.close()
        logger.notice("exiting")
    }

    // MARK: Configuration

    private func loadGlobalConfig() throws -> ConfigFile {
        guard access(options.configPath, F_OK) == 0 || options.configPath != Daemon.defaultConfigPath else {
            return ConfigFile(vms: [])  // no /etc/vmd.conf: a daemon with no predefined VMs
        }
        return try ConfigParser.load(path: options.configPath)
    }

    /// Adds or updates the VMs of a file; running VMs keep running as they are.
    private func define(_ file: ConfigFile, directory: String, fromGlobalConfig: Bool) throws {
        for vm in file.vms {
            let owner = try ResolvedOwner.resolve(vm.owner, at: vm.location(of: "owner"))
            if let existing = records.first(where: { $0.config.name == vm.name }) {
                guard !existing.isRunning else { continue }
                existing.config = vm
                existing.directory = directory
                existing.owner = owner
                existing.fromGlobalConfig = fromGlobalConfig
            } else {
                records.append(Record(id: nextID, config: vm, directory: directory, owner: owner, fromGlobalConfig: fromGlobalConfig))
                nextID += 1
            }
        }
    }

    /// SIGHUP and `vmctl reload`: systemd hears RELOADING=1 before and READY=1 after, whether
    /// or not the file could be read.
    private func reload() throws {
        tellSystemd(["RELOADING=1", "MONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())"])
        defer { tellSystemd(["READY=1", "STATUS=\(statusLine())"]) }
        let file = try loadGlobalConfig()
        localPrefix = file.localPrefix
        try define(file, directory: directory(of: options.configPath), fromGlobalConfig: true)
        do { try serveMetrics(on: file.metricsAddress) } catch { logger.error("metrics: \(error)") }
        logger.notice("reloaded \(options.configPath)")
    }

    /// Listens for scrapes on `address` (nil: not at all); a reload that changes it moves the
    /// endpoint, one that keeps it keeps the listener and its connections.
    private func serveMetrics(on address: String?) throws {
        let endpoint = try address.map { try MigrationEndpoint($0) }
        guard endpoint != metricsServer?.endpoint else { return }
        metricsServer?.close()
        metricsServer = nil
        guard let endpoint else { return }
        metricsServer = try MetricsServer(endpoint: endpoint, loop: loop, logger: logger) { [unowned self] in
            MetricsExposition.render(self.records.map { MetricsExposition.VM(status: self.statusEntry($0), stats: $0.instance?.stats(id: $0.id)) })
        }
        logger.notice("serving metrics on \(endpoint)")
    }

    // MARK: Lifecycle

    private func start(_ record: Record, snapshot: FileDescriptor? = nil, lazy: Bool = false, incomingMigration: Bool = false) throws {
        guard !record.isRunning else { throw DaemonError.alreadyRunning(record.config.name) }
        var launcher = VMLauncher(config: record.config, configDirectory: record.directory, logger: logger)
        // Each VM's local interfaces get /31s of their own: four per VM id.
        launcher.localPrefix = localPrefix
        launcher.localInterfaceBase = (record.id - 1) * InterfaceConfig.maximumPerVM
        let instance = try VMInstance(id: record.id, launcher: launcher, loop: loop, logger: logger, snapshot: snapshot, lazy: lazy,
                                      incomingMigration: incomingMigration)
        record.instance = instance
        record.lastOutcome = nil
        record.expiry = nil
        instance.whenStopped { [unowned self, unowned record] outcome in
            record.lastOutcome = outcome
            self.logger.notice("vm \(record.config.name) stopped: \(outcome)")
            if !record.fromGlobalConfig {
                record.expiry = try? self.loop.after(seconds: Daemon.stoppedFileVMRetention) { [weak self, weak record] in
                    if let self, let record { self.forget(record) }
                }
            }
            if self.shuttingDown && !self.records.contains(where: \.isRunning) { self.loop.stop() }
        }
        instance.reap()  // a child may already have died
    }

    /// Drops a stopped VM that came from a file.
    private func forget(_ record: Record) {
        guard !record.isRunning, !record.fromGlobalConfig else { return }
        records.removeAll { $0 === record }
    }

    private func reapAll() {
        for record in records { record.instance?.reap() }
    }

    /// SIGTERM: stop every VM gracefully, then exit.
    private func shutDown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.notice("stopping all VMs")
        let running = records.filter(\.isRunning)
        tellSystemd(["STOPPING=1", "STATUS=stopping \(running.count) vm\(running.count == 1 ? "" : "s")"])
        if running.isEmpty { loop.stop() }
        running.forEach { $0.instance?.stop(force: false, gracePeriod: 10) }
    }

    private func tellSystemd(_ lines: [String]) {
        guard let systemd else { return }
        do { try systemd.notify(lines) } catch { logger.warning("sd_notify: \(error)") }
    }

    /// systemctl status's one line about vmd.
    private func statusLine() -> String {
        let running = records.filter(\.isRunning).count
        return "\(running) of \(records.count) vm\(records.count == 1 ? "" : "s") running"
    }

    // MARK: Requests

    enum DaemonError: Error, CustomStringConvertible {
        case noSuchVM(VMTarget)
        case alreadyRunning(String)
        case notRunning(String)
        case rootOnly(String)

        var description: String {
            switch self {
            case .noSuchVM(let target): "no vm \(target)"
            case .alreadyRunning(let name): "vm \(name) is already running"
            case .notRunning(let name): "vm \(name) is not running"
            case .rootOnly(let what): "permission denied: only root may \(what)"
            }
        }
    }

    private func record(_ target: VMTarget, for peer: PeerCredentials) throws -> Record {
        let found: Record? = switch target {
        case .id(let id): records.first { $0.id == id }
        case .name(let name): records.first { $0.config.name == name }
        }
        // A VM the peer may not use is answered as one that does not exist, so that nobody
        // learns the names and ids of other users' VMs (status does not list them either).
        guard let found, found.owner.permits(peer) else { throw DaemonError.noSuchVM(target) }
        return found
    }

    private func running(_ target: VMTarget, for peer: PeerCredentials) throws -> (Record, VMInstance) {
        let record = try record(target, for: peer)
        guard let instance = record.instance, record.isRunning else { throw DaemonError.notRunning(record.config.name) }
        return (record, instance)
    }

    private func handle(_ request: ControlRequest, from peer: PeerCredentials, reply: @escaping (ControlReply) -> Void) {
        do {
            switch request {
            case .startNamed(let name):
                let record = try record(.name(name), for: peer)
                try start(record)
                reply(.started(id: record.id, name: record.config.name))
            case .startConfig(let text, let path, let configDirectory):
                // A file can name any kernel or disk: only root may start one (vm.conf's owner covers the rest).
                guard peer.isRoot else { throw DaemonError.rootOnly("start a VM from a file") }
                let file = try ConfigParser.parse(text, file: path)
                guard let first = file.vms.first else { throw DaemonError.noSuchVM(.name(path)) }
                let known = Set(records.map { ObjectIdentifier($0) })
                var started: [Record] = []
                do {
                    try define(file, directory: configDirectory, fromGlobalConfig: false)
                    for vm in file.vms {
                        let record = try record(.name(vm.name), for: peer)
                        try start(record)
                        started.append(record)
                    }
                } catch {
                    // What this request defined and could not start is not kept: the error is the answer.
                    records.removeAll { !known.contains(ObjectIdentifier($0)) && !$0.isRunning }
                    throw error
                }
                let firstRecord = started.first { $0.config.name == first.name } ?? started[0]
                reply(.started(id: firstRecord.id, name: firstRecord.config.name))
            case .stop(let target, let force, let gracePeriod):
                let (record, instance) = try running(target, for: peer)
                instance.stop(force: force, reason: force ? .stoppedByRequest : nil, gracePeriod: VMInstance.gracePeriod(requested: gracePeriod))
                reply(.done("stopping vm \(record.config.name)"))
            case .stopAll(let force, let gracePeriod):
                let mine = records.filter { $0.isRunning && $0.owner.permits(peer) }
                mine.forEach {
                    $0.instance?.stop(force: force, reason: force ? .stoppedByRequest : nil, gracePeriod: VMInstance.gracePeriod(requested: gracePeriod))
                }
                reply(.done("stopping \(mine.count) vm\(mine.count == 1 ? "" : "s")"))
            case .wait(let target):
                let record = try record(target, for: peer)
                guard let instance = record.instance else { throw DaemonError.notRunning(record.config.name) }
                instance.whenStopped { outcome in reply(.done("vm \(record.config.name) stopped: \(outcome)")) }
            case .status(let target):
                let visible = try target.map { [try record($0, for: peer)] } ?? records.filter { $0.owner.permits(peer) }
                reply(.status(visible.map(statusEntry)))
            case .stats(let target):
                let (record, instance) = try running(target, for: peer)
                guard let stats = instance.stats(id: record.id) else { throw DaemonError.notRunning(record.config.name) }
                reply(.stats(stats))
            case .console(let target):
                let (record, instance) = try running(target, for: peer)
                guard let console = instance.console else { throw DaemonError.notRunning(record.config.name) }
                reply(.console(try console.duplicate(), name: record.config.name))
            case .pause(let target):
                let (record, instance) = try running(target, for: peer)
                instance.pause { state in
                    reply(state == .paused ? .done("vm \(record.config.name) paused") : .failed("vm \(record.config.name) is \(state.rawValue)"))
                }
            case .unpause(let target):
                let (record, instance) = try running(target, for: peer)
                instance.unpause { state in
                    reply(state == .running ? .done("vm \(record.config.name) unpaused") : .failed("vm \(record.config.name) is \(state.rawValue)"))
                }
            case .send(let target, let output):
                let (record, instance) = try running(target, for: peer)
                instance.send(to: output) { result in
                    switch result {
                    case .success(let sent): reply(.done("vm \(record.config.name) sent: \(sent.bytes) bytes"))
                    case .failure(let failure): reply(.failed("vm \(record.config.name) not sent: \(failure)"))
                    }
                }
            case .receive(let name, let input, let lazy):
                // The VM's own configuration says what it is (disks, NICs, owner); the snapshot only its state.
                let record = try record(.name(name), for: peer)
                try start(record, snapshot: input, lazy: lazy)
                record.instance?.whenRunning { failure in
                    if let failure {
                        reply(.failed("vm \(record.config.name) not received: \(failure)"))
                    } else {
                        reply(.started(id: record.id, name: record.config.name))
                    }
                }
            case .migrate(let target, let destination):
                // vmd connects where it is told, as root: only root may say where.
                guard peer.isRoot else { throw DaemonError.rootOnly("migrate a VM") }
                let (record, instance) = try running(target, for: peer)
                let endpoint = try MigrationEndpoint(destination)
                let connection = try endpoint.connect()
                try connection.writeAll(MigrationEndpoint.hello(vm: record.config.name))
                instance.migrate(over: connection, to: endpoint.description) { result in
                    switch result {
                    case .success(let sent):
                        let downtime = sent.downtimeMilliseconds.map { ", down for \(MillisecondsText.format($0, decimals: 1)) ms" } ?? ""
                        reply(.done("vm \(record.config.name) migrated to \(endpoint): \(sent.bytes) bytes\(downtime)"))
                    case .failure(let failure): reply(.failed("vm \(record.config.name) not migrated: \(failure)"))
                    }
                }
            case .log(let verbose):
                guard peer.isRoot else { throw DaemonError.rootOnly("change the log level") }
                let level: Logger.Level = verbose ? .debug : .info
                VmdLog.setLevel(level)
                records.forEach { $0.instance?.setLogLevel(level) }
                reply(.done("logging \(verbose ? "verbose" : "brief")"))
            case .reload:
                guard peer.isRoot else { throw DaemonError.rootOnly("reload the configuration") }
                try reload()
                reply(.done("reloaded \(options.configPath)"))
            }
        } catch {
            reply(.failed("\(error)"))
        }
    }

    /// A live migration from another vmd: only for a VM this vmd's own configuration defines
    /// and that is not running; the stream goes to its new vm process, which checks the shape
    /// first. The sender hears `OK` once the VM runs here, or `FAIL why`.
    private func receiveMigration(of name: String, over connection: FileDescriptor) {
        let answer = { (line: String) in
            _ = try? connection.writeAll(Array((line + "\n").utf8))
            connection.close()
        }
        guard let record = records.first(where: { $0.config.name == name && $0.fromGlobalConfig }) else {
            logger.warning("migration of \(name) refused: no such vm in \(options.configPath)")
            return answer("FAIL no vm \(name) in the receiver's configuration")
        }
        guard !record.isRunning else {
            logger.warning("migration of \(name) refused: it is running here")
            return answer("FAIL vm \(name) is running on the receiver")
        }
        logger.notice("receiving vm \(name) by live migration")
        do {
            try start(record, snapshot: try connection.duplicate(), incomingMigration: true)
        } catch {
            logger.error("migration of \(name): \(error)")
            return answer("FAIL \(error)")
        }
        record.instance?.whenRunning { [weak instance = record.instance] failure in
            if let failure { return answer("FAIL \(failure)") }
            _ = try? connection.writeAll(Array("OK\n".utf8))
            if let instance { instance.lockDisksOnceSenderStops(connection) } else { connection.close() }
        }
    }

    private func statusEntry(_ record: Record) -> VMStatusEntry {
        let state = record.instance.map { $0.state.rawValue } ?? "stopped"
        return VMStatusEntry(
            id: record.id, pid: record.isRunning ? record.instance?.vmPid ?? 0 : 0, vcpus: record.config.cpus,
            memoryBytes: record.config.memoryBytes, state: state, owner: record.owner.display, name: record.config.name,
            reason: record.isRunning ? "" : record.lastOutcome.map { "\($0)" } ?? (record.config.enabled || !record.fromGlobalConfig ? "" : "disabled"),
            restarts: record.instance?.restarts ?? 0,
            processes: record.isRunning ? record.instance?.processes ?? [] : [],
            disks: record.config.disks.map(\.path),
            interfaces: record.isRunning ? record.instance?.launched?.counters.interfaces.map(\.backing) ?? []
                : record.config.interfaces.map { $0.name ?? "" })
    }
}

import Glibc
import Logging
import Configuration
import IPC
import LinuxSystem

/// The processes of one VM, supervised from a vmd event loop (design §1): the
/// vm process's reports, the death of any child (which stops the others),
/// graceful and forced stops, pause and resume, and restarts: a guest that
/// resets (ACPI reset register, i8042 pulse, triple fault) gets new processes
/// and fresh RAM from the same configuration, as a PC reboots. Used by the
/// daemon for every VM and by `vmd boot` for its one.
final class VMInstance {
    enum State: String {
        case running, paused, stopping, stopped
    }

    let id: Int
    let config: VMConfig
    private(set) var state = State.running
    private(set) var launched: LaunchedVM?
    private let launcher: VMLauncher
    private let loop: EventLoop
    private let logger: Logger
    /// The guest's serial console, the same pty across restarts; dropped once stopped.
    private var terminal: PseudoTerminal?
    /// How often the guest rebooted into a new run, and when (for `RestartPolicy`).
    private(set) var restarts = 0
    private var restartPolicy = RestartPolicy()
    /// Whether a guest reset restarts the VM (`vmd boot --no-reboot` says no).
    var restartsOnReset = true
    private var watches: [EventWatch] = []
    private var forceTimer: EventWatch?
    /// When `forceTimer` fires (monotonic seconds): a later stop with a shorter grace period
    /// brings it forward, so that vmd's own shutdown is never held up by an owner's long one.
    private var forceDeadline: Double = .infinity
    /// Armed when a device exits cleanly before its vm process: see `reap`.
    private var exitTimer: EventWatch?
    /// What the vm process reported about the guest.
    private var reported: GuestEnd?
    /// Why vmd ended the VM itself, if it did.
    private var forced: VMOutcome?
    private(set) var outcome: VMOutcome?
    private var stopWaiters: [(VMOutcome) -> Void] = []
    private var pauseWaiters: [(State) -> Void] = []
    /// `vmctl receive` waits for the vm process to run (nil) or to fail (why).
    private var runWaiters: [(String?) -> Void] = []
    private var ranOnce = false
    /// `vmctl send` and `vmctl migrate`: answered once the VM has stopped, or with why not.
    private var saveWaiter: ((Result<SentVM, SaveFailure>) -> Void)?
    /// A lazy restore's RAM is still coming in (its pager has not said `loaded`). vm writes a
    /// snapshot or a migration's RAM from its memfds, where a page not in yet is a hole that
    /// would go out as zeros: a send or a migration waits in `afterRAMArrives` until then.
    private var ramArriving = false
    private var afterRAMArrives: [() -> Void] = []
    /// `vmctl migrate`: the connection to the receiving vmd, which confirms once its VM runs.
    private var outgoing: (connection: FileDescriptor, destination: String)?
    private var ackWatch: EventWatch?
    private var ackTimer: EventWatch?
    /// How long the sender waits for the receiver's confirmation once everything is sent.
    static let migrationAckTimeout: Double = 60

    struct SaveFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// A VM sent away: the bytes of its snapshot or migration stream, and for a migration how
    /// long the guest was down, from its pause to the receiver's word that it runs there.
    struct SentVM {
        let bytes: UInt64
        var downtimeMilliseconds: Double? = nil
    }

    /// Milliseconds from vm's pause to the receiver's confirmation; nil for a pause vm says
    /// came later (vm is the process a guest could take over: its word is not trusted).
    static func downtime(pausedAt: UInt64, confirmedAt: UInt64) -> Double? {
        pausedAt <= confirmedAt ? Double(confirmedAt - pausedAt) / 1e6 : nil
    }
    /// One per child, in `launched.children` order, with the watch on its log pipe.
    private var logRelays: [ChildLogRelay] = []
    private var logWatches: [EventWatch?] = []

    /// How long a graceful stop waits for the guest before forcing it.
    static let defaultGracePeriod: Double = 30

    /// The longest grace period a stop may ask for (`vmctl stop -t`).
    static let maximumGracePeriod: Double = 3600

    /// The grace period a stop request asked for, 0 meaning the default; at most an hour,
    /// whatever a client sends.
    static func gracePeriod(requested seconds: UInt32) -> Double {
        seconds == 0 ? defaultGracePeriod : min(Double(seconds), maximumGracePeriod)
    }

    /// With `snapshot`, the first run is restored from it (`vmctl receive`); restarts after a
    /// guest reset boot as usual.
    init(id: Int, launcher: VMLauncher, loop: EventLoop, logger: Logger, snapshot: FileDescriptor? = nil, lazy: Bool = false,
         incomingMigration: Bool = false) throws {
        self.id = id
        self.config = launcher.config
        self.launcher = launcher
        self.loop = loop
        var logger = logger
        logger[metadataKey: "vm"] = "\(launcher.config.name)"
        self.logger = logger
        let terminal = try PseudoTerminal()
        self.terminal = terminal
        try supervise(launcher.launch(console: terminal, snapshot: snapshot, lazy: lazy, incomingMigration: incomingMigration))
    }

    /// Watches a new set of processes: the vm's channel and every child's log pipe.
    private func supervise(_ launched: LaunchedVM) throws {
        self.launched = launched
        ramArriving = launched.pager != nil
        (reported, forced) = (nil, nil)
        exitTimer?.cancel()
        exitTimer = nil
        try? launched.vm.channel.socket.setNonBlocking(true)
        watches = [try loop.watchReadable(launched.vm.channel.socket.rawValue) { [weak self] in self?.readVMEvents() }]
        if let pager = launched.pager {
            try? pager.channel.socket.setNonBlocking(true)
            watches.append(try loop.watchReadable(pager.channel.socket.rawValue) { [weak self] in self?.readPagerEvents() })
        }
        logRelays = launched.children.map { _ in ChildLogRelay() }
        logWatches = try launched.children.enumerated().map { index, child in
            try loop.watchReadable(child.log.rawValue) { [weak self] in self?.relayLog(of: index) }
        }
    }

    /// Passes on what a child wrote to its log pipe, tagged with its VM and role. At
    /// most 1 MiB a call, so one chatty child cannot hold up the loop; the rest is
    /// read on the next round (the watch is level-triggered).
    private func relayLog(of index: Int) {
        guard let child = launched?.children[index], logWatches[index] != nil else { return }
        for _ in 0..<16 {
            let bytes: [UInt8]
            do {
                guard let read = try child.log.readAvailable(upTo: 65536) else { return }
                bytes = read
            } catch {
                bytes = []
                logger.error("\(child.logTag) log: \(error)")
            }
            let now = MonotonicClock.seconds()
            guard !bytes.isEmpty else {
                logRelays[index].finish(now: now).forEach { VmdLog.relay($0, tag: child.logTag) }
                logWatches[index]?.cancel()
                logWatches[index] = nil
                return
            }
            logRelays[index].feed(bytes, now: now).forEach { VmdLog.relay($0, tag: child.logTag) }
        }
    }

    /// Relays everything still in the children's log pipes (a child's last words
    /// come just before it exits).
    private func drainLogs() {
        for index in logWatches.indices { relayLog(of: index) }
    }

    /// Handles every message the vm process has sent so far. Called when its channel
    /// is readable and before judging a child's death: a guest that ended by itself
    /// reports so just before its processes exit, and that report decides the outcome.
    private func readVMEvents() {
        guard let vm = launched?.vm else { return }
        while true {
            let event: VMEvent
            do {
                guard let (bytes, descriptors) = try vm.channel.receiveRaw() else { return }
                event = try IPCFrame.decode(VMEvent.self, bytes: bytes, descriptors: descriptors)
            } catch IPCError.peerClosed {
                watches.first?.cancel()  // the vm process is exiting; SIGCHLD follows
                return
            } catch let error as SystemError where error.errno == ECONNRESET {
                watches.first?.cancel()  // killed with messages unread (a forced stop); SIGCHLD follows
                return
            } catch {
                logger.error("vm channel: \(error)")
                vm.process.kill()
                return
            }
            switch event {
            case .running:
                logger.info("running")
                ranOnce = true
                finishRunWaiters(nil)
            case .ended(let end):
                if reported == nil && forced == nil { reported = end }
            case .paused:
                state = .paused
                finishPauseWaiters()
            case .resumed:
                if state != .stopping { state = .running }  // a graceful stop resumes a paused guest first
                finishPauseWaiters()
            case .migrated(let bytes, let pausedAt) where outgoing != nil:
                logger.info("migration: \(bytes) bytes sent; waiting for the receiver")
                awaitMigrationAck(bytes: bytes, pausedAt: pausedAt)
            case .migrated:
                logger.error("vm reported a migration nobody asked for")
            case .saved(let bytes):
                // The snapshot is out: the VM ends here (OpenBSD's vmctl send does the same).
                let waiter = saveWaiter
                saveWaiter = nil
                logger.info("snapshot of \(bytes) bytes sent; stopping")
                stop(force: true, reason: .sent(bytes: bytes))
                whenStopped { _ in waiter?(.success(SentVM(bytes: bytes))) }
            case .deferredMemory(let uffd, let shape, let hostAddresses):
                // vm restored the state and registered RAM: the pager gets the faults and the file.
                guard let pager = launched?.pager, let snapshot = launched?.pagerSnapshot else {
                    logger.error("vm asked for a pager it was not given")
                    stop(force: true, reason: .guest(.failed("lazy restore without a pager")))
                    continue
                }
                do {
                    try pager.channel.send(PagerCommand.serve(uffd: uffd, snapshot: snapshot, shape: shape, hostAddresses: hostAddresses))
                } catch {
                    logger.error("pager: \(error)")
                    stop(force: true, reason: .guest(.failed("lazy restore: the pager went away")))
                }
                uffd.close()
                snapshot.close()
                launched?.pagerSnapshot = nil
            case .saveFailed(var reason):
                if let connection = outgoing?.connection {
                    // A receiver that refused said why before it closed (the send then failed with EPIPE).
                    var answer = MigrationLine(limit: 1024)
                    if case .line(let text) = answer.read(from: connection), text.hasPrefix("FAIL ") {
                        reason = "the receiver refused: \(text.dropFirst(5))"
                    }
                    connection.close()
                }
                logger.warning("\(outgoing == nil ? "snapshot" : "migration") failed: \(reason)")
                outgoing = nil
                let waiter = saveWaiter
                saveWaiter = nil
                waiter?(.failure(SaveFailure(description: reason)))
            }
        }
    }

    /// What the pager of a lazy restore reports: every page in (vm then starts its devices),
    /// or a snapshot that could not be served, which ends the VM.
    private func readPagerEvents() {
        guard let pager = launched?.pager else { return }
        while true {
            let event: PagerEvent
            do {
                guard let (bytes, descriptors) = try pager.channel.receiveRaw() else { return }
                event = try IPCFrame.decode(PagerEvent.self, bytes: bytes, descriptors: descriptors)
            } catch {
                watches.last?.cancel()  // the pager is exiting; SIGCHLD follows
                return
            }
            switch event {
            case .loaded(let pages, let faults, let milliseconds):
                logger.info("lazy restore: every page in after \(milliseconds) ms (\(pages) pages, \(faults) faults)")
                try? launched?.vm.channel.send(VMCommand.memoryLoaded)
                ramHasArrived()
            case .failed(let reason):
                logger.error("lazy restore failed: \(reason)")
                stop(force: true, reason: .guest(.failed("lazy restore: \(reason)")))
            }
        }
    }

    var vmPid: pid_t? { state == .stopped ? nil : launched?.vm.process.pid }
    /// Each live process's role and pid (vmctl status --json).
    var processes: [VMStatusEntry.Process] {
        guard state != .stopped, let launched else { return [] }
        return launched.children.filter { !$0.process.hasBeenReaped }.map { .init(role: $0.name, pid: $0.process.pid) }
    }

    /// The counters of the processes running now; nil once stopped.
    func stats(id: Int) -> VMStats? {
        guard state != .stopped, let launched else { return nil }
        return launched.counters.read(id: id, name: config.name)
    }
    var console: FileDescriptor? { state == .stopped ? nil : terminal?.controller }

    /// Reaps children that ended. The death of one stops the others; once all
    /// are gone the VM is stopped, its descriptors closed and waiters told.
    func reap() {
        guard let launched, state != .stopped else { return }
        readVMEvents()
        for child in launched.children where !child.process.hasBeenReaped {
            guard let termination = try? child.process.poll() else { continue }
            let isVM = child.process === launched.vm.process
            switch ChildExitVerdict.of(role: child.role, isVM: isVM, termination, vmReaped: launched.vm.process.hasBeenReaped) {
            case .awaitVM:
                killAllUnlessGone(within: Self.vmExitGrace)
                continue
            case .killTheRest(let reason):
                if let reason, reported == nil, forced == nil {
                    if let cgroup = launched.cgroup, let limit = cgroup.limits.memoryBytes, cgroup.outOfMemoryKills > 0 {
                        logger.error("\(child.role) process \(termination): the VM went over its memory limit")
                        forced = .memoryLimitExceeded(bytes: limit)
                    } else {
                        if !isVM { logger.error("\(child.role) process \(termination)") }
                        forced = reason
                    }
                }
            }
            killAll()  // any process gone takes the VM down
        }
        if launched.children.allSatisfy({ $0.process.hasBeenReaped }) { finish() }
    }

    /// Graceful: ask the guest, force after `gracePeriod`. Forced: kill now and
    /// record `reason` (unless the guest had already ended by itself).
    func stop(force: Bool, reason: VMOutcome? = nil, gracePeriod: Double = VMInstance.defaultGracePeriod) {
        guard let launched, state != .stopped else { return }
        if let reason, reported == nil, forced == nil { forced = reason }
        if force {
            try? launched.vm.channel.send(VMCommand.stop)
            killAll()
            return
        }
        if state == .paused { try? launched.vm.channel.send(VMCommand.resume) }
        state = .stopping
        try? launched.vm.channel.send(VMCommand.requestShutdown)
        let deadline = MonotonicClock.seconds() + gracePeriod
        guard deadline < forceDeadline else { return }
        forceTimer?.cancel()
        forceDeadline = deadline
        forceTimer = try? loop.after(seconds: gracePeriod) { [weak self] in
            guard let self, self.state != .stopped else { return }
            self.logger.warning("guest did not shut down within \(gracePeriod.formatted)s; forcing")
            self.stop(force: true, reason: .forcedAfterGracePeriod(seconds: gracePeriod))
        }
    }

    func whenStopped(_ handler: @escaping (VMOutcome) -> Void) {
        if let outcome, state == .stopped { handler(outcome) } else { stopWaiters.append(handler) }
    }

    /// Parks every vCPU; `done` runs once the vm process confirms.
    func pause(_ done: @escaping (State) -> Void) {
        guard let launched, state == .running else { return done(state) }
        pauseWaiters.append(done)
        try? launched.vm.channel.send(VMCommand.pause)
    }

    /// The processes of a VM that can be sent now (running or paused, no send under way), or why not.
    private func sendable() -> Result<LaunchedVM, SaveFailure> {
        guard let launched, state == .running || state == .paused else {
            return .failure(SaveFailure(description: "vm \(config.name) is \(state.rawValue)"))
        }
        guard saveWaiter == nil else { return .failure(SaveFailure(description: "vm \(config.name) is being sent already")) }
        return .success(launched)
    }

    /// Runs what waited for a lazy restore's RAM: once every page is in, or once the VM has
    /// stopped (each then answers why not).
    private func ramHasArrived() {
        ramArriving = false
        let waiting = afterRAMArrives
        afterRAMArrives = []
        waiting.forEach { $0() }
    }

    /// Whether `retry` must wait for a lazy restore's RAM (it is kept, and run once it is in).
    private func waitsForRAM(_ what: String, _ retry: @escaping () -> Void) -> Bool {
        guard ramArriving else { return false }
        logger.info("\(what) waits until the lazy restore's RAM is all in")
        afterRAMArrives.append(retry)
        return true
    }

    /// Writes the VM's snapshot to `output` and stops it (`vmctl send`).
    func send(to output: FileDescriptor, _ done: @escaping (Result<SentVM, SaveFailure>) -> Void) {
        let launched: LaunchedVM
        switch sendable() {
        case .success(let vm): launched = vm
        case .failure(let failure): return done(.failure(failure))
        }
        if waitsForRAM("the snapshot", { [weak self] in self?.send(to: output, done) }) { return }
        saveWaiter = done
        do {
            try launched.vm.channel.send(VMCommand.save(output, ram: launched.ramFiles))
        } catch {
            saveWaiter = nil
            done(.failure(SaveFailure(description: "\(error)")))
        }
    }

    /// Sends the running VM down `connection` to another vmd (`vmctl migrate`), which said
    /// hello already: pre-copy in vm, then the receiver's confirmation; the VM stops here only
    /// once the receiver's runs, and goes on here if anything fails.
    func migrate(over connection: FileDescriptor, to destination: String, _ done: @escaping (Result<SentVM, SaveFailure>) -> Void) {
        let launched: LaunchedVM
        switch sendable() {
        case .success(let vm): launched = vm
        case .failure(let failure): return done(.failure(failure))
        }
        if waitsForRAM("the migration", { [weak self] in self?.migrate(over: connection, to: destination, done) }) { return }
        do {
            try launched.vm.channel.send(VMCommand.migrate(connection.duplicate(), ram: launched.ramFiles))
        } catch {
            return done(.failure(SaveFailure(description: "\(error)")))
        }
        saveWaiter = done
        outgoing = (connection, destination)
    }

    /// Everything is sent and the VM paused (since `pausedAt`): the receiver says `OK` once its VM runs.
    private func awaitMigrationAck(bytes: UInt64, pausedAt: UInt64) {
        guard let (connection, destination) = outgoing else { return }
        var answer = MigrationLine(limit: 1024)
        let finish = { [weak self] (accepted: Bool, why: String) in
            guard let self else { return }
            self.ackWatch?.cancel()
            self.ackTimer?.cancel()
            (self.ackWatch, self.ackTimer) = (nil, nil)
            self.outgoing = nil
            if !accepted { connection.close() }
            let waiter = self.saveWaiter
            self.saveWaiter = nil
            if accepted {
                let downtime = VMInstance.downtime(pausedAt: pausedAt, confirmedAt: MonotonicClock.nanoseconds())
                let down = downtime.map { " (the guest was down for \(MillisecondsText.format($0, decimals: 1)) ms)" } ?? ""
                self.logger.info("migrated to \(destination)\(down); stopping")
                self.stop(force: true, reason: .migrated(to: destination))
                self.whenStopped { _ in
                    // Every process is gone, so are its disk locks: the receiver may take them now.
                    _ = try? connection.writeAll(Array("DONE\n".utf8))
                    connection.close()
                    waiter?(.success(SentVM(bytes: bytes, downtimeMilliseconds: downtime)))
                }
            } else {
                self.logger.warning("migration to \(destination) failed: \(why); the VM goes on here")
                if self.state == .paused || self.state == .running { try? self.launched?.vm.channel.send(VMCommand.resume) }
                waiter?(.failure(SaveFailure(description: "the receiver \(why)")))
            }
        }
        ackWatch = try? loop.watchReadable(connection.rawValue) {
            switch answer.read(from: connection) {
            case .waiting: return
            case .closed: finish(false, "closed the connection without confirming")
            case .tooLong: finish(false, "answered too much")
            case .line(let text): finish(text == "OK", text.hasPrefix("FAIL ") ? "refused: \(text.dropFirst(5))" : "answered \"\(text)\"")
            }
        }
        ackTimer = try? loop.after(seconds: Self.migrationAckTimeout) { finish(false, "did not confirm within \(Int(Self.migrationAckTimeout)) s") }
        if ackWatch == nil { finish(false, "cannot be watched") }
    }

    /// An incoming migration's VM runs here: the disks the sender held are locked once it says
    /// it has stopped (`DONE`, or the connection closing). A lock another process took
    /// meanwhile is reported; the VM goes on.
    func lockDisksOnceSenderStops(_ connection: FileDescriptor) {
        var watch: EventWatch?
        var done = MigrationLine(limit: 1024)
        watch = try? loop.watchReadable(connection.rawValue) { [weak self] in
            if done.read(from: connection) == .waiting { return }  // "DONE", or the connection's end, is the signal
            watch?.cancel()
            watch = nil
            connection.close()
            self?.lockDisks()
        }
        if watch == nil { connection.close(); lockDisks() }
    }

    private func lockDisks() {
        guard let disks = launched?.unlockedDisks, !disks.isEmpty else { return }
        for disk in disks {
            if flock(disk.fd.rawValue, (disk.exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
                logger.error("migration: disk \(disk.path) could not be locked (another process holds it): \(SystemError.last("flock"))")
            }
            do {
                try QemuImageLocks.take(disk.fd, writable: disk.exclusive)
            } catch {
                logger.error("migration: disk \(disk.path) is not locked for QEMU: \(error)")
            }
            disk.fd.close()
        }
        launched?.unlockedDisks = []
        logger.info("migration complete: disks locked")
    }

    /// `done(nil)` once the vm process runs the guest, `done(why)` if it ends before.
    func whenRunning(_ done: @escaping (String?) -> Void) {
        if ranOnce { return done(nil) }
        if let outcome, state == .stopped { return done("\(outcome)") }
        runWaiters.append(done)
    }

    private func finishRunWaiters(_ failure: String?) {
        let waiters = runWaiters
        runWaiters = []
        waiters.forEach { $0(failure) }
    }

    func unpause(_ done: @escaping (State) -> Void) {
        guard let launched, state == .paused else { return done(state) }
        pauseWaiters.append(done)
        try? launched.vm.channel.send(VMCommand.resume)
    }

    func setLogLevel(_ level: Logger.Level) {
        guard let launched, state != .stopped else { return }
        try? launched.vm.channel.send(VMCommand.setLogLevel(level.rawValue))
        for device in launched.devices { try? device.channel.send(DeviceSetupCommand.setLogLevel(level.rawValue)) }
    }

    private func finishPauseWaiters() {
        let waiters = pauseWaiters
        pauseWaiters = []
        waiters.forEach { $0(state) }
    }

    private func killAll() {
        launched?.children.forEach { $0.process.kill() }
    }

    /// How long a vm process whose devices have left may take to report and exit.
    static let vmExitGrace: Double = 2

    private func killAllUnlessGone(within seconds: Double) {
        guard exitTimer == nil else { return }
        exitTimer = try? loop.after(seconds: seconds) { [weak self] in
            guard let self, self.state != .stopped else { return }
            self.logger.warning("vm process still there \(seconds.formatted)s after its devices left; killing it")
            self.killAll()
        }
    }

    private func finish() {
        drainLogs()
        logWatches.forEach { $0?.cancel() }
        logWatches = logWatches.map { _ in nil }
        watches.forEach { $0.cancel() }
        watches = []
        launched?.cgroup?.remove()  // every process is reaped
        var outcome = reported.map { VMOutcome.guest($0) } ?? forced ?? .vmProcessDied(.exited(-1))
        if let end = reported, forced == nil, end.isReboot, restartsOnReset, state == .running {
            let now = MonotonicClock.seconds()
            if restartPolicy.allowsRestart(at: now) {
                if restart(after: end) { return }
                outcome = .restartFailed(end)
            } else {
                outcome = .restartLimit(end, restarts: RestartPolicy.limit, seconds: RestartPolicy.window)
            }
        }
        self.outcome = outcome
        state = .stopped
        forceTimer?.cancel()
        forceTimer = nil
        forceDeadline = .infinity
        exitTimer?.cancel()
        exitTimer = nil
        logger.info("stopped: \(outcome)")
        // Drop every descriptor of the VM (console pty, channels) now, not when the record goes.
        launched = nil
        terminal = nil
        finishPauseWaiters()
        finishRunWaiters("\(outcome)")
        if let waiter = saveWaiter {
            saveWaiter = nil
            waiter(.failure(SaveFailure(description: "vm \(config.name) stopped: \(outcome)")))
        }
        ramHasArrived()  // a send or migration still waiting for it now finds the VM stopped
        let waiters = stopWaiters
        stopWaiters = []
        waiters.forEach { $0(outcome) }
    }

    /// New processes and fresh RAM from the same configuration, on the same console.
    /// False (and logged) when they cannot be started.
    private func restart(after end: GuestEnd) -> Bool {
        guard let terminal else { return false }
        launched = nil  // the old processes are all reaped; close their descriptors first
        do {
            try supervise(launcher.launch(console: terminal))
        } catch {
            logger.error("guest \(end); restart failed: \(error)")
            return false
        }
        restarts += 1
        restartPolicy.record(at: MonotonicClock.seconds())
        logger.notice("guest \(end); restarted (restart \(restarts))")
        return true
    }

    deinit {
        killAll()
        launched?.children.forEach { if !$0.process.hasBeenReaped { _ = try? $0.process.waitForExit() } }
    }
}

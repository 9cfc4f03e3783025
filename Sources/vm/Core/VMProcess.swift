import Glibc
import Logging
import GuestRAM
import IPC
import LinuxSystem

/// The vm process (design §1): receives its slots and descriptors from vmd,
/// builds the VM, runs it, and reports how it ended. Started by vmd only.
struct VMProcess {
    let channel: Channel
    var logger = Logger(label: "vm")

    struct Setup {
        var memory: GuestMemory
        var request: BootRequest
        /// The KVM VM with RAM registered, made before the rest of the setup arrived.
        var kvm: PreparedKVM
        var kernel: FileDescriptor
        var initrd: FileDescriptor?
        var console: FileDescriptor
        var devices: [(VirtioAttachment, DeviceWiring)]
        /// `vmctl receive`: the snapshot the VM is restored from instead of booted.
        var snapshot: FileDescriptor?
        /// Where the vCPUs count their exits (vmctl stats).
        var counters: CounterPage?
    }

    /// Receives the SHAREMEM handoff and /dev/kvm, makes the KVM VM with its RAM (inside
    /// the sandbox's namespaces), then receives any devices and the boot request.
    func receiveSetup(sandbox: SandboxProfile) throws -> Setup {
        guard case .shareMemory(let slots, let memfds) = try channel.receive(VMCommand.self) else {
            throw IPCError.malformed("expected shareMemory first")
        }
        let memory = try GuestMemory.mapShared(slots: slots, memfds: memfds)
        guard case .kvm(let kvmDevice) = try channel.receive(VMCommand.self) else {
            throw IPCError.malformed("expected kvm after shareMemory")
        }
        // Namespaces and the empty root now, while this process has one thread: building
        // the VM starts others, and unshare(CLONE_NEWNS) refuses a process with threads.
        try Sandbox.isolate(sandbox)
        let kvm = try PreparedKVM(kvmDevice: kvmDevice, memory: memory)
        var devices: [(VirtioAttachment, DeviceWiring)] = []
        var counters: CounterPage?
        while true {
            switch try channel.receive(VMCommand.self) {
            case .attachDevice(let attachment, let wiring):
                devices.append((attachment, wiring))
            case .counters(let page):
                counters = try CounterPage.adopt(page)
                page.close()
            case .boot(let request, let kernel, let initrd, let console, let snapshot):
                return Setup(memory: memory, request: request, kvm: kvm, kernel: kernel, initrd: initrd, console: console,
                             devices: devices, snapshot: snapshot, counters: counters)
            default:
                throw IPCError.malformed("expected attachDevice or boot")
            }
        }
    }

    func run() throws -> GuestEnd {
        let sandbox = SandboxProfile.vm
        let setup = try receiveSetup(sandbox: sandbox)
        let console = setup.console
        // A lazy restore: guest RAM faults go to a userfaultfd from the start (before anything
        // could touch RAM), which the pager serves once vmd has handed it over.
        let deferredMemory = try setup.snapshot != nil && setup.request.lazyRestore ? Self.registerFaults(setup.memory) : nil
        var logger = self.logger
        logger[metadataKey: "vm"] = "\(setup.request.name)"
        let machine = try VirtualMachine(request: setup.request, memory: setup.memory, prepared: setup.kvm,
                                         kernel: setup.kernel, initrd: setup.initrd, console: console, devices: setup.devices,
                                         restoring: setup.snapshot != nil, counters: setup.counters, logger: logger)
        setup.kernel.close()
        setup.initrd?.close()  // loaded; the vm process keeps no boot files open
        let loop = try EventLoop()
        try? console.setNonBlocking(true)
        ProcessRole.current = "vm"
        try Sandbox.enter(sandbox, logger: logger)
        var waitingDevices: [VirtualMachine.PendingDevice] = []
        var pagesIn = false
        if let snapshot = setup.snapshot {
            // Sandboxed already: the snapshot is a file from a user, read as hostile.
            let started = MonotonicClock.seconds()
            defer { snapshot.close() }
            try? snapshot.setNonBlocking(false)
            do {
                waitingDevices = try machine.restore(from: snapshot, lazy: deferredMemory != nil,
                                                     migration: setup.request.incomingMigration) {
                    guard let deferredMemory else { return }
                    var shape = WireWriter()
                    machine.snapshotShape.encode(into: &shape)
                    try channel.send(VMEvent.deferredMemory(uffd: deferredMemory.fd, shape: shape.bytes,
                                                            hostAddresses: setup.memory.kvmUserspaceAddresses.map(\.userspaceAddress)))
                }
            } catch {
                throw VMSetupError.restore("\(error)")
            }
            logger.info("restored from the snapshot in \(Self.milliseconds(since: started)) ms\(deferredMemory != nil ? ", RAM paged in as touched" : "")")
        }
        try channel.send(VMEvent.running)
        try machine.start()

        var outcome: GuestEnd?
        let ended = try loop.watchReadable(machine.endedEvent.rawValue) {
            _ = machine.endedEvent.drainEvent()
            outcome = machine.stop(reason: .stopped)
            loop.stop()
        }
        let commands = try loop.watchReadable(channel.socket.rawValue) {
            do {
                switch try channel.receive(VMCommand.self) {
                case .stop:
                    outcome = machine.stop(reason: .stopped)
                    loop.stop()
                case .requestShutdown:
                    machine.requestShutdown()
                case .pause:
                    let unconfirmed = machine.pause()
                    if !unconfirmed.isEmpty { logger.warning("pause: \(unconfirmed.joined(separator: ", ")) did not confirm") }
                    logger.debug("all vCPUs parked, devices quiesced, timers frozen")
                    try channel.send(VMEvent.paused)
                case .resume:
                    machine.resume()
                    try channel.send(VMEvent.resumed)
                case .save(let fd, let ram) where deferredMemory != nil && !pagesIn,
                     .migrate(let fd, let ram) where deferredMemory != nil && !pagesIn:
                    // vmd waits for the pager's word first; this is the second line. RAM goes out
                    // from the memfds, where a page the pager has not copied yet reads as zeros.
                    fd.close()
                    ram.forEach { $0.close() }
                    try channel.send(VMEvent.saveFailed("its RAM is still coming in from the snapshot (lazy restore)"))
                case .save(let fd, let ram):
                    try channel.send(save(machine, to: fd, ramFiles: ram))
                case .migrate(let fd, let ram):
                    let answer = migrate(machine, to: fd, ramFiles: ram)
                    try channel.send(answer)
                    // Paused, it ends once the receiver confirms. After the answer: the
                    // downtime vmd reports runs until it reads that confirmation.
                    if case .migrated = answer { machine.prepareToEnd() }
                case .memoryLoaded:
                    guard let deferredMemory, !pagesIn else { break }
                    pagesIn = true
                    for (slot, address) in setup.memory.kvmUserspaceAddresses {
                        try deferredMemory.unregister(address: address, length: slot.size)
                    }
                    deferredMemory.fd.close()
                    let devices = waitingDevices
                    waitingDevices = []
                    do {
                        try devices.forEach { try $0.activate() }
                    } catch {
                        logger.error("restored device: \(error)")
                        outcome = machine.stop(reason: .failed("restore: \(error)"))
                        loop.stop()
                    }
                    logger.info("RAM is in; \(devices.count) devices activated")
                case .setLogLevel(let name):
                    if let level = Logger.Level(rawValue: name) { VmdLog.setLevel(level) }
                    logger.debug("log level now \(name)")
                case .shareMemory, .kvm, .boot, .attachDevice, .counters:
                    logger.error("ignoring a setup message after boot")
                }
            } catch {
                // vmd went away or sent garbage: nobody supervises this VM any more.
                logger.error("control channel: \(error); stopping")
                outcome = machine.stop(reason: .stopped)
                loop.stop()
            }
        }
        let consoleInput = try loop.watchReadable(console.rawValue) {
            if let bytes = try? console.read(upTo: 256), !bytes.isEmpty { machine.receiveConsoleInput(bytes) }
        }
        let deviceEvents = try machine.virtioDevices.map { device in
            try loop.watchReadable(device.events.socket.rawValue) {
                switch Result(catching: { try device.events.receive(DeviceEvent.self) }) {
                case .success(.needsReset(let reason)):
                    logger.warning("\(device.transport.name): device needs reset: \(reason)")
                    device.transport.markNeedsReset()
                case .success(.configChanged):
                    device.transport.configChanged()
                case .failure(let error):
                    // A device process that dies takes the VM down (design §1); vmd reports which.
                    logger.error("\(device.transport.name): device channel: \(error)")
                    outcome = machine.stop(reason: .failed("device \(device.transport.name) went away"))
                    loop.stop()
                }
            }
        }
        try loop.run()
        withExtendedLifetime((ended, commands, consoleInput, deviceEvents)) {}
        return outcome ?? machine.stop(reason: .stopped)
    }

    /// Milliseconds since `start`, to a hundredth.
    static func milliseconds(since start: Double) -> String {
        MillisecondsText.format((MonotonicClock.seconds() - start) * 1000, decimals: 2)
    }

    /// `vmctl migrate`: pre-copy down `fd`; the guest is paused at the end, or runs on after a failure.
    private func migrate(_ machine: VirtualMachine, to fd: FileDescriptor, ramFiles: [FileDescriptor]) -> VMEvent {
        defer { fd.close(); ramFiles.forEach { $0.close() } }
        try? fd.setNonBlocking(false)
        let started = MonotonicClock.seconds()
        do {
            let report = try machine.migrate(to: fd, ramFiles: ramFiles)
            logger.info("migrated: \(report.bytes) bytes, \(report.pages) pages in \(report.rounds) rounds in \(Self.milliseconds(since: started)) ms; \(report.finalPages) pages sent paused, paused for \(Self.milliseconds(since: Double(report.pausedAt) / 1e9)) ms so far")
            return .migrated(bytes: report.bytes, pausedAt: report.pausedAt)
        } catch {
            logger.error("migration failed: \(error)")
            return .saveFailed("\(error)")
        }
    }

    /// A userfaultfd with every RAM slot of this process registered (missing pages).
    private static func registerFaults(_ memory: GuestMemory) throws -> UserFaultFD {
        let uffd = try UserFaultFD.create()
        for (slot, address) in memory.kvmUserspaceAddresses { try uffd.register(address: address, length: slot.size) }
        return uffd
    }

    /// `vmctl send`: pauses the guest if it runs, writes the snapshot, and answers. On a
    /// failure a guest this paused runs on; on success it stays paused until vmd stops it.
    private func save(_ machine: VirtualMachine, to fd: FileDescriptor, ramFiles: [FileDescriptor]) -> VMEvent {
        defer { fd.close(); ramFiles.forEach { $0.close() } }
        let wasPaused = machine.isPaused
        if !wasPaused {
            do { try machine.pauseQuiesced() } catch { return .saveFailed("\(error)") }
        }
        try? fd.setNonBlocking(false)
        let started = MonotonicClock.seconds()
        do {
            let bytes = try machine.writeSnapshot(to: fd, ramFiles: ramFiles)
            logger.info("snapshot written: \(bytes) bytes in \(Self.milliseconds(since: started)) ms")
            machine.prepareToEnd()  // vmd stops the VM once it has the answer
            return .saved(bytes: bytes)
        } catch {
            if !wasPaused { machine.resume() }
            logger.error("snapshot not written: \(error)")
            return .saveFailed("\(error)")
        }
    }
}

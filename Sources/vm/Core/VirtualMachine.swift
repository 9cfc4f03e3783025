import CKVM
import Glibc
import Logging
import GuestRAM
import IPC
import LinuxSystem
import MemorySlots
import Snapshot
import Synchronization

/// One running VM inside the vm process: KVM objects, platform devices, vCPU threads.
final class VirtualMachine {
    let request: BootRequest
    let memory: GuestMemory
    let kvm: KVMVirtualMachine
    let serial: Serial16550
    let cmos: CMOS
    let i8042 = I8042()
    let vcpuThreads: [VcpuThread]
    private let poller: MaskedInterruptPoller
    /// GSI routes: held until `start` (or a restore's devices) install them all at once.
    let router: InterruptRouter
    private let gate = PauseGate()
    /// The PIT and KVM clock as they were at pause; set while paused.
    private(set) var pausedTimers: KVMVirtualMachine.TimerState?
    /// Whether `pause()` stopped the guest and `resume()` has not let it go on.
    private(set) var isPaused = false
    /// `prepareToEnd` turned the PIT's tick reinjection off; `resume` turns it back on.
    private var pitReinjectionOff = false
    /// Each vCPU's LAPIC timer count when `pause()` parked it (nil where it could not be
    /// read), so that a snapshot keeps a timer expiry that falls in the pause.
    private(set) var timerCountsAtPark: [UInt32?] = []
    let control = VMMControlPort()
    /// What of a vCPU's state this host's KVM can save (asked before the sandbox).
    let vcpuStateSupport: VcpuStateSupport
    /// A live migration's log of written pages (its shared bitmap is made before the sandbox).
    let dirtyPages: DirtyPageTracker
    /// The BIOS's read-only copy at the top of 4 GiB, when booting through firmware.
    private let firmwareROM: GuestMemory?
    /// The virtio devices served by other processes, with their event channels.
    let virtioDevices: [(transport: VirtioPCITransport, events: Channel)]

    /// Where the vm places BARs before the guest moves them: the bottom of the MMIO hole.
    static let barWindowBase: UInt64 = GuestPhysicalLayout.mmioHoleStart.value
    static let barSpacing: UInt64 = 0x10_0000
    private let logger: Logger

    /// The first way the guest ended; later reports (other vCPUs stopping) are ignored.
    private let end = GuestEndLatch()
    /// Signalled when `end` is set, so the main loop wakes up.
    let endedEvent: FileDescriptor

    /// `restoring`: the VM's state comes from a snapshot (`restore(from:)`) before `start()`,
    /// so no kernel is loaded and no vCPU set up for boot.
    init(request: BootRequest, memory: GuestMemory, prepared: PreparedKVM,
         kernel: FileDescriptor, initrd: FileDescriptor?, console: FileDescriptor, devices: [(VirtioAttachment, DeviceWiring)],
         restoring: Bool = false, counters: CounterPage? = nil, logger: Logger) throws {
        self.request = request
        self.memory = memory
        self.logger = logger
        let system = prepared.system
        vcpuStateSupport = prepared.vcpuStateSupport
        dirtyPages = prepared.dirtyPages
        kvm = prepared.vm

        let kvmForIRQ = kvm
        serial = Serial16550(
            output: { bytes in try? console.writeAll(bytes) },
            interruptLine: { high in try? kvmForIRQ.setIRQLine(Serial16550.com1IRQ, high: high) })
        let ports = AddressBus(name: "port I/O")
        try ports.register(serial, base: Serial16550.com1Port, size: Serial16550.size)
        try ports.register(DebugExitPort(), base: DebugExitPort.port, size: DebugExitPort.size)
        let ramBelow4G = memory.slots.filter { $0.guestBase.value < 1 << 32 }.reduce(0) { $0 + $1.size }
        let ramAbove4G = memory.slots.filter { $0.guestBase.value >= 1 << 32 }.reduce(0) { $0 + $1.size }
        cmos = CMOS(ramBelow4G: ramBelow4G, ramAbove4G: ramAbove4G, processorCount: request.vcpus)
        try ports.register(cmos, base: CMOS.port, size: CMOS.size)
        try ports.register(i8042, base: I8042.port, size: I8042.size)
        try ports.register(control, base: VMMControlPort.port, size: VMMControlPort.size)
        try ports.register(ACPIPowerPorts(), base: ACPIPowerPorts.port, size: ACPIPowerPorts.size)
        let mmio = AddressBus(name: "MMIO")
        let buses = Buses(ports: ports, mmio: mmio)
        let pci = PCIBus()
        _ = pci.attach(PCIHostBridge())
        try ports.register(pci, base: PCIBus.port, size: PCIBus.size)
        let router = InterruptRouter(vm: kvm.fd)  // installed at `start`, or by a restore before its devices run
        self.router = router
        poller = try MaskedInterruptPoller()
        let platform = KVMTransportPlatform(router: router, poller: poller, mmio: mmio)
        var virtioDevices: [(transport: VirtioPCITransport, events: Channel)] = []
        for (attachment, wiring) in devices {
            let client = try DeviceClient(socket: wiring.transport)
            guard case .description(let description) = try client.request(.describe),
                  attachment.shape.matches(description), Int(attachment.shape.queueCount) == wiring.kicks.count else {
                throw VMSetupError.unsupported("device \(attachment.name) described itself inconsistently")
            }
            let slot = virtioDevices.count + 1
            let transport = VirtioPCITransport(
                name: attachment.name, description: description, client: client, wiring: wiring, platform: platform,
                initialBAR: VirtualMachine.barWindowBase + UInt64(slot) * VirtualMachine.barSpacing,
                logger: logger)
            guard pci.attach(transport) != nil else { throw VMSetupError.unsupported("no free PCI slot for \(attachment.name)") }
            virtioDevices.append((transport, Channel(socket: wiring.events)))
            logger.info("\(attachment.name): \(description.type) with \(description.queueCount) queues, features 0x\(String(description.features, radix: 16))")
        }
        self.virtioDevices = virtioDevices

        // Read only where it is used: a restore's kernel is already in the snapshot's RAM, and
        // reading it cost a Linux restore one page fault per 4 KiB of bzImage.
        let readImage = { try kernel.pread(count: Int(try kernel.fileSize()), offset: 0) }
        let entry: BootEntry?
        if request.firmware {
            // Restoring, nothing is written to RAM here: a lazy restore's RAM faults wait for its pager.
            firmwareROM = try FirmwareBoot.install(try readImage(), memory: memory, kvm: kvm, ports: ports, vcpus: request.vcpus,
                                                   restoring: restoring, logger: logger)
            entry = nil
        } else if restoring {
            entry = nil
            firmwareROM = nil
        } else {
            let image = try readImage()
            let initrdBytes = try initrd.map { try $0.pread(count: Int(try $0.fileSize()), offset: 0) }
            let loaded = try KernelLoader.load(image: image, commandLine: request.cmdline, initrd: initrdBytes,
                                               vcpuCount: request.vcpus, into: memory)
            entry = loaded
            firmwareROM = nil
            logger.info("loaded \(image.count) bytes, entry \(loaded)")
        }

        let supported = try system.supportedCPUID()
        // KVM leaves the TSC-deadline timer out of its supported table; it is there when
        // the capability is and the LAPIC is in the kernel (it always is here).
        let tscDeadline = (try? system.checkExtension(Int32(KVM_CAP_TSC_DEADLINE_TIMER))) ?? 0 > 0
        let endedEvent = try FileDescriptor.eventFD()
        self.endedEvent = endedEvent
        let guestLog = UnassignedAccessLog(logger: logger)
        var threads: [VcpuThread] = []
        let latch = end
        for index in 0..<request.vcpus {
            let vcpu = try kvm.createVcpu(index: index)
            try vcpu.setCPUID(GuestCPUID.entries(supported: supported, vcpuIndex: index, vcpuCount: request.vcpus,
                                                 tscDeadline: tscDeadline))
            if index == 0, let entry { try BootCPU.configure(vcpu, for: entry) }
            threads.append(VcpuThread(vcpu: vcpu, buses: buses, log: guestLog, gate: gate, counters: counters) { [endedEvent] guestEnd in
                if latch.record(guestEnd) { try? endedEvent.signalEvent() }
            })
        }
        vcpuThreads = threads
    }

    func start() throws {
        try router.release()
        VcpuThread.installKickHandler()
        try poller.start()
        for thread in vcpuThreads { try thread.start() }
    }

    /// Console input for the guest.
    func receiveConsoleInput(_ bytes: [UInt8]) {
        serial.receive(bytes)
    }

    /// How the guest ended, once it has.
    var guestEnd: GuestEnd? { end.value }

    /// Asks the guest to shut down: the guest kit polls the VMM control port, an ACPI
    /// guest gets a power-button press (an edge on the Generic Event Device's GSI).
    func requestShutdown() {
        control.requestShutdown()
        do {
            try kvm.setIRQLine(ACPITables.powerButtonGSI, high: true)
            try kvm.setIRQLine(ACPITables.powerButtonGSI, high: false)
        } catch {
            logger.warning("power button: \(error)")
        }
    }

    /// Stops the guest until `resume()`: every vCPU parked, then each device process
    /// quiesced (it takes no new request, its in-flight ones are done: its loop serves one
    /// event at a time), then the platform timers frozen. Returns the devices that did
    /// not confirm within their reply timeout (they are stuck or gone).
    func pause() -> [String] {
        gate.pause(threads: vcpuThreads.count) { vcpuThreads.forEach { $0.kick() } }
        isPaused = true
        // Before the devices quiesce: their last interrupts reach the LAPIC's IRR while they
        // do, and the capture sees those, but a timer expiring meanwhile it would not.
        timerCountsAtPark = vcpuThreads.map { try? $0.vcpu.lapicTimerCount() }
        let unconfirmed = virtioDevices.filter { !$0.transport.setQuiesced(true) }.map(\.transport.name)
        do {
            pausedTimers = try kvm.timerState()
        } catch {
            logger.warning("pause: platform timers not saved: \(error)")
        }
        return unconfirmed
    }

    /// A paused VM whose end is near (its snapshot written, its state migrated): drops the
    /// PIT's tick reinjection while the VM is settled, so that its teardown after vmd's
    /// SIGKILL does not wait out an SRCU grace period (`setPITReinjection`). The guest loses
    /// nothing if it runs on after all: `resume` turns it back on before it sets the PIT,
    /// which drops the ticks counted while paused in any case.
    func prepareToEnd() {
        guard isPaused, !pitReinjectionOff else { return }
        do {
            try kvm.setPITReinjection(false)
            pitReinjectionOff = true
        } catch {
            logger.debug("PIT reinjection left on: \(error)")
        }
    }

    /// The reverse of `pause()`: timers, devices, then the vCPUs.
    func resume() {
        if pitReinjectionOff {
            do { try kvm.setPITReinjection(true) } catch { logger.warning("resume: PIT reinjection not turned back on: \(error)") }
            pitReinjectionOff = false
        }
        if let timers = pausedTimers {
            do { try kvm.restore(timers) } catch { logger.warning("resume: platform timers not restored: \(error)") }
            pausedTimers = nil
        }
        for device in virtioDevices where !device.transport.setQuiesced(false) {
            logger.warning("resume: \(device.transport.name) did not confirm")
        }
        isPaused = false
        timerCountsAtPark = []
        gate.resume()
    }

    /// Stops every vCPU and waits for its thread; records `reason` if nothing ended the guest before.
    func stop(reason: GuestEnd) -> GuestEnd {
        end.record(reason)
        vcpuThreads.forEach { $0.requestStop() }
        gate.release()
        vcpuThreads.forEach { $0.join() }
        return guestEnd ?? reason
    }
}

/// Keeps the first `GuestEnd` reported by any thread.
final class GuestEndLatch: Sendable {
    private let slot = Mutex<GuestEnd?>(nil)

    /// Records `end` unless one was recorded before; true if this was the first.
    @discardableResult
    func record(_ end: GuestEnd) -> Bool {
        slot.withLock { value in
            guard value == nil else { return false }
            value = end
            return true
        }
    }

    var value: GuestEnd? { slot.withLock { $0 } }
}

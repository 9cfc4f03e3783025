import Logging
import IPC
import LinuxSystem
import VirtioCore
import Synchronization

/// The modern virtio-pci transport (virtio 1.2 §4.1) in front of a device that
/// lives in another process. It answers configuration space and BAR accesses
/// on vCPU threads, forwards what only the device knows over the slow-path
/// channel, and wires the fast path into KVM: an ioeventfd per queue notify
/// address and an irqfd per queue bound to the GSI routed to the queue's
/// MSI-X vector (design §4).
final class VirtioPCITransport: PCIFunction, BusDevice, @unchecked Sendable {
    let name: String
    let description: DeviceDescription
    let client: TransportDevice
    private let kicks: [FileDescriptor]
    private let calls: [FileDescriptor]
    private let gsis: [UInt32]
    private let platform: TransportPlatform
    private let logger: Logger
    /// What the guest can make happen again and again (refused features, a device
    /// refusing its queues, a BAR where nothing fits) is logged at a limited rate.
    private let guestLog: RateLimitedLog
    let state: Mutex<TransportState>
    /// Interrupts KVM_SIGNAL_MSI failed to deliver: lost for the guest, so counted and reported.
    private let lostInterruptCount = Atomic<Int>(0)
    var lostInterrupts: Int { lostInterruptCount.load(ordering: .relaxed) }

    /// Asks the device process to stop taking requests (`quiesce`) or to go on (`resume`);
    /// true once it confirmed. Called with the vCPUs parked, so no transport exit races it.
    func setQuiesced(_ quiesced: Bool) -> Bool {
        (try? client.request(quiesced ? .quiesce : .resume)) == .done
    }

    init(name: String, description: DeviceDescription, client: TransportDevice, wiring: DeviceWiring,
         platform: TransportPlatform, initialBAR: UInt64, logger: Logger) {
        precondition(wiring.kicks.count == Int(description.queueCount), "one kick eventfd per queue")
        self.name = name
        self.description = description
        self.client = client
        self.kicks = wiring.kicks
        self.calls = wiring.calls
        self.platform = platform
        self.logger = logger
        guestLog = RateLimitedLog(logger: logger)
        gsis = (0..<Int(description.queueCount)).map { _ in platform.allocateGSI() }
        state = Mutex(TransportState(description: description, bar: initialBAR))
    }

    // MARK: PCI configuration space

    func configRead(offset: Int, size: Int) -> UInt32 {
        state.withLock { $0.space.read(offset: offset, size: size) }
    }

    func configWrite(offset: Int, data: [UInt8]) {
        state.withLock { state in
            let before = state.msixControl
            state.space.write(offset: offset, data: data)
            if state.msixControl != before { refreshAllInterrupts(&state) }
            updateBARMapping(&state)
        }
    }

    // MARK: BAR 0

    func read(offset: UInt64, into data: inout [UInt8]) {
        if offset >= VirtioPCILayout.deviceOffset && offset < VirtioPCILayout.deviceOffset + VirtioPCILayout.deviceLength {
            let reply = try? client.request(.readConfig(offset: UInt32(offset - VirtioPCILayout.deviceOffset), size: UInt32(data.count)))
            if case .config(let bytes) = reply, bytes.count == data.count { data = bytes } else { data = data.map { _ in 0xFF } }
            return
        }
        let value: UInt64 = state.withLock { state in readRegister(&state, offset: offset, size: data.count) }
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        let value = data.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        switch offset {
        case VirtioPCILayout.deviceOffset..<(VirtioPCILayout.deviceOffset + VirtioPCILayout.deviceLength):
            _ = try? client.request(.writeConfig(offset: UInt32(offset - VirtioPCILayout.deviceOffset), bytes: data))
        case VirtioPCILayout.notifyOffset..<(VirtioPCILayout.notifyOffset + VirtioPCILayout.notifyLength):
            // Normally KVM's ioeventfd takes these; this is the path before the BAR is mapped for it.
            let queue = Int((offset - VirtioPCILayout.notifyOffset) / UInt64(VirtioPCILayout.notifyMultiplier))
            if queue < kicks.count { try? kicks[queue].signalEvent() }
        case VirtioPCILayout.commonOffset..<(VirtioPCILayout.commonOffset + VirtioPCILayout.commonLength):
            writeCommon(offset: offset - VirtioPCILayout.commonOffset, size: data.count, value: value)
        case VirtioPCILayout.msixTableOffset..<VirtioPCILayout.msixPBAOffset:
            state.withLock { state in
                let entryIndex = Int((offset - VirtioPCILayout.msixTableOffset) / 16)
                guard entryIndex < state.msix.count, data.count == 4 || data.count == 8 else { return }
                state.msix.write(entry: entryIndex, field: Int(offset % 16), value: value, size: data.count)
                refreshAllInterrupts(&state)
            }
        default:
            break  // ISR and PBA are read-only
        }
        return .none
    }

    private func readRegister(_ state: inout TransportState, offset: UInt64, size: Int) -> UInt64 {
        switch offset {
        case VirtioPCILayout.commonOffset..<(VirtioPCILayout.commonOffset + VirtioPCILayout.commonLength):
            return state.readCommon(offset - VirtioPCILayout.commonOffset)
        case VirtioPCILayout.isrOffset..<(VirtioPCILayout.isrOffset + VirtioPCILayout.isrLength):
            defer { state.isr = 0 }  // reading ISR clears it (§4.1.4.5)
            return UInt64(state.isr)
        case VirtioPCILayout.msixTableOffset..<VirtioPCILayout.msixPBAOffset:
            let entryIndex = Int((offset - VirtioPCILayout.msixTableOffset) / 16)
            guard entryIndex < state.msix.count else { return 0 }
            return state.msix.read(entry: entryIndex, field: Int(offset % 16), size: size)
        case VirtioPCILayout.msixPBAOffset..<(VirtioPCILayout.msixPBAOffset + 0x1000):
            return state.msix.pendingBits(byteOffset: Int(offset - VirtioPCILayout.msixPBAOffset), size: size)
        default:
            return 0
        }
    }

    // MARK: Common configuration writes

    private func writeCommon(offset: UInt64, size: Int, value: UInt64) {
        typealias Common = VirtioPCILayout.Common
        var action: DeviceAction?
        state.withLock { state in
            let queue = Int(state.queueSelect)
            let queueExists = queue < state.queues.count
            let locked = state.status & VirtioStatus.driverOK != 0  // queue setup is frozen after DRIVER_OK
            switch offset {
            case Common.deviceFeatureSelect: state.deviceFeatureSelect = UInt32(truncatingIfNeeded: value)
            case Common.driverFeatureSelect: state.driverFeatureSelect = UInt32(truncatingIfNeeded: value)
            case Common.driverFeature:
                guard state.status & VirtioStatus.featuresOK == 0, state.driverFeatureSelect < 2 else { return }
                let shift = UInt64(state.driverFeatureSelect) * 32
                state.driverFeatures = (state.driverFeatures & ~(0xFFFF_FFFF << shift)) | ((value & 0xFFFF_FFFF) << shift)
            case Common.configMSIXVector:
                state.configVector = state.msix.validVector(UInt16(truncatingIfNeeded: value))
            case Common.deviceStatus:
                action = writeStatus(&state, UInt8(truncatingIfNeeded: value))
            case Common.queueSelect: state.queueSelect = UInt16(truncatingIfNeeded: value)
            case Common.queueSize where queueExists && !locked:
                state.queues[queue].size = UInt16(truncatingIfNeeded: value)
            case Common.queueMSIXVector where queueExists:
                state.queues[queue].vector = state.msix.validVector(UInt16(truncatingIfNeeded: value))
                refreshInterrupt(&state, queue: queue)
            case Common.queueEnable where queueExists && !locked:
                if value & 1 == 1 { state.queues[queue].enabled = true }
            case Common.queueDescriptorLow where queueExists && !locked:
                state.queues[queue].descriptorTable.setHalf(0, value, size: size)
            case Common.queueDescriptorHigh where queueExists && !locked:
                state.queues[queue].descriptorTable.setHalf(1, value, size: size)
            case Common.queueDriverLow where queueExists && !locked:
                state.queues[queue].availableRing.setHalf(0, value, size: size)
            case Common.queueDriverHigh where queueExists && !locked:
                state.queues[queue].availableRing.setHalf(1, value, size: size)
            case Common.queueDeviceLow where queueExists && !locked:
                state.queues[queue].usedRing.setHalf(0, value, size: size)
            case Common.queueDeviceHigh where queueExists && !locked:
                state.queues[queue].usedRing.setHalf(1, value, size: size)
            default:
                break  // read-only fields, unknown offsets, queues that do not exist
            }
        }
        if let action { perform(action) }
    }

    private enum DeviceAction {
        case reset
        case activate(features: UInt64, queues: [QueueActivation])
    }

    /// Status transitions (§2.1, §3.1.1). Device requests happen outside the lock.
    private func writeStatus(_ state: inout TransportState, _ value: UInt8) -> DeviceAction? {
        if value == 0 {
            state.reset(description: description)
            refreshAllInterrupts(&state)
            return .reset
        }
        var accepted = value
        if value & VirtioStatus.featuresOK != 0 && state.status & VirtioStatus.featuresOK == 0 {
            // FEATURES_OK only for a subset of what was offered, with VERSION_1 (§3.1.1, §6.1).
            let offered = description.features
            if state.driverFeatures & ~offered != 0 || state.driverFeatures & VirtioFeature.version1 == 0 {
                accepted &= ~VirtioStatus.featuresOK
                guestLog.note("\(name): driver features 0x\(String(state.driverFeatures, radix: 16)) refused")
            }
        }
        let becomesLive = accepted & VirtioStatus.driverOK != 0 && state.status & VirtioStatus.driverOK == 0
        state.status = accepted | (state.status & VirtioStatus.deviceNeedsReset)
        guard becomesLive else { return nil }
        guard state.status & VirtioStatus.featuresOK != 0 else {
            state.status |= VirtioStatus.deviceNeedsReset
            return nil
        }
        let queues = state.queues.enumerated().filter(\.element.enabled).map { index, queue in
            QueueActivation(index: UInt16(index), size: queue.size, descriptorTable: queue.descriptorTable,
                            availableRing: queue.availableRing, usedRing: queue.usedRing)
        }
        return .activate(features: state.driverFeatures, queues: queues)
    }

    private func perform(_ action: DeviceAction) {
        let request: TransportRequest
        switch action {
        case .reset: request = .reset
        case .activate(let features, let queues): request = .activate(features: features, queues: queues, deviceState: [])
        }
        let reply: TransportReply
        do {
            reply = try client.request(request)
        } catch {
            guestLog.note("\(name): device did not answer request \(request.tag): \(error)")
            markNeedsReset()
            return
        }
        if case .refused(let reason) = reply {
            guestLog.note("\(name): device refused: \(reason)")
            markNeedsReset()
        }
    }

    /// DEVICE_NEEDS_RESET plus a configuration-change interrupt (§2.1.2).
    func markNeedsReset() {
        state.withLock { state in
            state.status |= VirtioStatus.deviceNeedsReset
            raiseConfigInterrupt(&state)
        }
    }

    func configChanged() {
        state.withLock { state in
            state.configGeneration &+= 1
            raiseConfigInterrupt(&state)
        }
    }

    private func raiseConfigInterrupt(_ state: inout TransportState) {
        state.isr |= 2
        guard state.configVector != VirtioPCILayout.noVector else { return }
        if let message = state.deliverableMessage(vector: state.configVector) {
            signal(message)
        } else {
            state.msix.setPending(Int(state.configVector))
        }
    }

    // MARK: Interrupt routing

    /// KVM_SIGNAL_MSI; a failure loses the interrupt for the guest, so it is counted and said.
    private func signal(_ message: MSIMessage) {
        do {
            try platform.signal(message)
        } catch {
            let lost = lostInterruptCount.wrappingAdd(1, ordering: .relaxed).newValue
            guestLog.note("\(name): interrupt lost (\(lost) so far): \(error)")
        }
    }

    /// Re-evaluates every queue's binding and delivers pending vectors that became deliverable.
    func refreshAllInterrupts(_ state: inout TransportState) {
        for queue in state.queues.indices { refreshInterrupt(&state, queue: queue) }
        for vector in 0..<state.msix.count where state.msix.isPending(vector) {
            if let message = state.deliverableMessage(vector: UInt16(vector)) {
                state.msix.clearPending(vector)
                signal(message)
            }
        }
    }

    /// Binds the queue's call eventfd to KVM (irqfd → GSI → MSI) when its vector is
    /// deliverable; otherwise unbinds it and has the poller set the pending bit.
    private func refreshInterrupt(_ state: inout TransportState, queue: Int) {
        let vector = state.queues[queue].vector
        let wanted: InterruptBinding
        if vector == VirtioPCILayout.noVector {
            wanted = .none
        } else if let message = state.deliverableMessage(vector: vector) {
            wanted = .kernel(message)
        } else {
            wanted = .masked(vector)
        }
        let current = state.queues[queue].binding
        guard wanted != current else { return }
        do {
            if case .kernel = current { try platform.bindIRQFD(calls[queue], gsi: gsis[queue], bind: false) }
            if case .masked = current { platform.unwatchMasked(calls[queue]) }
            switch wanted {
            case .kernel(let message):
                try platform.route(gsi: gsis[queue], to: message)
                // KVM delivers at once a signal that arrived while unbound (kvm_irqfd_assign checks).
                try platform.bindIRQFD(calls[queue], gsi: gsis[queue], bind: true)
            case .masked:
                platform.watchMasked(calls[queue]) { [weak self] in self?.callWhileMasked(queue: queue) }
            case .none:
                break
            }
            state.queues[queue].binding = wanted
        } catch {
            guestLog.note("\(name): rebinding queue \(queue) interrupt: \(error)")
        }
    }

    /// The device signalled a queue whose vector is not deliverable in the kernel right now.
    private func callWhileMasked(queue: Int) {
        _ = calls[queue].drainEvent()
        state.withLock { state in
            switch state.queues[queue].binding {
            case .masked(let vector): state.msix.setPending(Int(vector))
            case .kernel(let message): signal(message)  // rebound while we read it
            case .none: break
            }
        }
    }

    // MARK: BAR placement

    /// Keeps the MMIO bus registration and the notify ioeventfds where the guest put the BAR.
    func updateBARMapping(_ state: inout TransportState) {
        let wanted = state.memoryEnabled ? state.barAddress : nil
        guard wanted != state.mappedAt else { return }
        if let old = state.mappedAt {
            platform.unmapBAR(self, base: old)
            for (queue, kick) in kicks.enumerated() {
                try? platform.bindIOEventFD(kick, mmioAddress: old + notifyOffset(queue), bind: false)
            }
        }
        state.mappedAt = nil
        guard let base = wanted, base != 0 else { return }
        do {
            try platform.mapBAR(self, base: base, size: VirtioPCILayout.barSize)
            for (queue, kick) in kicks.enumerated() {
                try platform.bindIOEventFD(kick, mmioAddress: base + notifyOffset(queue), bind: true)
            }
            state.mappedAt = base
        } catch {
            guestLog.note("\(name): BAR at 0x\(String(base, radix: 16)) not mapped: \(error)")
        }
    }

    private func notifyOffset(_ queue: Int) -> UInt64 {
        VirtioPCILayout.notifyOffset + UInt64(queue) * UInt64(VirtioPCILayout.notifyMultiplier)
    }
}

/// How a queue's call eventfd reaches the guest right now.
enum InterruptBinding: Equatable {
    case none
    /// irqfd → GSI → this MSI message, entirely in KVM.
    case kernel(MSIMessage)
    /// The vector is masked: the poller sets its pending bit.
    case masked(UInt16)
}

extension UInt64 {
    /// Writes the low (0) or high (1) 32-bit half, or all 64 bits with an 8-byte access.
    mutating func setHalf(_ half: Int, _ value: UInt64, size: Int) {
        if size == 8 && half == 0 { self = value; return }
        let shift = UInt64(half * 32)
        self = (self & ~(0xFFFF_FFFF << shift)) | ((value & 0xFFFF_FFFF) << shift)
    }
}

import Glibc
import Logging
import GuestRAM
import IPC
import LinuxSystem
import MemorySlots

/// The event loop of a virtio device process (design §4): requests from the
/// vm process on the slow path, kicks from KVM's ioeventfds on the fast path,
/// calls to KVM's irqfds, and vmd's control channel. Nothing here is device-specific.
public final class VirtioDeviceRunner {
    private let model: VirtioDeviceModel
    private let memory: GuestMemory
    private let wiring: DeviceWiring
    private let transport: Channel
    private let events: Channel
    private let control: Channel
    private let logger: Logger
    private let guestLog: RateLimitedLog
    private let loop: EventLoop
    private var watches: [EventWatch] = []
    private var kickWatches: [EventWatch] = []
    /// Set when the driver broke a ring; nothing is served until it resets the device.
    private var broken = false
    /// While the VM is paused: no kick, no device-specific descriptor (the tap) is served.
    private var quiesced = false
    /// The queues of the current activation, for `queueState`.
    private var liveQueues: ActiveQueues?
    /// The device-specific watches (`watchReadable`), suspended with the kicks.
    private var deviceWatches: [Weak<EventWatch>] = []
    /// The queues activated, to look at again on resume (kicks may have been coalesced).
    private var activeQueues: [Int] = []
    /// Queues a rate limit held back, each with the timer that serves it again.
    private var retries: [Int: EventWatch] = [:]

    public init(model: VirtioDeviceModel, memory: GuestMemory, wiring: DeviceWiring, control: Channel, logger: Logger) throws {
        self.model = model
        self.memory = memory
        self.wiring = wiring
        self.control = control
        self.logger = logger
        guestLog = RateLimitedLog(logger: logger)
        transport = Channel(socket: wiring.transport)
        events = Channel(socket: wiring.events)
        loop = try EventLoop()
    }

    /// For device-specific descriptors (virtio-net's tap), watched by the same loop.
    public func watchReadable(_ fd: Int32, _ handler: @escaping () -> Void) throws -> EventWatch {
        let watch = try loop.watchReadable(fd, handler)
        deviceWatches.removeAll { $0.value == nil }
        deviceWatches.append(Weak(watch))
        if quiesced { watch.suspend() }
        return watch
    }

    /// Calls `handler` once, on the loop, after `seconds` (a device's rate limit: virtio-net
    /// reads its tap again). Keep the watch: releasing it cancels the call.
    public func after(seconds: Double, _ handler: @escaping () -> Void) throws -> EventWatch {
        try loop.after(seconds: seconds, handler)
    }

    /// Serves queue `index` again after `seconds`, as if the driver had kicked it: for a
    /// device whose rate limit held the queue back (`ActiveQueues.serve`'s `admit`), with
    /// the driver's notifications left off. One timer per queue; a second call while one
    /// waits changes nothing. A timer that fires while the VM is paused serves nothing, and
    /// resuming serves every queue anyway.
    public func serveAgain(_ index: Int, after seconds: Double) {
        guard retries[index] == nil else { return }
        do {
            retries[index] = try loop.after(seconds: seconds) { [unowned self] in
                self.retries[index] = nil
                self.queueNotified(index)
            }
        } catch {
            // libevent out of memory: the queue waits for the guest's next kick, which a
            // driver with notifications off may never send. Said loudly, since it stalls.
            logger.error("queue \(index): no timer to serve it again after its rate limit (it may stall): \(error)")
        }
    }

    /// Tells the vm process that the device's configuration changed: the transport bumps
    /// the configuration generation and raises the config interrupt (§4.1.4.3).
    public func notifyConfigChanged() {
        do {
            try events.send(DeviceEvent.configChanged)
        } catch {
            logger.error("telling vm of a configuration change: \(error)")
        }
    }

    /// A device-side fault of a ring found outside a kick (virtio-net receiving from its tap).
    public func reportBrokenRing(_ error: Error) {
        guard !broken else { return }
        broken = true
        guestLog.note("\(error); device needs reset")
        try? events.send(DeviceEvent.needsReset("\(error)"))
    }

    /// Runs until vmd says stop or a channel closes.
    public func run() throws {
        watches.append(try loop.watchReadable(transport.socket.rawValue) { [unowned self] in self.serveTransport() })
        watches.append(try loop.watchReadable(control.socket.rawValue) { [unowned self] in
            switch try? self.control.receive(DeviceSetupCommand.self) {
            case .setLogLevel(let name)?:
                if let level = Logger.Level(rawValue: name) { VmdLog.setLevel(level) }
                self.logger.debug("log level now \(name)")
            case .stop?:
                self.logger.info("stopping")
                self.loop.stop()
            default:
                // vmd went away or sent something out of place: nobody supervises us any more.
                self.loop.stop()
            }
        })
        try loop.run()
    }

    private func serveTransport() {
        let numbered: Numbered<TransportRequest>
        do {
            numbered = try transport.receive(Numbered<TransportRequest>.self)
        } catch {
            logger.info("vm channel closed: \(error)")
            loop.stop()
            return
        }
        let request = numbered.message
        let reply: TransportReply
        switch request {
        case .describe:
            reply = .description(model.description)
        case .readConfig(let offset, let size):
            reply = .config(model.readConfig(offset: Int(offset), size: Int(min(size, 8))))
        case .writeConfig(let offset, let bytes):
            model.writeConfig(offset: Int(offset), bytes: bytes)
            reply = .done
        case .activate(let features, let queues, let deviceState):
            reply = activate(features: features, queues: queues, deviceState: deviceState)
        case .reset:
            deactivate()
            model.reset()
            broken = false
            reply = .done
        case .quiesce, .resume:
            setQuiesced(request == .quiesce)
            reply = .done
        case .queueState:
            reply = queueState()
        case .logWrites(let bitmap):
            do {
                if let bitmap {
                    defer { bitmap.close() }
                    try memory.logWrites(into: bitmap)
                } else {
                    memory.stopLoggingWrites()
                }
                reply = .done
            } catch {
                reply = .refused("dirty-page log: \(error)")
            }
        }
        do {
            try transport.send(Numbered(id: numbered.id, reply))
        } catch {
            logger.error("replying to vm: \(error)")
            loop.stop()
        }
    }

    /// The VM pausing (or going on): kicks and the device's own descriptors are taken out
    /// of the loop, and put back; then the model finishes what it has in flight (a device
    /// with workers waits for them). On resume every queue is looked at again, since kicks
    /// that came meanwhile were coalesced in their eventfds.
    private func setQuiesced(_ on: Bool) {
        quiesced = on
        for watch in kickWatches + deviceWatches.compactMap(\.value) {
            if on { watch.suspend() } else { watch.resume() }
        }
        if on { model.quiesce() }
        logger.debug(on ? "quiesced" : "resumed")
        if !on { activeQueues.forEach(queueNotified) }
    }

    private func activate(features: UInt64, queues: [QueueActivation], deviceState: [UInt8]) -> TransportReply {
        deactivate()
        let description = model.description
        guard features & ~description.features == 0 else { return .refused("features 0x\(String(features, radix: 16)) were not offered") }
        var live = [SplitVirtqueue?](repeating: nil, count: Int(description.queueCount))
        for queue in queues {
            guard Int(queue.index) < live.count else { return .refused("queue \(queue.index) does not exist") }
            do {
                let configuration = try VirtqueueConfiguration(
                    size: queue.size, descriptorTable: GuestAddress(queue.descriptorTable),
                    availableRing: GuestAddress(queue.availableRing), usedRing: GuestAddress(queue.usedRing),
                    maximumSize: description.maximumQueueSize, memory: memory)
                live[Int(queue.index)] = SplitVirtqueue(configuration: configuration, memory: memory, features: features)
            } catch {
                return .refused("queue \(queue.index): \(error)")
            }
        }
        do {
            for queue in queues where live[Int(queue.index)] != nil { live[Int(queue.index)]!.resume(at: queue.resumeAt) }
            let active = ActiveQueues(memory: memory, features: features, queues: live, calls: wiring.calls, polling: model.pollsQueues)
            try model.activate(features: features, queues: active)
            // A restore: before any queue is served, so the device serves them as the old one did.
            if !deviceState.isEmpty { try model.restore(savedState: deviceState) }
            liveQueues = active
            for index in live.indices where live[index] != nil {
                let kick = wiring.kicks[index]
                let watch = try loop.watchReadable(kick.rawValue) { [unowned self] in
                    _ = kick.drainEvent()
                    self.queueNotified(index)
                }
                if quiesced { watch.suspend() }
                kickWatches.append(watch)
                activeQueues.append(index)
                // Buffers may be waiting already (a kick before DRIVER_OK is allowed, §3.1.1).
                queueNotified(index)
            }
        } catch {
            return .refused("activation: \(error)")
        }
        logger.info("activated with features 0x\(String(features, radix: 16)), \(queues.count) queues")
        return .done
    }

    /// Each active queue's indices, for a snapshot: only while quiesced, so nothing is in
    /// flight and no chain is taken meanwhile.
    private func queueState() -> TransportReply {
        guard quiesced else { return .refused("queue state asked while running") }
        guard let liveQueues else { return .queueState([], deviceState: []) }
        return .queueState(liveQueues.queues.enumerated().map { index, queue in
            queue.map { QueueIndices(nextAvailable: $0.lastAvailableIndex &- UInt16(truncatingIfNeeded: model.chainsHeld(onQueue: index)),
                                     nextUsed: $0.usedIndex) }
        }, deviceState: model.savedState)
    }

    private func deactivate() {
        liveQueues = nil
        retries.values.forEach { $0.cancel() }
        retries = [:]
        kickWatches.forEach { $0.cancel() }
        kickWatches = []
        activeQueues = []
    }

    private func queueNotified(_ index: Int) {
        guard !broken, !quiesced else { return }
        do {
            try model.queueNotified(index)
        } catch {
            // The ring itself is broken (virtio 1.2 §2.1.2): stop and ask for a reset.
            broken = true
            let what = error is QueueFault ? "\(error)" : "queue \(index): \(error)"
            guestLog.note("\(what); device needs reset")
            try? events.send(DeviceEvent.needsReset(what))
        }
    }
}

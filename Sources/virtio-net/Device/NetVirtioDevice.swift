import GuestRAM
import IPC
import LinuxSystem
import VirtioCore

/// The virtio-net device as the generic device runner drives it: one `NetDeviceModel` per
/// queue pair, each over its own queue of the tap, and the control queue, which says how
/// many pairs the driver uses (VIRTIO_NET_F_MQ, virtio 1.2 §5.1.6.5.5) and takes its acks
/// of the announcements a restored device asks for (GUEST_ANNOUNCE, §5.1.6.5.4).
///
/// The process's event loop watches each pair's tap queue and calls `tapReadable(pair:)`.
/// When that returns `.outOfBuffers` the loop stops watching that queue (back-pressure: the
/// tap's own queue holds the packets); the device calls `resumeTap` once the driver kicks the
/// pair's receive queue, and the loop watches it again.
///
/// Pairs out of use have their tap queue detached, so the kernel steers no packet to a
/// receive queue the driver does not serve; a tap queue in use gets the packets of the flows
/// the guest sent through it ("receive follows transmit", §5.1.6.5.5's automatic steering).
final class NetVirtioDevice: VirtioDeviceModel {
    let pairs: [NetDeviceModel]
    let layout: NetQueueLayout
    private let guestLog: RateLimitedLog
    /// Watch the pair's tap queue again (buffers came back, or the pair came into use).
    private let resumeTap: (_ pair: Int) -> Void
    /// Stop watching the pair's tap queue: it is about to be detached, and nothing will come.
    var stopTap: (_ pair: Int) -> Void = { _ in }
    /// TUNSETOFFLOAD on the tap (all its queues).
    var setTapOffloads: (UInt32) throws -> Void = { _ in }
    /// TUNSETQUEUE on the pair's tap queue (`TapQueue`).
    var setTapQueueAttached: (_ pair: Int, _ attached: Bool) throws -> Void = { _, _ in }
    private var active: ActiveQueues?
    /// Per pair, whether its tap queue is attached: the first `pairsInUse`. vmd hands the tap
    /// over with the first alone.
    private(set) var attached: [Bool]
    /// Pairs the driver uses (§5.1.6.5.5): the first alone until VQ_PAIRS_SET, and after a reset.
    var pairsInUse: Int { attached.prefix { $0 }.count }
    /// Per pair: `tapReadable` said `.outOfBuffers` and `resumeTap` has not been called since.
    private(set) var waitingForBuffers: [Bool]
    /// Where the counters are published for vmd (vmctl stats), after every pass.
    var counterPage: CounterPage?
    /// The interface's limit on what the guest sends, all pairs together; the receive side's
    /// is the models' (one limiter they share).
    var transmitLimiter: RateLimiter?
    /// Serves a queue the limiter held back again after so many seconds (the runner's timer).
    var serveAgain: (_ queue: Int, _ seconds: Double) -> Void = { _, _ in }
    /// Tells the driver the configuration changed (the runner's `notifyConfigChanged`: a
    /// config interrupt).
    var configChanged: () -> Void = {}
    /// VIRTIO_NET_S_ANNOUNCE is up: the device was restored (a receive or a migration), and
    /// the driver has not yet acked the announcements that tell the network where it is now.
    private(set) var announcing = false

    /// The first pair's model: the only one of a device without MQ.
    var model: NetDeviceModel { pairs[0] }

    init(pairs: [NetDeviceModel], guestLog: RateLimitedLog, resumeTap: @escaping (_ pair: Int) -> Void) {
        precondition(!pairs.isEmpty, "a network device has a queue pair")
        self.pairs = pairs
        layout = NetQueueLayout(pairs: pairs.count)
        self.guestLog = guestLog
        self.resumeTap = resumeTap
        attached = pairs.indices.map { $0 == 0 }
        waitingForBuffers = Array(repeating: false, count: pairs.count)
        for model in pairs { model.onFailure = { [guestLog] in guestLog.note($0) } }
    }

    var description: DeviceDescription {
        DeviceDescription(type: .network, features: model.deviceFeatures | layout.features, queueCount: UInt16(layout.queueCount),
                          maximumQueueSize: NetDeviceModel.maximumQueueSize, configSize: UInt32(NetDeviceModel.configSpaceSize))
    }

    func readConfig(offset: Int, size: Int) -> [UInt8] {
        let status = NetDeviceModel.statusLinkUp | (announcing ? NetDeviceModel.statusAnnounce : 0)
        return readConfigBytes(NetDeviceModel.makeConfigSpace(mac: model.mac, queuePairs: pairs.count, status: status),
                               offset: offset, size: size)
    }

    func writeConfig(offset: Int, bytes: [UInt8]) {
        // §5.1.4: every field of virtio_net_config is read-only for a VERSION_1 driver.
    }

    func activate(features: UInt64, queues: ActiveQueues) throws {
        // §5.1.3.1: MQ and GUEST_ANNOUNCE need CTRL_VQ (without it the driver could neither
        // leave the first pair nor ack an announcement).
        for (feature, name) in [(VirtioNetFeature.multiqueue, "MQ"), (VirtioNetFeature.guestAnnounce, "GUEST_ANNOUNCE")]
        where features & feature != 0 && features & VirtioNetFeature.controlQueue == 0 {
            throw NetActivationError.withoutControlQueue(name)
        }
        pairs.forEach { $0.resetQueues() }
        // The tap may hand us only what the guest can take (partial checksums, TSO).
        try setTapOffloads(NetOffloads.tunFlags(forGuestFeatures: features))
        try usePairs(1)
        announcing = false
        active = queues
    }

    /// The receive buffers taken and waiting for a packet: a snapshot's device takes them again.
    func chainsHeld(onQueue index: Int) -> Int {
        index % 2 == 0 && index / 2 < pairs.count ? pairs[index / 2].heldReceiveBuffers.count : 0
    }

    /// The pairs in use (le16); a restored device puts them back. Never empty, so that a
    /// restored device always hears of it (`restore(savedState:)`) and announces itself.
    var savedState: [UInt8] {
        [UInt8(truncatingIfNeeded: pairsInUse), UInt8(truncatingIfNeeded: pairsInUse >> 8)]
    }

    /// A device restored from a snapshot or a migration: the pairs in use as they were, and,
    /// where the driver took GUEST_ANNOUNCE, VIRTIO_NET_S_ANNOUNCE and a config interrupt,
    /// so that it tells the network (gratuitous ARP, unsolicited neighbour advertisements)
    /// where the guest is now, as QEMU asks after a migration (§5.1.6.5.4).
    func restore(savedState: [UInt8]) throws {
        guard savedState.count == 2 else { throw DeviceStateError.malformed("\(savedState.count) bytes, not a le16 of queue pairs") }
        let count = Int(savedState[0]) | Int(savedState[1]) << 8
        let features = active?.features ?? 0
        guard active != nil, (1...layout.pairs).contains(count), count == 1 || features & VirtioNetFeature.multiqueue != 0 else {
            throw DeviceStateError.malformed("\(count) queue pairs in use, of \(layout.pairs) (MQ negotiated: \(features & VirtioNetFeature.multiqueue != 0))")
        }
        try usePairs(count)
        if features & VirtioNetFeature.guestAnnounce != 0 {
            announcing = true
            configChanged()
        }
    }

    func queueNotified(_ index: Int) throws {
        guard let active else { return }
        defer { publishCounters() }
        switch layout.role(ofQueue: index, features: active.features) {
        case .transmit(let pair):
            // A pair out of use has no tap queue: what the driver sends there leaves by the first.
            try transmit(queue: index, through: attached[pair] ? pair : 0, active)
        case .receive(let pair):
            // The driver added receive buffers: the device's own frames first, then the tap.
            _ = try receive(pair: pair, active, readTap: false)
            if waitingForBuffers[pair] && attached[pair] {
                waitingForBuffers[pair] = false
                resumeTap(pair)
            }
        case .control:
            try active.serve(index, noting: guestLog, queueName: "control queue") { [unowned self] chain in
                answerControl(chain, memory: active.memory, features: active.features)
            }
        case .none:
            break
        }
    }

    private func transmit(queue index: Int, through pair: Int, _ active: ActiveQueues) throws {
        let model = pairs[pair]
        let limiter = transmitLimiter
        let heldBack = try active.serve(index, onMalformed: { [model, guestLog] head, error in
            model.counters.txDropped.malformedChain += 1
            guestLog.note("transmit queue \(index): chain at descriptor \(head) refused: \(error)")
        }, admit: { limiter?.admits() ?? true }, start: { chain in
            // The frame's bytes, as the guest gave them (header excluded).
            let length = chain.readableLength
            limiter?.charge(bytes: length > UInt64(VirtioNetHeader.size) ? length - UInt64(VirtioNetHeader.size) : 0)
            return model.transmit(chain, memory: active.memory, features: active.features)
        })
        if heldBack, let limiter { serveAgain(index, limiter.secondsUntilAdmitted()) }
        // The driver's DHCP request may have produced a reply.
        if !model.localFrames.isEmpty { _ = try receive(pair: pair, active, readTap: false) }
    }

    /// The pair's tap queue is readable: moves packets into its receive queue until the tap
    /// is empty, the queue is full or the pass's quota is spent, and interrupts the driver
    /// once. `.outOfBuffers` means: stop watching the tap until `resumeTap` is called;
    /// `.limited`: stop watching it for `secondsUntilReceiveAdmitted`.
    /// Throws `VirtqueueError` when the receive ring is broken (the device needs a reset,
    /// as for `queueNotified`) and `SystemError` when the tap fails (a host error).
    func tapReadable(pair: Int = 0) throws -> NetReceiveOutcome {
        guard let active, attached[pair] else {
            // Not running (before DRIVER_OK or after a reset), or out of use: nowhere to put packets.
            waitingForBuffers[pair] = true
            return .outOfBuffers
        }
        defer { publishCounters() }
        let outcome = try receive(pair: pair, active, readTap: true)
        if outcome == .outOfBuffers { waitingForBuffers[pair] = true }
        return outcome
    }

    /// How long the receive limit holds the tap back.
    var secondsUntilReceiveAdmitted: Double { model.receiveLimiter?.secondsUntilAdmitted() ?? 0 }

    private func receive(pair: Int, _ active: ActiveQueues, readTap: Bool) throws -> NetReceiveOutcome {
        let receiveQueue = NetQueueLayout.receiveQueue(ofPair: pair)
        let outcome: NetReceiveOutcome?
        do {
            outcome = try active.withQueue(receiveQueue) { queue in
                try pairs[pair].receive(queue: &queue, memory: active.memory, features: active.features, readTap: readTap)
            }
        } catch {
            // Packets delivered before the failure are still the driver's to see.
            try? active.interruptIfNeeded(receiveQueue)
            throw error
        }
        try active.interruptIfNeeded(receiveQueue)
        // A driver that did not enable the receive queue takes nothing.
        return outcome ?? .outOfBuffers
    }

    // MARK: The control queue

    /// Answers one control chain (§5.1.6.5): the command is copied out once and parsed, and
    /// its ack written into the first device-writable byte. A chain with no such byte cannot
    /// be answered and completes with length 0; anything else the device does not do gets
    /// VIRTIO_NET_ERR.
    private func answerControl(_ chain: DescriptorChain, memory: GuestMemory, features: UInt64) -> UInt32 {
        guard chain.writableLength >= 1 else {
            guestLog.note("control queue: chain at descriptor \(chain.head) has no writable ack byte (§5.1.6.5)")
            return 0
        }
        let ack: UInt8
        if chain.readableLength > UInt64(NetControlCommand.maximumLength) {
            guestLog.note("control queue: \(chain.readableLength)-byte command refused")
            ack = NetControlCommand.error
        } else {
            var bytes = [UInt8](repeating: 0, count: Int(chain.readableLength))
            do {
                // SAFETY: copyBytes writes exactly bytes.count bytes, inside the array's storage.
                try bytes.withUnsafeMutableBytes { try chain.readable.copyBytes(from: 0, into: $0, memory: memory) }
                ack = execute(NetControlCommand.parse(bytes), features: features)
            } catch {
                guestLog.note("control queue: command not readable: \(error)")
                ack = NetControlCommand.error
            }
        }
        do {
            // SAFETY: one byte on the stack, read by writeBytes within the call.
            try withUnsafeBytes(of: ack) { try chain.writable.writeBytes($0, at: 0, memory: memory) }
        } catch {
            guestLog.note("control queue: ack not writable: \(error)")
            return 0
        }
        return 1
    }

    private func execute(_ parsed: Result<NetControlCommand, NetControlCommand.ParseError>, features: UInt64) -> UInt8 {
        switch parsed {
        case .failure(let error):
            guestLog.note("control queue: \(error)")
            return NetControlCommand.error
        case .success(.unsupported(let commandClass, let command)):
            guestLog.note("control queue: class \(commandClass) command \(command) is not offered")
            return NetControlCommand.error
        case .success(.acknowledgeAnnounce):
            guard features & VirtioNetFeature.guestAnnounce != 0 else {
                guestLog.note("control queue: ANNOUNCE_ACK without GUEST_ANNOUNCE")
                return NetControlCommand.error
            }
            // §5.1.6.5.4: the device clears VIRTIO_NET_S_ANNOUNCE on the ack.
            announcing = false
            return NetControlCommand.ok
        case .success(.setQueuePairs(let count)):
            // §5.1.6.5.5: only with MQ negotiated, and between 1 and max_virtqueue_pairs.
            guard features & VirtioNetFeature.multiqueue != 0, (1...layout.pairs).contains(count) else {
                guestLog.note("control queue: \(count) queue pairs refused (1...\(layout.pairs), with MQ)")
                return NetControlCommand.error
            }
            do {
                try usePairs(count)
                return NetControlCommand.ok
            } catch {
                guestLog.note("control queue: \(count) queue pairs: \(error)")
                return NetControlCommand.error
            }
        }
    }

    /// Attaches the tap queues of the first `count` pairs and detaches the others, so the
    /// kernel steers packets only to receive queues the driver serves.
    /// When the tap refuses a queue, what was changed is put back (as far as the tap lets
    /// it), so the tap's queues stay those of the pairs still in use.
    private func usePairs(_ count: Int) throws {
        let before = pairsInUse
        do {
            try setAttached(pairs: count)
        } catch {
            try? setAttached(pairs: before)
            throw error
        }
    }

    private func setAttached(pairs count: Int) throws {
        for pair in pairs.indices where attached[pair] != (pair < count) {
            let attach = pair < count
            if !attach { stopTap(pair) }
            try setTapQueueAttached(pair, attach)
            attached[pair] = attach
            if attach {
                waitingForBuffers[pair] = false
                resumeTap(pair)
            }
        }
    }

    private func publishCounters() {
        guard let page = counterPage else { return }
        let counters = self.counters
        page.store(NetCounter.rxPackets.slot, UInt64(counters.rxPackets))
        page.store(NetCounter.rxBytes.slot, counters.rxBytes)
        page.store(NetCounter.rxDrops.slot, UInt64(counters.rxDropped.total))
        page.store(NetCounter.txPackets.slot, UInt64(counters.txPackets))
        page.store(NetCounter.txBytes.slot, counters.txBytes)
        page.store(NetCounter.txDrops.slot, UInt64(counters.txDropped.total))
        page.store(NetCounter.rxThrottled.slot, UInt64(model.receiveLimiter?.refusals ?? 0))
        page.store(NetCounter.txThrottled.slot, UInt64(transmitLimiter?.refusals ?? 0))
    }

    /// Every pair's counters added up.
    var counters: NetDeviceCounters {
        var total = NetDeviceCounters()
        for model in pairs { total.add(model.counters) }
        return total
    }

    func reset() {
        active = nil
        announcing = false
        pairs.forEach { $0.resetQueues() }
        do {
            try usePairs(1)
        } catch {
            guestLog.note("reset: tap queues: \(error)")
        }
    }

    /// No polling window: this process's one thread also serves the tap, and while it polled
    /// the transmit ring a packet from the tap waited (UDP echo round trip 31 -> 86 µs with a
    /// 50 µs window, issue 8), for packet rates within the noise.
    var pollsQueues: Bool { false }
}

/// A driver's features the device cannot run with.
enum NetActivationError: Error, CustomStringConvertible {
    case withoutControlQueue(String)

    var description: String {
        switch self {
        case .withoutControlQueue(let feature): "VIRTIO_NET_F_\(feature) without VIRTIO_NET_F_CTRL_VQ (§5.1.3.1)"
        }
    }
}

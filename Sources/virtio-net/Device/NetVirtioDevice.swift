import IPC
import LinuxSystem
import VirtioCore

/// The virtio-net model as the generic device runner drives it: queue 0 receives from the
/// tap, queue 1 transmits to it, both straight out of guest memory.
///
/// The process's event loop watches the tap and calls `tapReadable()`. When that returns
/// `.outOfBuffers` the loop stops watching the tap (back-pressure: the tap's own queue holds
/// the packets); the device calls `resumeTap` once the driver kicks the receive queue, and
/// the loop watches the tap again.
final class NetVirtioDevice: VirtioDeviceModel {
    let model: NetDeviceModel
    private let guestLog: RateLimitedLog
    private let resumeTap: () -> Void
    /// TUNSETOFFLOAD on the tap: the one tap ioctl this process makes (design §5).
    var setTapOffloads: (UInt32) throws -> Void = { _ in }
    private var active: ActiveQueues?
    /// `tapReadable()` said `.outOfBuffers` and `resumeTap` has not been called since.
    private(set) var waitingForBuffers = false
    /// Where the counters are published for vmd (vmctl stats), after every pass.
    var counterPage: CounterPage?
    /// The interface's limit on what the guest sends; the receive side's is the model's.
    var transmitLimiter: RateLimiter?
    /// Serves a queue the limiter held back again after so many seconds (the runner's timer).
    var serveAgain: (_ queue: Int, _ seconds: Double) -> Void = { _, _ in }

    init(model: NetDeviceModel, guestLog: RateLimitedLog, resumeTap: @escaping () -> Void) {
        self.model = model
        self.guestLog = guestLog
        self.resumeTap = resumeTap
        model.onFailure = { [guestLog] in guestLog.note($0) }
    }

    var description: DeviceDescription {
        DeviceDescription(type: .network, features: model.deviceFeatures, queueCount: UInt16(model.queueCount),
                          maximumQueueSize: model.maximumQueueSize, configSize: UInt32(model.configSpace.count))
    }

    func readConfig(offset: Int, size: Int) -> [UInt8] {
        readConfigBytes(model.configSpace, offset: offset, size: size)
    }

    func writeConfig(offset: Int, bytes: [UInt8]) {
        // §5.1.4: every field of virtio_net_config is read-only for a VERSION_1 driver.
    }

    func activate(features: UInt64, queues: ActiveQueues) throws {
        model.resetQueues()
        // The tap may hand us only what the guest can take (partial checksums, TSO).
        try setTapOffloads(NetOffloads.tunFlags(forGuestFeatures: features))
        active = queues
    }

    /// The receive buffers taken and waiting for a packet: a snapshot's device takes them again.
    func chainsHeld(onQueue index: Int) -> Int {
        index == NetDeviceModel.receiveQueue ? model.heldReceiveBuffers.count : 0
    }

    func queueNotified(_ index: Int) throws {
        guard let active else { return }
        defer { publishCounters() }
        switch index {
        case NetDeviceModel.transmitQueue:
            let limiter = transmitLimiter
            let heldBack = try active.serve(index, onMalformed: { [model, guestLog] head, error in
                model.counters.txDropped.malformedChain += 1
                guestLog.note("transmit queue: chain at descriptor \(head) refused: \(error)")
            }, admit: { limiter?.admits() ?? true }, start: { chain in
                // The frame's bytes, as the guest gave them (header excluded).
                let length = chain.readableLength
                limiter?.charge(bytes: length > UInt64(VirtioNetHeader.size) ? length - UInt64(VirtioNetHeader.size) : 0)
                return model.transmit(chain, memory: active.memory, features: active.features)
            })
            if heldBack, let limiter { serveAgain(index, limiter.secondsUntilAdmitted()) }
            // The driver's DHCP request may have produced a reply.
            if !model.localFrames.isEmpty { _ = try receive(active, readTap: false) }
        case NetDeviceModel.receiveQueue:
            // The driver added receive buffers: the device's own frames first, then the tap.
            _ = try receive(active, readTap: false)
            if waitingForBuffers {
                waitingForBuffers = false
                resumeTap()
            }
        default:
            break
        }
    }

    /// The tap is readable: moves packets into the receive queue until the tap is empty,
    /// the queue is full or the pass's quota is spent, and interrupts the driver once.
    /// `.outOfBuffers` means: stop watching the tap until `resumeTap` is called; `.limited`:
    /// stop watching it for `secondsUntilReceiveAdmitted`.
    /// Throws `VirtqueueError` when the receive ring is broken (the device needs a reset,
    /// as for `queueNotified`) and `SystemError` when the tap fails (a host error).
    func tapReadable() throws -> NetReceiveOutcome {
        guard let active else {
            // Not running (before DRIVER_OK or after a reset): nowhere to put packets.
            waitingForBuffers = true
            return .outOfBuffers
        }
        defer { publishCounters() }
        let outcome = try receive(active, readTap: true)
        if outcome == .outOfBuffers { waitingForBuffers = true }
        return outcome
    }

    /// How long the receive limit holds the tap back.
    var secondsUntilReceiveAdmitted: Double { model.receiveLimiter?.secondsUntilAdmitted() ?? 0 }

    private func receive(_ active: ActiveQueues, readTap: Bool) throws -> NetReceiveOutcome {
        let receiveQueue = NetDeviceModel.receiveQueue
        let outcome: NetReceiveOutcome?
        do {
            outcome = try active.withQueue(receiveQueue) { queue in
                try model.receive(queue: &queue, memory: active.memory, features: active.features, readTap: readTap)
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

    private func publishCounters() {
        guard let page = counterPage else { return }
        let counters = model.counters
        page.store(NetCounter.rxPackets.slot, UInt64(counters.rxPackets))
        page.store(NetCounter.rxBytes.slot, counters.rxBytes)
        page.store(NetCounter.rxDrops.slot, UInt64(counters.rxDropped.total))
        page.store(NetCounter.txPackets.slot, UInt64(counters.txPackets))
        page.store(NetCounter.txBytes.slot, counters.txBytes)
        page.store(NetCounter.txDrops.slot, UInt64(counters.txDropped.total))
        page.store(NetCounter.rxThrottled.slot, UInt64(model.receiveLimiter?.refusals ?? 0))
        page.store(NetCounter.txThrottled.slot, UInt64(transmitLimiter?.refusals ?? 0))
    }

    func reset() {
        active = nil
        model.resetQueues()
    }

    /// No polling window: this process's one thread also serves the tap, and while it polled
    /// the transmit ring a packet from the tap waited (UDP echo round trip 31 -> 86 µs with a
    /// 50 µs window, issue 8), for packet rates within the noise.
    var pollsQueues: Bool { false }
}

import Glibc
import GuestRAM
import IPC
import LinuxSystem

/// What a device process implements; `VirtioDeviceRunner` does the rest
/// (the slow-path channel, queue creation and validation, kicks and calls).
public protocol VirtioDeviceModel: AnyObject {
    var description: DeviceDescription { get }
    /// Bytes of the device-specific configuration space (virtio 1.2 §4.1.4.6).
    func readConfig(offset: Int, size: Int) -> [UInt8]
    func writeConfig(offset: Int, bytes: [UInt8])
    /// The driver set DRIVER_OK with these features and queues.
    func activate(features: UInt64, queues: ActiveQueues) throws
    /// The driver notified queue `index`; serve what it made available.
    /// Throws a `VirtqueueError` only when the ring itself is broken.
    func queueNotified(_ index: Int) throws
    /// Device reset: drop the queues and any state derived from the driver.
    func reset()
    /// The VM is pausing and no new kick will be served: finish what is in flight (a
    /// device that serves each request within its event has nothing to do).
    func quiesce()
    /// Whether `ActiveQueues.drain` may poll this device's rings after a busy round
    /// (`PollingWindow`). A device whose one thread also waits on other sources says no.
    var pollsQueues: Bool { get }
    /// How many chains of queue `index` the device took and holds without having used them
    /// (virtio-net's receive buffers waiting for packets). A snapshot rewinds past them, so
    /// the restored device takes them again.
    func chainsHeld(onQueue index: Int) -> Int
    /// What the device keeps of the driver's settings beyond its rings, for a snapshot, asked
    /// while quiesced (virtio-net: the queue pairs the driver set in use). Empty for most.
    var savedState: [UInt8] { get }
    /// Puts back what `savedState` said, right after the restored activation. Throws for
    /// bytes it does not take (the snapshot is hostile until checked).
    func restore(savedState: [UInt8]) throws
}

extension VirtioDeviceModel {
    public var pollsQueues: Bool { true }
    public func quiesce() {}
    public func chainsHeld(onQueue index: Int) -> Int { 0 }
    public var savedState: [UInt8] { [] }
    public func restore(savedState: [UInt8]) throws {
        guard savedState.isEmpty else { throw DeviceStateError.notKept(savedState.count) }
    }

    public func readConfigBytes(_ space: [UInt8], offset: Int, size: Int) -> [UInt8] {
        // Reads past the end of the structure return zeros rather than failing the vCPU.
        (0..<size).map { offset + $0 < space.count && offset >= 0 ? space[offset + $0] : 0 }
    }
}

/// The live queues of an activated device and the way to interrupt the driver.
public final class ActiveQueues {
    public let memory: GuestMemory
    public let features: UInt64
    /// Indexed by queue number; nil for a queue the driver did not enable.
    public private(set) var queues: [SplitVirtqueue?]
    private let calls: [FileDescriptor]
    /// Per queue: how long `drain` polls after a busy round.
    private var pollingWindows: [PollingWindow]

    init(memory: GuestMemory, features: UInt64, queues: [SplitVirtqueue?], calls: [FileDescriptor], polling: Bool = true) {
        self.memory = memory
        self.features = features
        self.queues = queues
        self.calls = calls
        self.pollingWindows = Array(repeating: PollingWindow(maximum: polling ? PollingWindow.configuredMaximum : 0),
                                    count: queues.count)
    }

    /// Signals the queue's call eventfd if the driver wants an interrupt now
    /// (EVENT_IDX or NO_INTERRUPT decide, virtio 1.2 §2.7.7, §2.7.10).
    public func interruptIfNeeded(_ index: Int) throws {
        guard queues[index] != nil, try queues[index]!.needsInterrupt() else { return }
        try? calls[index].signalEvent()
    }

    /// Runs `body` on queue `index`, nil if the driver did not enable it. For devices that
    /// take buffers when data arrives rather than when the driver kicks (virtio-net's
    /// receive queue holds chains until a packet comes); `drain` covers the usual case.
    public func withQueue<Result>(_ index: Int, _ body: (inout SplitVirtqueue) throws -> Result) throws -> Result? {
        guard queues[index] != nil else { return nil }
        do {
            return try body(&queues[index]!)
        } catch let error as VirtqueueError {
            throw QueueFault(queue: index, error: error)
        }
    }

    /// `drain` for a device whose only answer to a malformed chain, beyond completing it
    /// with length 0, is a note in its rate-limited guest log naming `queueName`.
    public func drain(_ index: Int, noting guestLog: RateLimitedLog, queueName: String,
                      _ handle: (DescriptorChain) -> UInt32) throws {
        try serve(index, noting: guestLog, queueName: queueName, start: handle)
    }

    /// Serves every available chain of queue `index` with `handle`, which returns the
    /// number of bytes written into the chain; malformed chains complete with length 0.
    /// Loops until the driver has added nothing more after notifications were re-enabled.
    public func drain(_ index: Int, onMalformed: (UInt16, VirtqueueError) -> Void = { _, _ in },
                      _ handle: (DescriptorChain) -> UInt32) throws {
        try serve(index, onMalformed: onMalformed, start: handle)
    }

    /// `serve` with malformed chains noted in the guest log, as `drain(_:noting:queueName:_:)`.
    @discardableResult
    public func serve(_ index: Int, noting guestLog: RateLimitedLog, queueName: String,
                      admit: () -> Bool = { true },
                      start: (DescriptorChain) -> UInt32?,
                      afterPass: (inout SplitVirtqueue) throws -> Void = { _ in }) throws -> Bool {
        return try serve(index, onMalformed: { head, error in
            guestLog.note("\(queueName): chain at descriptor \(head) refused: \(error)")
        }, admit: admit, start: start, afterPass: afterPass)
    }

    /// `drain` for a device that may finish a chain later: `start` returns the used length
    /// of a chain it served at once, nil for one it completes itself afterwards (with
    /// `withQueue`). `afterPass` runs after each pass over the available ring, before the
    /// interrupt decision and the polling window: it may push what finished meanwhile.
    ///
    /// `admit` is asked before each chain is taken (a device's `RateLimiter`). When it says
    /// no, the pass ends with the rest left on the ring and notifications still off, so a
    /// held-back driver does not exit to kick us: the device serves the queue again when
    /// its limit allows (`VirtioDeviceRunner.serveAgain`). Returns whether it did so.
    @discardableResult
    public func serve(_ index: Int, onMalformed: (UInt16, VirtqueueError) -> Void = { _, _ in },
                      admit: () -> Bool = { true },
                      start: (DescriptorChain) -> UInt32?,
                      afterPass: (inout SplitVirtqueue) throws -> Void = { _ in }) throws -> Bool {
        guard queues[index] != nil else { return false }
        do {
            return try serveUnlabelled(index, onMalformed: onMalformed, admit: admit, start: start, afterPass: afterPass)
        } catch let error as VirtqueueError {
            throw QueueFault(queue: index, error: error)
        }
    }

    private func serveUnlabelled(_ index: Int, onMalformed: (UInt16, VirtqueueError) -> Void,
                                 admit: () -> Bool,
                                 start: (DescriptorChain) -> UInt32?,
                                 afterPass: (inout SplitVirtqueue) throws -> Void) throws -> Bool {
        let polling = pollingWindows[index].maximum > 0
        if polling { pollingWindows[index].kicked(at: PollingWindow.now()) }
        var heldBack = false
        repeat {
            try queues[index]!.disableNotifications()
            var served = 0
            repeat {
                while try hasAvailable(index) {
                    guard admit() else {
                        heldBack = true
                        break
                    }
                    guard let entry = try queues[index]!.popAvailable() else { break }
                    served += 1
                    switch entry {
                    case .chain(let chain):
                        if let length = start(chain) { try queues[index]!.pushUsed(head: chain.head, length: length) }
                    case .malformed(let head, let error):
                        onMalformed(head, error)
                        try queues[index]!.pushUsed(head: head, length: 0)
                    }
                }
                try afterPass(&queues[index]!)
                try interruptIfNeeded(index)
                if heldBack { return true }
                // A driver that was busy is likely to add more at once: wait a moment for it
                // with notifications still off, since each notify costs the guest an exit.
            } while try served > 0 && pollingWindows[index].poll { try hasAvailable(index) }
        } while try queues[index]!.enableNotifications()
        if polling { pollingWindows[index].sleeping(at: PollingWindow.now()) }
        return false
    }

    /// Whether queue `index` (enabled) has a chain waiting. Through an in-place access: a
    /// method that does not mutate, called on `queues[index]!`, copied the queue each time
    /// (3-4 % of virtio-blk's own time at 4 KiB requests).
    private func hasAvailable(_ index: Int) throws(VirtqueueError) -> Bool {
        try Self.hasAvailable(in: &queues[index]!)
    }

    private static func hasAvailable(in queue: inout SplitVirtqueue) throws(VirtqueueError) -> Bool {
        try queue.hasAvailable()
    }
}

/// A ring fault with the queue it happened on (which need not be the queue that was kicked:
/// a transmit can make virtio-net deliver on its receive queue).
public struct QueueFault: Error, CustomStringConvertible {
    public let queue: Int
    public let error: VirtqueueError

    public var description: String { "queue \(queue): \(error)" }
}

import IPC
import LinuxSystem
import Synchronization
import VirtioCore

/// The virtio-blk model as the generic device runner drives it: one or more request
/// queues (VIRTIO_BLK_F_MQ, one per vCPU), served by `BlockDeviceModel` straight out of
/// guest memory. Each queue has its own kick and call eventfd; one event loop serves them
/// all, so a queue per vCPU spares the guest its lock on a shared ring and lets each
/// completion interrupt the vCPU that asked.
///
/// With a worker pool (a raw image under `cache none`: see `BlockProcessMain`), the
/// event loop only takes chains off the ring and hands them to the workers; what they
/// finish comes back through `completionEvent`, and the loop puts it on the used ring
/// and interrupts on the queue the request came from. So the guest's queue depth reaches
/// the host. Without one (the page
/// cache, qcow2) every request is served in the loop.
/// Pause and reset wait for the requests in flight (`quiesce`, `reset`).
final class BlockVirtioDevice: VirtioDeviceModel {
    /// One model per worker (the first also serves the loop's own requests).
    let models: [BlockDeviceModel]
    var model: BlockDeviceModel { models[0] }
    private let pool: BlockWorkerPool?
    private let guestLog: RateLimitedLog
    private var active: ActiveQueues?
    /// Signalled by a worker when it finished a request; watched by the event loop.
    let completionEvent: FileDescriptor
    private let finished = Mutex<[(queue: Int, head: UInt16, length: UInt32)]>([])
    /// A ring fault found while completing (outside a kick), for the runner to report.
    var onBrokenRing: ((Error) -> Void)?

    init(models: [BlockDeviceModel], pool: BlockWorkerPool?, guestLog: RateLimitedLog) throws {
        precondition(!models.isEmpty && (pool == nil || pool!.workers == models.count), "a model per worker")
        self.models = models
        self.pool = pool
        self.guestLog = guestLog
        completionEvent = try FileDescriptor.eventFD()
        for model in models { model.onFailure = { [guestLog] in guestLog.note($0) } }
    }

    convenience init(model: BlockDeviceModel, guestLog: RateLimitedLog) throws {
        try self.init(models: [model], pool: nil, guestLog: guestLog)
    }

    var description: DeviceDescription {
        DeviceDescription(type: .block, features: model.deviceFeatures, queueCount: UInt16(model.queueCount),
                          maximumQueueSize: model.maximumQueueSize, configSize: UInt32(model.configSpace.count))
    }

    /// Every worker's counters added up.
    var requestsServed: Int { models.reduce(0) { $0 + $1.counters.requests } }

    func readConfig(offset: Int, size: Int) -> [UInt8] {
        readConfigBytes(model.configSpace, offset: offset, size: size)
    }

    func writeConfig(offset: Int, bytes: [UInt8]) {
        // Only `writeback` is writable in virtio_blk_config, and CONFIG_WCE is not offered.
    }

    func activate(features: UInt64, queues: ActiveQueues) throws {
        active = queues
    }

    func queueNotified(_ index: Int) throws {
        guard let active else { return }
        guard let pool else {
            return try active.drain(index, noting: guestLog, queueName: "request queue \(index)") { chain in
                model.process(chain, memory: active.memory)
            }
        }
        let memory = active.memory
        _ = try active.withQueue(index) { queue in
            repeat {
                try queue.disableNotifications()
                while let entry = try queue.popAvailable() {
                    switch entry {
                    case .chain(let chain):
                        pool.submit { [self] worker in
                            let length = models[worker].process(chain, memory: memory)
                            finished.withLock { $0.append((index, chain.head, length)) }
                            try? completionEvent.signalEvent()
                        }
                    case .malformed(let head, let error):
                        guestLog.note("request queue \(index): chain at descriptor \(head) refused: \(error)")
                        try queue.pushUsed(head: head, length: 0)
                    }
                }
            } while try queue.enableNotifications()
        }
        try active.interruptIfNeeded(index)
    }

    /// On the event loop: puts what the workers finished on the used rings of their
    /// queues, then interrupts each queue that got something (once).
    func collectCompletions() {
        _ = completionEvent.drainEvent()
        let done = finished.withLock { list in
            defer { list.removeAll(keepingCapacity: true) }
            return list
        }
        guard !done.isEmpty, let active else { return }
        var touched = Set<Int>()
        do {
            for (index, head, length) in done {
                _ = try active.withQueue(index) { queue in try queue.pushUsed(head: head, length: length) }
                touched.insert(index)
            }
            for index in touched.sorted() { try active.interruptIfNeeded(index) }
        } catch {
            onBrokenRing?(error)
        }
    }

    /// The VM is pausing: nothing may be in flight once this returns.
    func quiesce() {
        pool?.waitIdle()
        collectCompletions()
    }

    func reset() {
        // The workers write into guest memory: let them finish before the queues go.
        pool?.waitIdle()
        _ = completionEvent.drainEvent()
        finished.withLock { $0.removeAll() }
        active = nil
    }
}

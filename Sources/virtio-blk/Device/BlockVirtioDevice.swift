import GuestRAM
import IPC
import LinuxSystem
import Synchronization
import VirtioCore

/// How a disk's requests are served (chosen in `BlockProcessMain`, measured there).
enum BlockServing {
    /// One at a time on the event loop.
    case loop
    /// On worker threads, each with its own model; the loop hands chains over.
    case workers(BlockWorkerPool)
    /// Reads, writes and flushes through an io_uring, submitted and completed on the loop.
    case ring(BlockRingServer)
}

/// The virtio-blk model as the generic device runner drives it: one or more request
/// queues (VIRTIO_BLK_F_MQ, one per vCPU), served by `BlockDeviceModel` straight out of
/// guest memory. Each queue has its own kick and call eventfd; one event loop serves them
/// all, so a queue per vCPU spares the guest its lock on a shared ring and lets each
/// completion interrupt the vCPU that asked.
///
/// With a ring or workers, the event loop takes chains off the rings and starts them;
/// what finishes comes back through `completionEvent`, and the loop puts it on the used
/// ring of the queue it came from and interrupts. So the guest's queue depth reaches
/// the host. Pause and reset wait for the requests in flight (`quiesce`, `reset`).
final class BlockVirtioDevice: VirtioDeviceModel {
    /// One model per worker (the first also serves the loop's and the ring's requests).
    let models: [BlockDeviceModel]
    var model: BlockDeviceModel { models[0] }
    private let serving: BlockServing
    private let guestLog: RateLimitedLog
    private var active: ActiveQueues?
    /// Readable when requests finished off the loop: the ring's eventfd, or one the workers signal.
    let completionEvent: FileDescriptor
    private let finished = Mutex<[(queue: Int, head: UInt16, length: UInt32)]>([])
    /// A ring fault found while completing (outside a kick), for the runner to report.
    var onBrokenRing: ((Error) -> Void)?
    /// The disk's `bandwidth`/`ops` limit (vm.conf), checked before each request is taken.
    var limiter: RateLimiter?
    /// Serves a queue the limiter held back again after so many seconds (the runner's timer).
    var serveAgain: (_ queue: Int, _ seconds: Double) -> Void = { _, _ in }

    init(models: [BlockDeviceModel], serving: BlockServing, guestLog: RateLimitedLog) throws {
        if case .workers(let pool) = serving {
            precondition(pool.workers == models.count, "a model per worker")
        }
        precondition(!models.isEmpty, "a model")
        self.models = models
        self.serving = serving
        self.guestLog = guestLog
        if case .ring(let server) = serving {
            completionEvent = server.completionEvent
        } else {
            completionEvent = try FileDescriptor.eventFD()
        }
        for model in models { model.onFailure = { [guestLog] in guestLog.note($0) } }
    }

    convenience init(model: BlockDeviceModel, guestLog: RateLimitedLog) throws {
        try self.init(models: [model], serving: .loop, guestLog: guestLog)
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
        // The image as it is now: after a live migration, the sender wrote it until it
        // paused, long after this process opened it (a qcow2's tables moved on).
        try model.backend.takeOver()
        active = queues
    }

    func queueNotified(_ index: Int) throws {
        guard let active else { return }
        let memory = active.memory
        let queueName = "request queue \(index)"
        let admit = { [limiter] in limiter?.admits() ?? true }
        let heldBack: Bool
        switch serving {
        case .loop:
            heldBack = try active.serve(index, noting: guestLog, queueName: queueName, admit: admit) { chain in
                charge(chain)
                return model.process(chain, memory: memory)
            }
        case .ring(let server):
            var elsewhere: [(queue: Int, head: UInt16, length: UInt32)] = []
            heldBack = try active.serve(index, noting: guestLog, queueName: queueName, admit: admit, start: { chain in
                charge(chain)
                return server.start(chain, queue: index, memory: memory)
            }, afterPass: { queue in
                // What the submit completed (page-cache hits) goes on the used ring within
                // the pass, so the polling window can catch the guest's next request.
                var here: [(head: UInt16, length: UInt32)] = []
                for done in try server.submit(memory: memory) {
                    if done.queue == index { here.append((done.head, done.length)) } else { elsewhere.append(done) }
                }
                try queue.pushUsed(contentsOf: here)
            })
            publish(elsewhere, active: active)
            publishRingCounters()
        case .workers(let pool):
            heldBack = try active.serve(index, noting: guestLog, queueName: queueName, admit: admit) { chain in
                charge(chain)
                pool.submit { [self] worker in
                    let length = models[worker].process(chain, memory: memory)
                    finished.withLock { $0.append((index, chain.head, length)) }
                    try? completionEvent.signalEvent()
                }
                return nil
            }
        }
        if heldBack, let limiter {
            serveAgain(index, limiter.secondsUntilAdmitted())
            if let (page, _) = model.published { page.store(BlockCounter.throttled.slot(region: 0), UInt64(limiter.refusals)) }
        }
    }

    /// Charges a request to the limiter: one operation, and the bytes of its data buffers
    /// (all but the 16-byte header and the status byte; a flush moves none). What a chain
    /// claims is what the device would move, malformed or not.
    private func charge(_ chain: DescriptorChain) {
        guard let limiter else { return }
        let buffers = chain.readableLength + chain.writableLength
        let framing = VirtioBlock.headerSize + 1
        limiter.charge(bytes: buffers > framing ? buffers - framing : 0)
    }

    /// On the event loop: puts what finished on the used rings of their queues, then
    /// interrupts each queue that got something (once).
    func collectCompletions() {
        guard let active else {
            _ = completionEvent.drainEvent()
            return
        }
        publish(takeFinished(memory: active.memory), active: active)
        publishRingCounters()
    }

    private func takeFinished(memory: GuestMemory) -> [(queue: Int, head: UInt16, length: UInt32)] {
        if case .ring(let server) = serving { return server.collect(memory: memory) }
        _ = completionEvent.drainEvent()
        return finished.withLock { list in
            defer { list.removeAll(keepingCapacity: true) }
            return list
        }
    }

    private func publish(_ done: [(queue: Int, head: UInt16, length: UInt32)], active: ActiveQueues) {
        // Each queue's completions go on its used ring together (one used.idx store).
        var byQueue: [Int: [(head: UInt16, length: UInt32)]] = [:]
        for (index, head, length) in done { byQueue[index, default: []].append((head, length)) }
        do {
            for (index, entries) in byQueue.sorted(by: { $0.key < $1.key }) {
                _ = try active.withQueue(index) { queue in try queue.pushUsed(contentsOf: entries) }
                try active.interruptIfNeeded(index)
            }
        } catch {
            onBrokenRing?(error)
        }
    }

    /// Through the ring the model counts each request but publishes nothing: the loop
    /// publishes once per pass (`BlockDeviceModel.start`). Loop and workers publish their own.
    private func publishRingCounters() {
        if case .ring = serving { model.publishCounters() }
    }

    /// Waits until nothing is in flight; returns what finished meanwhile.
    private func waitIdle() -> [(queue: Int, head: UInt16, length: UInt32)] {
        switch serving {
        case .loop: return []
        case .workers(let pool):
            pool.waitIdle()
        case .ring(let server):
            if let active { return server.waitIdle(memory: active.memory) }
        }
        return active.map { takeFinished(memory: $0.memory) } ?? []
    }

    /// The VM is pausing: nothing may be in flight once this returns.
    func quiesce() {
        let done = waitIdle()
        if let active { publish(done, active: active) }
        publishRingCounters()
    }

    func reset() {
        // Requests in flight write into guest memory: let them finish before the queues go.
        _ = waitIdle()
        _ = completionEvent.drainEvent()
        finished.withLock { $0.removeAll() }
        active = nil
    }
}

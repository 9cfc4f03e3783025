import Glibc
import IPC
import LinuxSystem
import Logging
import BlockDeviceShape
import DiskFormats
import VirtioCore

/// The virtio-blk process: one per disk, started by vmd with its control channel
/// as fd 3. It receives guest memory (SHAREMEM), its disk fd, its eventfds and its
/// channel to the vm process, and serves the request queue straight from KVM's
/// eventfds (design §4). Not meant to be run by hand.
package enum BlockProcessMain {
    package static func run() -> Never {
        DeviceProcessStart.run(identity: "virtio-blk") { logger in
            let start = try DeviceProcessStart()
            guard case .block(let setup, let images, let wiring) = start.setup else {
                throw IPCError.malformed("expected the block device setup")
            }
            logger[metadataKey: "disk"] = "\(setup.name)"
            let backend = try BlockProcessMain.backend(setup, images: images)
            if let qcow2 = backend as? Qcow2Backend, qcow2.clearedAutoclearFeatures & Qcow2Header.AutoclearFeature.bitmaps != 0 {
                logger.warning("the image's persistent dirty bitmaps are now marked inconsistent (swift-vmd does not keep them; QEMU drops them at its next open, and `qemu-img check -r leaks` frees their clusters)")
            }
            if let qcow2 = backend as? Qcow2Backend, qcow2.repairedRefcounts {
                logger.notice("the image was dirty (lazy refcounts: its last writer stopped before it counted its clusters); its refcounts were rebuilt from its tables, as QEMU does")
            }
            // vmd chose the queue count (one per vCPU) and made a kick and a call eventfd for each.
            let queues = wiring.kicks.count
            let raw = backend is RawFileBackend
            var mode = try BlockServingMode.chosen(raw: raw)
            var ring: BlockRingServer?
            let first = try BlockDeviceModel(backend: backend, serial: setup.serial, queueCount: queues)
            if mode == .ring, let ringBackend = backend as? RingBackend {
                do {
                    ring = try BlockRingServer(model: first, backend: ringBackend,
                                               capacity: queues * Int(DeviceShape.blockQueueSize))
                } catch {
                    // io_uring off (kernel.io_uring_disabled) or without restrictions (before 5.10).
                    mode = raw && ringBackend.ringDirect ? .workers : .loop
                    logger.warning("io_uring unavailable (\(error)): requests served \(mode) instead")
                }
            }
            let workers = mode == .workers ? BlockProcessMain.workers : 1
            let models = try [first] + (1..<workers).map { _ in
                try BlockDeviceModel(backend: backend, serial: setup.serial, queueCount: queues)
            }
            let serving: BlockServing = switch (mode, ring) {
            case (.ring, let ring?): .ring(ring)
            case (.workers, _): .workers(BlockWorkerPool(workers: workers))
            default: .loop
            }
            for (region, model) in models.enumerated() where region < BlockCounter.regions {
                model.published = (start.counters, region)
            }
            logger.info("\(queues) request queues, served \(mode)")
            let device = try BlockVirtioDevice(models: models, serving: serving, guestLog: RateLimitedLog(logger: logger))
            let runner = try VirtioDeviceRunner(model: device, memory: start.memory, wiring: wiring, control: start.control, logger: logger)
            device.onBrokenRing = { [unowned runner] in runner.reportBrokenRing($0) }
            if let limiter = RateLimiter(setup.rateLimit) {
                device.limiter = limiter
                device.serveAgain = { [unowned runner] queue, seconds in runner.serveAgain(queue, after: seconds) }
                logger.info("rate limit: \(setup.rateLimit)")
            }
            let completions = try runner.watchReadable(device.completionEvent.rawValue) { device.collectCompletions() }
            ProcessRole.current = "virtio-blk"
            try Sandbox.enter(.block, logger: logger)
            if case .workers(let pool) = serving { try pool.start() }  // under the sandbox, which threads inherit
            try runner.run()
            withExtendedLifetime(completions) {}
            logger.info("served \(device.requestsServed) requests")
        }
    }

    /// Requests in flight at once with workers: enough to keep a device busy, few enough
    /// for two cores.
    static let workers = 4

    /// The disk's backend: its images from the bottom of the chain up (`BlockBackendChain`).
    static func backend(_ setup: BlockDeviceSetup, images: [FileDescriptor]) throws -> BlockBackend {
        try BlockBackendChain.open(formats: setup.formats, images: images, readOnly: setup.readOnly)
    }
}

import Glibc
import IPC
import LinuxSystem
import Logging
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
            // Workers for a raw image under `cache none`, where each request waits for the
            // device: measured, they make QD32 1.6-2.7x faster there. Through the page cache
            // a request takes microseconds and the hand-off to a worker costs more (QD1 reads
            // went from 4 to 43 µs), so writeback disks are served in the loop. A qcow2
            // image's tables are the backend's own: no workers either.
            let workers = (backend as? RawFileBackend)?.direct == true ? BlockProcessMain.workers : 0
            // vmd chose the queue count (one per vCPU) and made a kick and a call eventfd for each.
            let queues = wiring.kicks.count
            let models = try (0..<max(workers, 1)).map { _ in
                try BlockDeviceModel(backend: backend, serial: setup.serial, queueCount: queues)
            }
            let pool = workers > 0 ? BlockWorkerPool(workers: workers) : nil
            let device = try BlockVirtioDevice(models: models, pool: pool, guestLog: RateLimitedLog(logger: logger))
            let runner = try VirtioDeviceRunner(model: device, memory: start.memory, wiring: wiring, control: start.control, logger: logger)
            device.onBrokenRing = { [unowned runner] in runner.reportBrokenRing($0) }
            let completions = try runner.watchReadable(device.completionEvent.rawValue) { device.collectCompletions() }
            ProcessRole.current = "virtio-blk"
            try Sandbox.enter(.block, logger: logger)
            try pool?.start()  // under the sandbox, which every new thread inherits
            try runner.run()
            withExtendedLifetime(completions) {}
            logger.info("served \(device.requestsServed) requests")
        }
    }

    /// Requests in flight at once on a raw disk: enough to keep a device busy, few
    /// enough for two cores.
    static let workers = 4

    /// The disk's backend: its images from the bottom of the chain up, each reading
    /// through to the one below; only the top may be written.
    static func backend(_ setup: BlockDeviceSetup, images: [FileDescriptor]) throws -> BlockBackend {
        var below: BlockBackend?
        for (depth, (format, file)) in zip(setup.formats, images).enumerated().reversed() {
            let readOnly = depth > 0 || setup.readOnly
            switch format {
            case .raw: below = try RawFileBackend(file: file, readOnly: readOnly)
            case .qcow2: below = try Qcow2Backend(file: file, readOnly: readOnly, backing: below)
            }
        }
        guard let top = below else { throw IPCError.malformed("a disk without images") }
        return top
    }
}

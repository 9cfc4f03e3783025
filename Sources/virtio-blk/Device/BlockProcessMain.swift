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
            guard case .block(let setup, let disk, let wiring) = start.setup else {
                throw IPCError.malformed("expected the block device setup")
            }
            logger[metadataKey: "disk"] = "\(setup.name)"
            let model = try BlockDeviceModel(backend: try RawFileBackend(file: disk, readOnly: setup.readOnly), serial: setup.serial)
            let device = BlockVirtioDevice(model: model, guestLog: RateLimitedLog(logger: logger))
            let runner = try VirtioDeviceRunner(model: device, memory: start.memory, wiring: wiring, control: start.control, logger: logger)
            ProcessRole.current = "virtio-blk"
            try Sandbox.enter(.block, logger: logger)
            try runner.run()
            logger.info("served \(model.counters.requests) requests")
        }
    }
}

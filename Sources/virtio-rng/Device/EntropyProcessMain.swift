import IPC
import LinuxSystem
import Logging
import VirtioCore

/// The virtio-rng process: one per VM that asks for `entropy`, started by vmd with
/// its control channel as fd 3. It receives guest memory (SHAREMEM), its eventfds and
/// its channel to the vm process; once sandboxed it may call getrandom and nothing
/// that reaches a file, a socket or the network. Not meant to be run by hand.
package enum EntropyProcessMain {
    package static func run() -> Never {
        DeviceProcessStart.run(identity: "virtio-rng") { logger in
            let start = try DeviceProcessStart()
            guard case .entropy(let setup, let wiring) = start.setup else {
                throw IPCError.malformed("expected the entropy device setup")
            }
            logger[metadataKey: "rng"] = "\(setup.name)"
            let device = EntropyVirtioDevice(guestLog: RateLimitedLog(logger: logger))
            let runner = try VirtioDeviceRunner(model: device, memory: start.memory, wiring: wiring, control: start.control, logger: logger)
            ProcessRole.current = "virtio-rng"
            try Sandbox.enter(.entropy, logger: logger)
            try runner.run()
            logger.info("served \(device.bytesServed) bytes in \(device.requests) requests")
        }
    }
}

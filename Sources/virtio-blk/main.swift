import Glibc
import Logging
import Shared

// The virtio-blk process: one per disk, started by vmd with its control channel
// as fd 3. It receives guest memory (SHAREMEM), its disk fd, its eventfds and its
// channel to the vm process, and serves the request queue straight from KVM's
// eventfds (design §4). Not meant to be run by hand.
VmdLog.bootstrapChild(identity: "virtio-blk")
var logger = Logger(label: "virtio-blk")
do {
    try ChildSetup.dieWithParent()
    let control = ChildSetup.inheritedChannel()
    guard case .shareMemory(let slots, let memfds) = try control.receive(DeviceSetupCommand.self) else {
        throw IPCError.malformed("expected shareMemory first")
    }
    let memory = try GuestMemory.mapShared(slots: slots, memfds: memfds)
    guard case .block(let setup, let disk, let wiring) = try control.receive(DeviceSetupCommand.self) else {
        throw IPCError.malformed("expected the block device setup")
    }
    logger[metadataKey: "disk"] = "\(setup.name)"
    let model = try BlockDeviceModel(backend: try RawFileBackend(file: disk, readOnly: setup.readOnly), serial: setup.serial)
    let device = BlockVirtioDevice(model: model, guestLog: RateLimitedLog(logger: logger))
    let runner = try VirtioDeviceRunner(model: device, memory: memory, wiring: wiring, control: control, logger: logger)
    ProcessRole.current = "virtio-blk"
    try Sandbox.enter(.block, logger: logger)
    try runner.run()
    logger.info("served \(model.counters.requests) requests")
} catch {
    logger.critical("\(error)")
    exit(70)
}
exit(0)

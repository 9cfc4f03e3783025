import IPC
import LinuxSystem
import VirtioCore

/// The virtio-blk model as the generic device runner drives it: one request
/// queue, served by `BlockDeviceModel` straight out of guest memory.
final class BlockVirtioDevice: VirtioDeviceModel {
    let model: BlockDeviceModel
    private let guestLog: RateLimitedLog
    private var active: ActiveQueues?

    init(model: BlockDeviceModel, guestLog: RateLimitedLog) {
        self.model = model
        self.guestLog = guestLog
        model.onFailure = { [guestLog] in guestLog.note($0) }
    }

    var description: DeviceDescription {
        DeviceDescription(type: .block, features: model.deviceFeatures, queueCount: UInt16(model.queueCount),
                          maximumQueueSize: model.maximumQueueSize, configSize: UInt32(model.configSpace.count))
    }

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
        try active.drain(index, noting: guestLog, queueName: "request queue") { chain in model.process(chain, memory: active.memory) }
    }

    func reset() {
        active = nil
    }
}

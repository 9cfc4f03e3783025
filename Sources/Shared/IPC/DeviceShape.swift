/// The part of a virtio device that is fixed by its kind: its type, how many queues it
/// has and how large they may be. Each device declares its shape once, in a small
/// target of its own beside its library (`DeviceShape.block`, `DeviceShape.network`);
/// vmd builds each VM's wiring (a kick and a call eventfd per queue) from it, hands
/// it to vm in the attachment, and the device's own description uses it too.
public struct DeviceShape: Equatable, Sendable {
    public var type: VirtioDeviceType
    public var queueCount: UInt16
    public var maximumQueueSize: UInt16

    public init(type: VirtioDeviceType, queueCount: UInt16, maximumQueueSize: UInt16) {
        self.type = type
        self.queueCount = queueCount
        self.maximumQueueSize = maximumQueueSize
    }

    /// What a device's description must agree with.
    public func matches(_ description: DeviceDescription) -> Bool {
        description.type == type && description.queueCount == queueCount && description.maximumQueueSize == maximumQueueSize
    }
}

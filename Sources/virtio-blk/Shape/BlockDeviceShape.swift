import IPC

extension DeviceShape {
    /// virtio-blk: one request queue of up to 256 descriptors.
    public static let block = DeviceShape(type: .block, queueCount: 1, maximumQueueSize: 256)
}

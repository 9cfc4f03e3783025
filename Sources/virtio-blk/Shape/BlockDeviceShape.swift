import IPC

extension DeviceShape {
    /// The most request queues a disk gets. Each costs the guest a ring and an MSI-X
    /// vector and the host two eventfds and a GSI; past this, guest CPUs share queues.
    public static let maximumBlockQueues = 16
    /// Descriptors per request queue.
    public static let blockQueueSize: UInt16 = 256

    /// virtio-blk: `queues` request queues (VIRTIO_BLK_F_MQ) of up to 256 descriptors.
    /// vmd gives a disk one queue per vCPU, as QEMU does, up to `maximumBlockQueues`.
    public static func block(queues: Int) -> DeviceShape {
        DeviceShape(type: .block, queueCount: UInt16(min(max(queues, 1), maximumBlockQueues)),
                    maximumQueueSize: blockQueueSize)
    }
}

import IPC

extension DeviceShape {
    /// virtio-rng (virtio 1.2 §5.4): one request queue of up to 64 descriptors.
    public static let entropy = DeviceShape(type: .entropy, queueCount: 1, maximumQueueSize: 64)
}

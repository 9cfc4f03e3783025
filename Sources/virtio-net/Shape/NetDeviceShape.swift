import IPC

extension DeviceShape {
    /// virtio-net: a receive and a transmit queue (no MQ, no control queue), up to 256 descriptors each.
    public static let network = DeviceShape(type: .network, queueCount: 2, maximumQueueSize: 256)
}

import IPC

extension DeviceShape {
    /// The most queue pairs a NIC gets. Each costs the guest two rings and two MSI-X vectors
    /// and the host a tap queue, two eventfds each way and two GSIs; past this, guest CPUs
    /// share pairs (as block queues do past `maximumBlockQueues`).
    public static let maximumNetQueuePairs = 16
    /// Descriptors per receive, transmit and control queue.
    public static let netQueueSize: UInt16 = 256

    /// virtio-net with `queuePairs` receive/transmit pairs (virtio 1.2 §5.1.2: receiveq1,
    /// transmitq1, …, receiveqN, transmitqN) and after them the control queue, which carries
    /// VQ_PAIRS_SET (VIRTIO_NET_F_MQ) and the guest's announcement acks (GUEST_ANNOUNCE).
    /// vmd gives a NIC one pair per vCPU, up to the maximum.
    public static func network(queuePairs: Int) -> DeviceShape {
        DeviceShape(type: .network, queueCount: UInt16(2 * netQueuePairs(vcpus: queuePairs) + 1), maximumQueueSize: netQueueSize)
    }

    /// The queue pairs a NIC of a VM with `vcpus` vCPUs gets: one each, within 1...maximum.
    public static func netQueuePairs(vcpus: Int) -> Int { min(max(vcpus, 1), maximumNetQueuePairs) }
}

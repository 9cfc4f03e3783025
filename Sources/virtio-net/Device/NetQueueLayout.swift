import IPC
import NetDeviceShape

/// How a virtio-net device's queues are numbered (virtio 1.2 §5.1.2): receiveq1, transmitq1,
/// …, receiveqN, transmitqN, then controlq. N is the device's `max_virtqueue_pairs` when the
/// driver negotiated VIRTIO_NET_F_MQ, else 1, so the control queue of a driver that took
/// CTRL_VQ without MQ is queue 2 whatever the device's size.
struct NetQueueLayout: Equatable, Sendable {
    /// Queue pairs the device has (`max_virtqueue_pairs`), 1...maximumNetQueuePairs.
    let pairs: Int

    init(pairs: Int) {
        precondition((1...DeviceShape.maximumNetQueuePairs).contains(pairs), "queue pairs within the shape's limit")
        self.pairs = pairs
    }

    var shape: DeviceShape { .network(queuePairs: pairs) }
    var queueCount: Int { Int(shape.queueCount) }
    /// Every device has the control queue and offers GUEST_ANNOUNCE (which needs it,
    /// §5.1.3.1); one of more than one pair offers MQ too.
    var features: UInt64 {
        VirtioNetFeature.controlQueue | VirtioNetFeature.guestAnnounce | (pairs > 1 ? VirtioNetFeature.multiqueue : 0)
    }

    static func receiveQueue(ofPair pair: Int) -> Int { 2 * pair }

    /// What queue `index` is for a driver that negotiated `features`.
    enum Role: Equatable {
        case receive(pair: Int)
        case transmit(pair: Int)
        case control
        /// Beyond the pairs the driver sees (no MQ), or no queue at all.
        case none
    }

    func role(ofQueue index: Int, features: UInt64) -> Role {
        let visiblePairs = features & VirtioNetFeature.multiqueue != 0 ? pairs : 1
        if index >= 0 && index < 2 * visiblePairs { return index % 2 == 0 ? .receive(pair: index / 2) : .transmit(pair: index / 2) }
        if index == 2 * visiblePairs && features & VirtioNetFeature.controlQueue != 0 { return .control }
        return .none
    }
}

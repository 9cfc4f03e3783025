/// A command on the control queue (virtio 1.2 §5.1.6.5): `struct virtio_net_ctrl` is a class
/// and a command byte and the command's data in the device-readable part of the chain, then
/// one device-writable `ack` byte. Parsing is pure: the bytes the device copied out once.
enum NetControlCommand: Equatable, Sendable {
    /// VIRTIO_NET_CTRL_MQ / VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (§5.1.6.5.5): use this many pairs.
    case setQueuePairs(Int)
    /// VIRTIO_NET_CTRL_ANNOUNCE / VIRTIO_NET_CTRL_ANNOUNCE_ACK (§5.1.6.5.4): the driver sent
    /// its announcements; the device clears VIRTIO_NET_S_ANNOUNCE.
    case acknowledgeAnnounce
    /// A class or command the device does not offer (RX mode, MAC table, VLAN, RSS,
    /// offloads, coalescing): answered VIRTIO_NET_ERR.
    case unsupported(class: UInt8, command: UInt8)

    static let classAnnounce: UInt8 = 3
    static let commandAnnounceAck: UInt8 = 0
    static let classMultiqueue: UInt8 = 4
    static let commandSetQueuePairs: UInt8 = 0
    /// The ack values (§5.1.6.5).
    static let ok: UInt8 = 0
    static let error: UInt8 = 1
    /// More readable bytes than any command this device takes (the MAC table's is the largest
    /// a driver sends, and it is not offered): such a chain is refused before it is copied.
    static let maximumLength = 256

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case shorterThanHeader(Int)
        /// A command with data of another length than its own (VQ_PAIRS_SET's 2-byte
        /// `virtqueue_pairs`, ANNOUNCE_ACK's none).
        case badLength(command: String, length: Int)

        var description: String {
            switch self {
            case .shorterThanHeader(let length): "\(length) readable bytes, fewer than class and command (§5.1.6.5)"
            case .badLength(let command, let length): "\(command) with \(length) bytes of data"
            }
        }
    }

    /// `bytes`: the readable part of the chain, header included.
    static func parse(_ bytes: [UInt8]) -> Result<NetControlCommand, ParseError> {
        guard bytes.count >= 2 else { return .failure(.shorterThanHeader(bytes.count)) }
        let (commandClass, command) = (bytes[0], bytes[1])
        let data = bytes.dropFirst(2)
        if commandClass == classAnnounce && command == commandAnnounceAck {
            // No command-specific data.
            guard data.isEmpty else { return .failure(.badLength(command: "ANNOUNCE_ACK", length: data.count)) }
            return .success(.acknowledgeAnnounce)
        }
        guard commandClass == classMultiqueue && command == commandSetQueuePairs else {
            return .success(.unsupported(class: commandClass, command: command))
        }
        // struct virtio_net_ctrl_mq { le16 virtqueue_pairs; }
        guard data.count == 2 else { return .failure(.badLength(command: "VQ_PAIRS_SET", length: data.count)) }
        return .success(.setQueuePairs(Int(data[data.startIndex]) | Int(data[data.startIndex + 1]) << 8))
    }
}

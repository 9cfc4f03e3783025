import Glibc
import NetDeviceShape
import GuestRAM
import LinuxSystem
import IPC
import VirtioCore

/// A configuration the device model refuses (host side, reported at startup).
enum NetDeviceConfigurationError: Error, Equatable, CustomStringConvertible {
    case macNotUnicast(MACAddress)
    case offloads(String)

    var description: String {
        switch self {
        case .macNotUnicast(let mac): "MAC address \(mac) is zero or multicast"
        case .offloads(let problem): "offloads: \(problem)"
        }
    }
}

/// One queue pair of the virtio network device and its tap queue: the transmit path here,
/// the receive path in NetDeviceModel+Receive. `NetVirtioDevice` has one per pair and adds
/// what the device has once (the control queue, the pairs in use).
/// Single-threaded: the device process's event loop owns it.
final class NetDeviceModel {
    /// The first pair's queues (§5.1.2), the only ones of a device without MQ.
    static let receiveQueue = 0
    static let transmitQueue = 1
    static let maximumQueueSize = DeviceShape.netQueueSize
    /// The largest frame after the header: §5.1.6.3.1 has drivers post 65562-byte buffers
    /// (12-byte header + 65550) when TSO can produce one.
    static let maximumFrameLength = 65550
    static let maximumPacketLength = VirtioNetHeader.size + maximumFrameLength
    /// §5.1.6.3.1: without MRG_RXBUF and GUEST_TSO, 1526-byte buffers (header + 1514) suffice.
    static let smallPacketLength = VirtioNetHeader.size + 1514
    static let ethernetHeaderLength = 14
    /// Frames the device made itself (DHCP replies) waiting for receive buffers.
    static let maximumLocalFrames = 16

    /// VIRTIO_NET_S_LINK_UP and VIRTIO_NET_S_ANNOUNCE (§5.1.4).
    static let statusLinkUp: UInt16 = 1
    static let statusAnnounce: UInt16 = 2

    let mac: MACAddress
    let offloads: NetOffloads
    let backend: NetBackend
    let dhcp: DHCPResponder?
    /// What a device of one pair offers; `NetQueueLayout` adds MQ and CTRL_VQ for more.
    let deviceFeatures: UInt64

    var counters = NetDeviceCounters()
    /// The interface's limit on what the guest receives from the tap (its own frames, DHCP
    /// replies, are not counted); nil for none.
    var receiveLimiter: RateLimiter?
    /// Called with a one-line description of each dropped packet; the event loop passes a
    /// rate-limited logger (design §7).
    var onFailure: ((String) -> Void)?

    /// Receive chains taken from the ring but not used yet (NetDeviceModel+Receive).
    var heldReceiveBuffers: [ReceiveBuffer] = []
    /// Frames for the driver that did not come from the tap, oldest first.
    var localFrames: [[UInt8]] = []
    /// The iovecs of the packet being sent or received, reused (no allocation per packet).
    let transmitVectors = IOVectorBuffer()
    let receiveVectors = IOVectorBuffer()

    init(mac: MACAddress, offloads: NetOffloads = [], backend: NetBackend, dhcp: DHCPResponder? = nil)
        throws(NetDeviceConfigurationError)
    {
        guard !mac.isMulticast && !mac.isZero else { throw .macNotUnicast(mac) }
        if let problem = offloads.missingDependency { throw .offloads(problem) }
        self.mac = mac
        self.offloads = offloads
        self.backend = backend
        self.dhcp = dhcp
        deviceFeatures = VirtioFeature.version1 | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors
            | VirtioNetFeature.mac | VirtioNetFeature.status | VirtioNetFeature.mergeableReceiveBuffers
            | offloads.rawValue
    }

    // MARK: Configuration space

    /// `struct virtio_net_config` (§5.1.4) up to `mtu`, little-endian.
    static let configSpaceSize = 12

    static func makeConfigSpace(mac: MACAddress, queuePairs: Int, status: UInt16 = statusLinkUp) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: configSpaceSize)
        bytes.replaceSubrange(0..<6, with: mac.bytes)        // u8 mac[6]
        bytes[6] = UInt8(status & 0xFF)                      // le16 status
        bytes[7] = UInt8(status >> 8)
        bytes[8] = UInt8(truncatingIfNeeded: queuePairs)     // le16 max_virtqueue_pairs (read with MQ)
        bytes[9] = UInt8(truncatingIfNeeded: queuePairs >> 8)
        // 10: le16 mtu, zero: VIRTIO_NET_F_MTU not offered
        return bytes
    }

    /// Forgets every chain and frame tied to the driver's queues (device reset).
    func resetQueues() {
        heldReceiveBuffers = []
        localFrames = []
    }

    // MARK: Transmit

    /// Sends the packet of one transmit chain to the backend: the checked copy of its header,
    /// then the frame straight from guest memory. Returns the used length, always 0 (the
    /// device writes nothing into a transmit chain, §5.1.6.2). Bad packets are dropped and
    /// counted; the queue goes on.
    func transmit(_ chain: DescriptorChain, memory: GuestMemory, features: UInt64) -> UInt32 {
        do {
            try send(chain, memory: memory, features: features)
        } catch {
            count(error)
            onFailure?("virtio-net: transmit chain \(chain.head) dropped: \(error)")
        }
        return 0
    }

    private func send(_ chain: DescriptorChain, memory: GuestMemory, features: UInt64) throws(TransmitDrop) {
        guard chain.writable.isEmpty else { throw .writableBuffers }
        let total = chain.readableLength
        guard total >= UInt64(VirtioNetHeader.size) else { throw .shorterThanHeader(total) }
        guard total <= UInt64(Self.maximumPacketLength) else { throw .tooLong(total) }
        let frameLength = Int(total) - VirtioNetHeader.size
        guard frameLength >= Self.ethernetHeaderLength else { throw .runt(frameLength) }
        let packet = chain.readable
        // Header plus one iovec per buffer at least: more than writev takes is refused first.
        guard packet.count < IOVectorBuffer.maximumCount else { throw .tooManySegments(packet.count) }

        // One copy of the header, checked, and that copy is what the tap gets (design §2:
        // never read a guest field twice). It lives on the stack: no allocation per packet.
        // SAFETY: the temporary is exactly one header, used only inside the closure.
        let result = try withUnsafeTemporaryAllocation(byteCount: VirtioNetHeader.size, alignment: 8) {
            headerCopy throws(TransmitDrop) -> NetTransfer? in
            do { try packet.copyBytes(from: 0, into: headerCopy, memory: memory) } catch { throw .guestMemory("\(error)") }
            var header = VirtioNetHeader(parsing: headerCopy)!
            do throws(VirtioNetHeaderError) {
                try header.validateForTransmit(frameLength: frameLength, features: features)
            } catch {
                throw .badHeader(error)
            }
            // §5.1.6.2.1: num_buffers is the driver's to zero; the tap gets zero whatever it wrote.
            header.bufferCount = 0

            if let dhcp, header.gsoType == VirtioNetHeader.GSOType.none, frameLength <= DHCPResponder.maximumRequestLength,
               let reply = answerDHCP(dhcp, packet: packet, frameLength: frameLength, memory: memory)
            {
                counters.dhcpReplies += 1
                enqueueLocalFrame(reply)
                return nil
            }

            header.store(into: headerCopy)
            transmitVectors.removeAll()
            // SAFETY: headerCopy outlives the writev that reads it (same closure).
            _ = transmitVectors.append(UnsafeRawBufferPointer(headerCopy))
            let fits: Bool
            do {
                fits = try packet.appendSlices(from: UInt64(VirtioNetHeader.size), count: UInt64(frameLength),
                                               forWriting: false, memory: memory, to: transmitVectors)
            } catch {
                throw .guestMemory("\(error)")
            }
            guard fits else { throw .tooManySegments(packet.count) }
            do { return try backend.writePacket(from: transmitVectors) } catch { throw .backendError("\(error)") }
        }
        guard let result else { return }  // answered here (DHCP)
        guard case .packet = result else { throw .backendBusy }
        counters.txPackets += 1
        counters.txBytes += UInt64(frameLength)
    }

    /// The reply to a DHCP request in the frame, if it is one: the frame is copied out only
    /// when its first bytes, looked at on the stack, look like a DHCP request.
    private func answerDHCP(_ dhcp: DHCPResponder, packet: ArraySlice<DescriptorBuffer>, frameLength: Int,
                            memory: GuestMemory) -> [UInt8]? {
        let frameStart = UInt64(VirtioNetHeader.size)
        let prefixLength = min(frameLength, DHCPResponder.candidatePrefixLength)
        // SAFETY: prefixLength <= candidatePrefixLength (the temporary's size), and the prefix is used only inside.
        let candidate = withUnsafeTemporaryAllocation(byteCount: DHCPResponder.candidatePrefixLength, alignment: 1) { buffer in
            let prefix = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<prefixLength])
            guard (try? packet.copyBytes(from: frameStart, into: prefix, memory: memory)) != nil else { return false }
            return DHCPResponder.mightBeRequest(UnsafeRawBufferPointer(prefix))
        }
        guard candidate else { return nil }
        var frame = [UInt8](repeating: 0, count: frameLength)
        // SAFETY: copyBytes writes at most frame.count bytes (it checks the destination's size).
        let copied = frame.withUnsafeMutableBytes { (try? packet.copyBytes(from: frameStart, into: $0, memory: memory)) != nil }
        return copied ? dhcp.reply(to: frame) : nil
    }

    /// Queues a frame for the driver that did not come from the tap.
    func enqueueLocalFrame(_ frame: [UInt8]) {
        guard localFrames.count < Self.maximumLocalFrames else {
            counters.rxDropped.localQueueFull += 1
            return
        }
        localFrames.append(frame)
    }

    private func count(_ drop: TransmitDrop) {
        switch drop {
        case .writableBuffers: counters.txDropped.writableBuffers += 1
        case .shorterThanHeader: counters.txDropped.shorterThanHeader += 1
        case .tooLong: counters.txDropped.tooLong += 1
        case .runt: counters.txDropped.runt += 1
        case .guestMemory: counters.txDropped.guestMemory += 1
        case .tooManySegments: counters.txDropped.tooManySegments += 1
        case .badHeader: counters.txDropped.badHeader += 1
        case .backendBusy: counters.txDropped.backendBusy += 1
        case .backendError: counters.txDropped.backendError += 1
        }
    }
}

/// Why one transmit chain was dropped (for the log line; `NetTransmitDrops` counts them).
enum TransmitDrop: Error, CustomStringConvertible {
    case writableBuffers
    case shorterThanHeader(UInt64)
    case tooLong(UInt64)
    case runt(Int)
    case guestMemory(String)
    case tooManySegments(Int)
    case badHeader(VirtioNetHeaderError)
    case backendBusy
    case backendError(String)

    var description: String {
        switch self {
        case .writableBuffers: "device-writable buffers in a transmit chain (§5.1.6.2)"
        case .shorterThanHeader(let length): "\(length) bytes, shorter than the 12-byte header (§5.1.6)"
        case .tooLong(let length): "\(length) bytes, more than header + 65550 (§5.1.6.3.1)"
        case .runt(let length): "\(length)-byte frame, shorter than an Ethernet header"
        case .guestMemory(let error): "buffer not accessible: \(error)"
        case .tooManySegments(let count): "\(count) pieces, more than writev takes"
        case .badHeader(let error): "header: \(error)"
        case .backendBusy: "tap queue full"
        case .backendError(let error): "tap: \(error)"
        }
    }
}

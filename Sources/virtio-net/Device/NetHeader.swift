/// `struct virtio_net_hdr` (virtio 1.2 §5.1.6) with VIRTIO_F_VERSION_1: 12 bytes,
/// little-endian, in front of every packet on both queues. A tap opened with
/// IFF_VNET_HDR and TUNSETVNETHDRSZ 12 uses the same layout (Linux reads and writes
/// the first 10 bytes and skips `num_buffers`).
struct VirtioNetHeader: Equatable, Sendable {
    static let size = 12

    /// Bits of `flags` (§5.1.6).
    enum Flag {
        static let needsChecksum: UInt8 = 1
        static let dataValid: UInt8 = 2
        static let rscInfo: UInt8 = 4
    }

    /// Values of `gsoType` (§5.1.6), without the ECN bit.
    enum GSOType {
        static let none: UInt8 = 0
        static let tcpV4: UInt8 = 1
        static let udp: UInt8 = 3
        static let tcpV6: UInt8 = 4
        static let udpL4: UInt8 = 5
        static let ecn: UInt8 = 0x80
    }

    var flags: UInt8 = 0
    var gsoType: UInt8 = GSOType.none
    var headerLength: UInt16 = 0
    var gsoSize: UInt16 = 0
    var checksumStart: UInt16 = 0
    var checksumOffset: UInt16 = 0
    var bufferCount: UInt16 = 0

    /// Reads the 12 bytes at the start of `bytes`; nil when there are fewer.
    init?<Bytes: Collection<UInt8>>(parsing bytes: Bytes) where Bytes.Index == Int {
        guard bytes.count >= Self.size else { return nil }
        let base = bytes.startIndex
        func u16(_ offset: Int) -> UInt16 { UInt16(bytes[base + offset]) | UInt16(bytes[base + offset + 1]) << 8 }
        flags = bytes[base]
        gsoType = bytes[base + 1]
        headerLength = u16(2)
        gsoSize = u16(4)
        checksumStart = u16(6)
        checksumOffset = u16(8)
        bufferCount = u16(10)
    }

    init(flags: UInt8 = 0, gsoType: UInt8 = GSOType.none, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
         checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0, bufferCount: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
        self.bufferCount = bufferCount
    }

    /// Writes the 12 bytes to the start of `buffer`.
    // SAFETY: callers pass a buffer of at least VirtioNetHeader.size (12) bytes; every store is inside it (offsets 0-11), unaligned stores allowed.
    func store(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.size, "room for the header")
        buffer[0] = flags
        buffer[1] = gsoType
        buffer.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        buffer.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        buffer.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        buffer.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
        buffer.storeBytes(of: bufferCount.littleEndian, toByteOffset: 10, as: UInt16.self)
    }

    var bytes: [UInt8] {
        func le(_ value: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8)] }
        return [flags, gsoType] + le(headerLength) + le(gsoSize) + le(checksumStart) + le(checksumOffset) + le(bufferCount)
    }

    // MARK: Checks

    /// Checks a header the driver put in front of a packet on the transmit queue against the
    /// negotiated `features` and the length of the frame after it (§5.1.6.2.1). The device
    /// never trusts it further: what it sends to the tap is this checked copy.
    func validateForTransmit(frameLength: Int, features: UInt64) throws(VirtioNetHeaderError) {
        // §5.1.6.2.1: the driver MUST NOT set DATA_VALID or RSC_INFO; other bits are undefined.
        guard flags & ~Flag.needsChecksum == 0 else { throw .unknownFlags(flags) }
        if flags & Flag.needsChecksum != 0 {
            // §5.1.6.2.1: flags MUST be zero unless VIRTIO_NET_F_CSUM was negotiated.
            guard features & VirtioNetFeature.checksum != 0 else { throw .checksumNotNegotiated }
            // §5.1.6.2: the checksum is stored at csum_start + csum_offset, 2 bytes, inside the frame.
            let end = Int(checksumStart) + Int(checksumOffset) + 2
            guard end <= frameLength else {
                throw .checksumOutsideFrame(start: checksumStart, offset: checksumOffset, frameLength: frameLength)
            }
        }
        let type = gsoType
        guard type != GSOType.none else { return }
        // §5.1.6.2.1: ECN needs VIRTIO_NET_F_HOST_ECN (not offered); UFO is not offered (Linux
        // guests stopped using it in 4.14; USO replaced it).
        let needed: UInt64
        switch type {
        case GSOType.tcpV4: needed = VirtioNetFeature.hostTSO4
        case GSOType.tcpV6: needed = VirtioNetFeature.hostTSO6
        case GSOType.udpL4: needed = VirtioNetFeature.hostUSO
        default: throw .unknownGSOType(type)
        }
        guard features & needed != 0 else { throw .gsoNotNegotiated(type) }
        // §5.1.6.2.1: with a gso_type the driver MUST set NEEDS_CSUM and gso_size (the MSS).
        guard flags & Flag.needsChecksum != 0 else { throw .gsoWithoutChecksum }
        guard gsoSize > 0 else { throw .gsoSizeZero }
        // hdr_len counts the headers in front of the payload: at most the frame.
        guard Int(headerLength) <= frameLength else { throw .headerLengthOutsideFrame(headerLength, frameLength: frameLength) }
    }

    /// Makes a header the tap put in front of a received packet fit the negotiated `features`
    /// (§5.1.6.4.1), or says why the packet cannot be given to the driver.
    func adjustedForReceive(features: UInt64) throws(VirtioNetHeaderError) -> VirtioNetHeader {
        var header = self
        if features & VirtioNetFeature.guestChecksum == 0 {
            // §5.1.6.4.1: without GUEST_CSUM the device MUST set flags to zero. A packet with a
            // partial checksum cannot be delivered then; DATA_VALID is only a hint and is dropped.
            guard flags & Flag.needsChecksum == 0 else { throw .checksumNotNegotiated }
            header.flags = 0
        } else {
            header.flags &= Flag.needsChecksum | Flag.dataValid
        }
        switch gsoType {
        case GSOType.none: break
        // §5.1.6.4.1: a GSO type only if the matching GUEST_TSO/GUEST_USO feature was negotiated
        // (UDP_L4 carries no IP version: the tap sends it only when the driver took both).
        case GSOType.tcpV4 where features & VirtioNetFeature.guestTSO4 != 0: break
        case GSOType.tcpV6 where features & VirtioNetFeature.guestTSO6 != 0: break
        case GSOType.udpL4 where NetOffloads.receivesUSO(features): break
        default: throw .gsoNotNegotiated(gsoType)
        }
        return header
    }
}

/// Why a virtio-net header is refused; each case cites the rule it enforces.
enum VirtioNetHeaderError: Error, Equatable, CustomStringConvertible {
    case unknownFlags(UInt8)
    case checksumNotNegotiated
    case checksumOutsideFrame(start: UInt16, offset: UInt16, frameLength: Int)
    case unknownGSOType(UInt8)
    case gsoNotNegotiated(UInt8)
    case gsoWithoutChecksum
    case gsoSizeZero
    case headerLengthOutsideFrame(UInt16, frameLength: Int)

    var description: String {
        switch self {
        case .unknownFlags(let flags): "flags 0x\(String(flags, radix: 16)) (only NEEDS_CSUM allowed, §5.1.6.2.1)"
        case .checksumNotNegotiated: "NEEDS_CSUM without the checksum feature (§5.1.6.2.1, §5.1.6.4.1)"
        case .checksumOutsideFrame(let start, let offset, let length):
            "checksum at \(start)+\(offset) outside a \(length)-byte frame (§5.1.6.2)"
        case .unknownGSOType(let type): "gso_type \(type) not supported (§5.1.6.2.1)"
        case .gsoNotNegotiated(let type): "gso_type \(type) without its feature (§5.1.6.2.1)"
        case .gsoWithoutChecksum: "GSO without NEEDS_CSUM (§5.1.6.2.1)"
        case .gsoSizeZero: "GSO with gso_size 0 (§5.1.6.2.1)"
        case .headerLengthOutsideFrame(let length, let frame): "hdr_len \(length) beyond a \(frame)-byte frame"
        }
    }
}

import CLinux

/// Feature bits of the network device (virtio 1.2 §5.1.3).
enum VirtioNetFeature {
    static let checksum: UInt64 = 1 << 0
    static let guestChecksum: UInt64 = 1 << 1
    static let mac: UInt64 = 1 << 5
    static let guestTSO4: UInt64 = 1 << 7
    static let guestTSO6: UInt64 = 1 << 8
    static let hostTSO4: UInt64 = 1 << 11
    static let hostTSO6: UInt64 = 1 << 12
    static let mergeableReceiveBuffers: UInt64 = 1 << 15
    static let status: UInt64 = 1 << 16
    static let controlQueue: UInt64 = 1 << 17
    static let guestAnnounce: UInt64 = 1 << 21
    static let multiqueue: UInt64 = 1 << 22
    static let guestUSO4: UInt64 = 1 << 54
    static let guestUSO6: UInt64 = 1 << 55
    static let hostUSO: UInt64 = 1 << 56

    /// The receive offloads that can hand the driver a packet larger than one Ethernet frame.
    static let guestSegmentation = guestTSO4 | guestTSO6 | guestUSO4 | guestUSO6
}

/// The offloads the device offers on top of the base features, as virtio feature bits.
/// What the guest may send (CSUM, HOST_TSO*, HOST_USO) goes to the tap in the vnet header,
/// which a tap with IFF_VNET_HDR always takes (UDP_L4 segments from Linux 6.2, the kernel
/// that also accepts TUN_F_USO*); what the guest may receive (GUEST_CSUM, GUEST_TSO*,
/// GUEST_USO*) the tap hands over only after TUNSETOFFLOAD with the matching TUN_F_* flags
/// (vmd probes them, the device sets them for what the driver negotiated).
struct NetOffloads: OptionSet, Sendable, CustomStringConvertible {
    let rawValue: UInt64
    init(rawValue: UInt64) { self.rawValue = rawValue }

    static let checksum = NetOffloads(rawValue: VirtioNetFeature.checksum)
    static let guestChecksum = NetOffloads(rawValue: VirtioNetFeature.guestChecksum)
    static let hostTSO4 = NetOffloads(rawValue: VirtioNetFeature.hostTSO4)
    static let hostTSO6 = NetOffloads(rawValue: VirtioNetFeature.hostTSO6)
    static let guestTSO4 = NetOffloads(rawValue: VirtioNetFeature.guestTSO4)
    static let guestTSO6 = NetOffloads(rawValue: VirtioNetFeature.guestTSO6)
    static let hostUSO = NetOffloads(rawValue: VirtioNetFeature.hostUSO)
    static let guestUSO4 = NetOffloads(rawValue: VirtioNetFeature.guestUSO4)
    static let guestUSO6 = NetOffloads(rawValue: VirtioNetFeature.guestUSO6)
    static let uso: NetOffloads = [.hostUSO, .guestUSO4, .guestUSO6]
    static let all: NetOffloads = [.checksum, .guestChecksum, .hostTSO4, .hostTSO6, .guestTSO4, .guestTSO6, .uso]

    /// The TUN_F_* flags that give USO: Linux takes them only together (tun.c, "for now USO4
    /// and USO6 should work simultaneously"), and refuses them before 6.2.
    static let tunUSOFlags = UInt32(VMD_TUN_F_USO4 | VMD_TUN_F_USO6)

    /// The offloads that go with the TUN_F_* flags a tap accepted in TUNSETOFFLOAD:
    /// TUN_F_CSUM gives both checksum offloads, TUN_F_TSO4/6 (only with TUN_F_CSUM) both TSOs,
    /// TUN_F_USO4 with TUN_F_USO6 (only with TUN_F_CSUM) USO both ways.
    init(acceptedTunFlags flags: UInt32) {
        var offloads: NetOffloads = []
        if flags & UInt32(VMD_TUN_F_CSUM) != 0 {
            offloads.formUnion([.checksum, .guestChecksum])
            if flags & UInt32(VMD_TUN_F_TSO4) != 0 { offloads.formUnion([.hostTSO4, .guestTSO4]) }
            if flags & UInt32(VMD_TUN_F_TSO6) != 0 { offloads.formUnion([.hostTSO6, .guestTSO6]) }
            if flags & Self.tunUSOFlags == Self.tunUSOFlags { offloads.formUnion(.uso) }
        }
        self = offloads
    }

    /// The TUN_F_* flags the tap needs for the receive offloads in `features` (negotiated bits):
    /// what TUNSETOFFLOAD should be given so the tap hands the guest nothing it cannot take.
    /// USO needs both GUEST_USO4 and GUEST_USO6, as the tap can only turn on both.
    static func tunFlags(forGuestFeatures features: UInt64) -> UInt32 {
        guard features & VirtioNetFeature.guestChecksum != 0 else { return 0 }
        var flags = UInt32(VMD_TUN_F_CSUM)
        if features & VirtioNetFeature.guestTSO4 != 0 { flags |= UInt32(VMD_TUN_F_TSO4) }
        if features & VirtioNetFeature.guestTSO6 != 0 { flags |= UInt32(VMD_TUN_F_TSO6) }
        if receivesUSO(features) { flags |= tunUSOFlags }
        return flags
    }

    /// Whether the tap may hand this driver UDP_L4 (USO) packets: only with both GUEST_USO bits.
    static func receivesUSO(_ features: UInt64) -> Bool {
        let both = VirtioNetFeature.guestUSO4 | VirtioNetFeature.guestUSO6
        return features & VirtioNetFeature.guestChecksum != 0 && features & both == both
    }

    /// Feature dependencies of §5.1.3.1: GUEST_TSO* and GUEST_USO* need GUEST_CSUM,
    /// HOST_TSO* and HOST_USO need CSUM.
    var missingDependency: String? {
        if !intersection([.guestTSO4, .guestTSO6]).isEmpty && !contains(.guestChecksum) { return "GUEST_TSO needs GUEST_CSUM" }
        if !intersection([.guestUSO4, .guestUSO6]).isEmpty && !contains(.guestChecksum) { return "GUEST_USO needs GUEST_CSUM" }
        if !intersection([.hostTSO4, .hostTSO6]).isEmpty && !contains(.checksum) { return "HOST_TSO needs CSUM" }
        if contains(.hostUSO) && !contains(.checksum) { return "HOST_USO needs CSUM" }
        return nil
    }

    var description: String {
        let names: [(NetOffloads, String)] = [(.checksum, "CSUM"), (.guestChecksum, "GUEST_CSUM"), (.hostTSO4, "HOST_TSO4"),
                                             (.hostTSO6, "HOST_TSO6"), (.guestTSO4, "GUEST_TSO4"), (.guestTSO6, "GUEST_TSO6"),
                                             (.hostUSO, "HOST_USO"), (.guestUSO4, "GUEST_USO4"), (.guestUSO6, "GUEST_USO6")]
        let present = names.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "none" : present.joined(separator: ",")
    }
}

/// An Ethernet MAC address.
struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    init?(_ bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// Parses "52:54:00:12:34:56".
    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    static let broadcast = MACAddress([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])!
    var isMulticast: Bool { bytes[0] & 1 != 0 }
    var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}

/// An IPv4 address, in host order.
struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    let value: UInt32

    init(_ value: UInt32) { self.value = value }

    init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad "10.0.0.1".
    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    static let any = IPv4Address(0)
    static let broadcast = IPv4Address(0xFFFF_FFFF)

    /// The netmask of a prefix length, 0...32.
    static func netmask(prefixLength: Int) -> IPv4Address {
        precondition((0...32).contains(prefixLength), "prefix length out of range")
        return IPv4Address(prefixLength == 0 ? 0 : UInt32.max << (32 - prefixLength))
    }

    /// Network order.
    var bytes: [UInt8] { [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }

    var description: String { bytes.map(String.init).joined(separator: ".") }
}

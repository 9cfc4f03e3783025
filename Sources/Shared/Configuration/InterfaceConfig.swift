import LinuxSystem

/// One `[local] interface [name] [{ ... }]` statement of a vm block: a
/// virtio-net NIC backed by a tap device.
public struct InterfaceConfig: Equatable, Sendable {
    /// The host tap device, e.g. "tap3"; nil lets vmd pick the next free one.
    public var name: String?
    /// `lladdr`: the guest's MAC, 6 bytes, unicast and not all zero; nil lets
    /// vmd generate one.
    public var lladdr: [UInt8]?
    /// `switch "name"`: the virtual switch to attach the tap to, resolved by the daemon.
    public var switchName: String?
    /// `local interface`: vmd gives the tap a host address from the global
    /// `local prefix` and answers the guest's DHCP with the other one.
    public var local: Bool
    /// `bandwidth` (bytes/s) and `packets` (per second), each direction on its own,
    /// enforced by the NIC's device process.
    public var rateLimit = RateLimit()
    /// Where the statement starts (`interface`, or `local` of `local interface`).
    public var location: ConfigLocation

    public init(name: String? = nil, lladdr: [UInt8]? = nil, switchName: String? = nil, local: Bool = false, location: ConfigLocation) {
        self.name = name
        self.lladdr = lladdr
        self.switchName = switchName
        self.local = local
        self.location = location
    }

    /// As vmd: up to four interfaces per VM.
    public static let maximumPerVM = 4
    /// Linux interface names are at most IFNAMSIZ - 1 bytes.
    static let maxNameLength = 15
}

/// What a receiver may do with a slot of guest memory (after rust-vmm's `Permissions`).
public enum SlotAccess: UInt8, Sendable, Equatable {
    case readOnly = 1
    case readWrite = 3
}

/// One entry of the slot table sent with the SHAREMEM handoff: where a memfd
/// appears in guest-physical space. The memfd itself travels beside it.
public struct SlotDescriptor: Equatable, Sendable, CustomStringConvertible {
    public let guestBase: GuestAddress
    public let size: UInt64
    public let access: SlotAccess

    public init(guestBase: GuestAddress, size: UInt64, access: SlotAccess = .readWrite) {
        self.guestBase = guestBase
        self.size = size
        self.access = access
    }

    /// One past the last byte, or nil if the slot wraps the address space.
    public var guestEnd: GuestAddress? { guestBase.adding(size) }

    public func contains(_ address: GuestAddress) -> Bool {
        guard let offset = address.offset(from: guestBase) else { return false }
        return offset < size
    }

    public var description: String {
        "slot \(guestBase)+0x\(String(size, radix: 16)) \(access == .readOnly ? "ro" : "rw")"
    }
}

/// The x86-64 guest-physical layout of design.md §2: RAM from 0 up to 3 GiB in
/// slot 0, a 1 GiB MMIO hole (PCI BARs, IOAPIC, LAPIC), RAM above 4 GiB in slot 1.
public enum GuestPhysicalLayout {
    public static let mmioHoleStart = GuestAddress(3 << 30)
    public static let mmioHoleEnd = GuestAddress(4 << 30)
    public static let ioapicBase = GuestAddress(0xFEC0_0000)
    public static let lapicBase = GuestAddress(0xFEE0_0000)

    /// The RAM slots for a guest of `ramBytes` bytes.
    public static func ramSlots(ramBytes: UInt64) -> [SlotDescriptor] {
        precondition(ramBytes > 0, "a guest needs RAM")
        let low = min(ramBytes, mmioHoleStart.value)
        var slots = [SlotDescriptor(guestBase: GuestAddress(0), size: low)]
        if ramBytes > low {
            slots.append(SlotDescriptor(guestBase: mmioHoleEnd, size: ramBytes - low))
        }
        return slots
    }
}

/// One 64-bit paging-structure entry of 4-level paging (PML4E, PDPTE, PDE or PTE).
///
/// Bit layout from Intel SDM vol. 3A §4.5.4, Tables 4-15 to 4-20. The same bit
/// means the same thing at every level except bit 7 (PS in PDPTEs and PDEs,
/// reserved in PML4Es, PAT in PTEs) and bit 12 (PAT in PDPTEs/PDEs that map
/// a large page, part of the address otherwise).
public struct PageTableEntry: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    // MARK: Bits (SDM vol. 3A Table 4-15 to 4-20)

    /// P: the entry maps a page or references a table.
    public static let presentBit: UInt64 = 1 << 0
    /// R/W: writes allowed through this entry.
    public static let writableBit: UInt64 = 1 << 1
    /// U/S: user-mode (CPL 3) accesses allowed through this entry.
    public static let userBit: UInt64 = 1 << 2
    /// PWT: page-level write-through.
    public static let writeThroughBit: UInt64 = 1 << 3
    /// PCD: page-level cache disable.
    public static let cacheDisableBit: UInt64 = 1 << 4
    /// A: set by the processor when the entry is used.
    public static let accessedBit: UInt64 = 1 << 5
    /// D: set by the processor on a write through a page-mapping entry.
    public static let dirtyBit: UInt64 = 1 << 6
    /// PS: the PDPTE/PDE maps a 1 GiB / 2 MiB page instead of referencing a table.
    public static let pageSizeBit: UInt64 = 1 << 7
    /// G: global translation (CR4.PGE), only meaningful in page-mapping entries.
    public static let globalBit: UInt64 = 1 << 8
    /// PAT bit of a large-page entry (bit 12); a PTE keeps its PAT bit at bit 7.
    public static let largePagePATBit: UInt64 = 1 << 12
    /// XD: instruction fetches not allowed (only when IA32_EFER.NXE = 1).
    public static let noExecuteBit: UInt64 = 1 << 63

    // MARK: Address fields

    /// The architectural maximum physical-address width (SDM vol. 3A §4.1.4):
    /// address bits in entries end at bit 51.
    public static let maxPhysicalAddressWidth = 52

    /// Bits 51:12: the physical address of the next table or of a 4 KiB page.
    public static let addressMask: UInt64 = physicalAddressMask(width: maxPhysicalAddressWidth) & ~PageSize.fourKiB.offsetMask
    /// Bits 51:21: the physical address of a 2 MiB page (PDE with PS=1).
    public static let frameMask2MiB: UInt64 = addressMask & ~PageSize.twoMiB.offsetMask
    /// Bits 51:30: the physical address of a 1 GiB page (PDPTE with PS=1).
    public static let frameMask1GiB: UInt64 = addressMask & ~PageSize.oneGiB.offsetMask

    /// Bits 0 ..< width set: the addresses a processor with MAXPHYADDR = width can reach.
    public static func physicalAddressMask(width: Int) -> UInt64 {
        precondition(width > 0 && width <= maxPhysicalAddressWidth, "physical-address width out of range: \(width)")
        return (UInt64(1) << UInt64(width)) - 1
    }

    // MARK: Init

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// An empty (not-present) entry.
    public static let empty = PageTableEntry(rawValue: 0)

    // MARK: Typed accessors

    public var present: Bool {
        get { bit(Self.presentBit) }
        set { setBit(Self.presentBit, newValue) }
    }

    public var writable: Bool {
        get { bit(Self.writableBit) }
        set { setBit(Self.writableBit, newValue) }
    }

    public var user: Bool {
        get { bit(Self.userBit) }
        set { setBit(Self.userBit, newValue) }
    }

    public var writeThrough: Bool {
        get { bit(Self.writeThroughBit) }
        set { setBit(Self.writeThroughBit, newValue) }
    }

    public var cacheDisable: Bool {
        get { bit(Self.cacheDisableBit) }
        set { setBit(Self.cacheDisableBit, newValue) }
    }

    public var accessed: Bool {
        get { bit(Self.accessedBit) }
        set { setBit(Self.accessedBit, newValue) }
    }

    public var dirty: Bool {
        get { bit(Self.dirtyBit) }
        set { setBit(Self.dirtyBit, newValue) }
    }

    /// The PS bit. In a PDPTE or PDE it means "maps a large page"; in a PML4E it
    /// is reserved; in a PTE the same bit is PAT.
    public var pageSize: Bool {
        get { bit(Self.pageSizeBit) }
        set { setBit(Self.pageSizeBit, newValue) }
    }

    public var global: Bool {
        get { bit(Self.globalBit) }
        set { setBit(Self.globalBit, newValue) }
    }

    public var noExecute: Bool {
        get { bit(Self.noExecuteBit) }
        set { setBit(Self.noExecuteBit, newValue) }
    }

    /// Bits 51:12: the next table, or the 4 KiB page a PTE maps. Setting it
    /// drops bits outside the field.
    public var physicalAddress: UInt64 {
        get { rawValue & Self.addressMask }
        set { rawValue = (rawValue & ~Self.addressMask) | (newValue & Self.addressMask) }
    }

    /// The start of the page this entry maps, if it maps a page of `size`:
    /// the address field with the bits below the page size removed (in large
    /// pages those low bits hold PAT and reserved bits, not address).
    public func frameAddress(for size: PageSize) -> UInt64 {
        switch size {
        case .fourKiB: return rawValue & Self.addressMask
        case .twoMiB: return rawValue & Self.frameMask2MiB
        case .oneGiB: return rawValue & Self.frameMask1GiB
        }
    }

    public var description: String {
        var flags: [String] = []
        if present { flags.append("P") }
        if writable { flags.append("W") }
        if user { flags.append("U") }
        if writeThrough { flags.append("PWT") }
        if cacheDisable { flags.append("PCD") }
        if accessed { flags.append("A") }
        if dirty { flags.append("D") }
        if pageSize { flags.append("PS") }
        if global { flags.append("G") }
        if noExecute { flags.append("NX") }
        let address = String(physicalAddress, radix: 16)
        return "PageTableEntry(0x\(address) \(flags.joined(separator: "|")))"
    }

    // MARK: Private

    private func bit(_ mask: UInt64) -> Bool {
        rawValue & mask != 0
    }

    private mutating func setBit(_ mask: UInt64, _ value: Bool) {
        if value {
            rawValue |= mask
        } else {
            rawValue &= ~mask
        }
    }
}

/// One level of the 4-level paging hierarchy (Intel SDM vol. 3A §4.5, Figure 4-8).
/// The raw value is the level number the SDM uses: 4 is the root (PML4), 1 the page table.
public enum PagingLevel: Int, Sendable, CaseIterable, CustomStringConvertible {
    case pml4 = 4
    case pageDirectoryPointerTable = 3
    case pageDirectory = 2
    case pageTable = 1

    /// Entries in every paging structure: 4 KiB of 8-byte entries (SDM vol. 3A §4.5.1).
    public static let entriesPerTable: UInt64 = 512

    /// Size of one paging structure in bytes.
    public static let tableSize: UInt64 = 0x1000

    /// Size of one paging-structure entry in bytes.
    public static let entrySize: UInt64 = 8

    /// Each level consumes 9 bits of the linear address.
    static let indexBits: UInt64 = 9
    static let indexMask: UInt64 = entriesPerTable - 1

    /// The lowest linear-address bit of this level's index: 39, 30, 21, 12.
    public var indexShift: UInt64 {
        PageSize.fourKiB.shift + UInt64(rawValue - 1) * PagingLevel.indexBits
    }

    /// The bytes of linear address space one entry of this level covers.
    public var bytesPerEntry: UInt64 { 1 << indexShift }

    /// The index of the entry that translates `linearAddress` in a table of this level.
    public func index(of linearAddress: UInt64) -> UInt64 {
        (linearAddress >> indexShift) & PagingLevel.indexMask
    }

    /// The level below this one, or nil for the page table.
    public var next: PagingLevel? { PagingLevel(rawValue: rawValue - 1) }

    public var description: String {
        switch self {
        case .pml4: return "PML4"
        case .pageDirectoryPointerTable: return "PDPT"
        case .pageDirectory: return "PD"
        case .pageTable: return "PT"
        }
    }
}

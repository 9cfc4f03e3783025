/// Where `IdentityPageTableBuilder` puts the tables and what they map.
public struct IdentityMapLayout: Hashable, Sendable {
    /// The value to load into CR3: the PML4's physical address, PWT = PCD = 0
    /// (write-back page-walk accesses, SDM vol. 3A §4.5.2, Table 4-13).
    public var cr3: UInt64
    /// The guest-physical bytes the tables occupy: PML4, then PDPT, then the
    /// page directories, contiguous. The caller checks this does not overlap
    /// anything else it loads (the kernel, the command line, boot params).
    public var tableRange: Range<UInt64>
    /// How many 4 KiB tables the mapping uses.
    public var tableCount: Int
    /// The identity-mapped range is [0, mappedSize).
    public var mappedSize: UInt64
    /// The size of the pages that map it.
    public var pageSize: PageSize

    public init(cr3: UInt64, tableRange: Range<UInt64>, tableCount: Int, mappedSize: UInt64, pageSize: PageSize) {
        self.cr3 = cr3
        self.tableRange = tableRange
        self.tableCount = tableCount
        self.mappedSize = mappedSize
        self.pageSize = pageSize
    }

    /// The physical address of the PML4.
    public var pml4Address: UInt64 { tableRange.lowerBound }

    /// The physical address of the page-directory-pointer table that follows the PML4.
    public var pageDirectoryPointerTableAddress: UInt64 { tableRange.lowerBound + PagingLevel.tableSize }

    /// The physical address of the `index`th page directory (2 MiB pages only).
    public func pageDirectoryAddress(_ index: Int) -> UInt64 {
        precondition(pageSize == .twoMiB && index >= 0 && index < tableCount - IdentityMapLayout.upperTableCount,
                     "no page directory \(index) in this layout")
        return tableRange.lowerBound + UInt64(IdentityMapLayout.upperTableCount + index) * PagingLevel.tableSize
    }

    /// The PML4 and the one PDPT that come before any page directory.
    static let upperTableCount = 2
}

/// Builds 4-level page tables that identity-map guest-physical [0, size), for
/// entering 64-bit mode at boot (the PVH and 64-bit Linux boot protocols need
/// paging on, and the loader must provide the tables).
///
/// One PML4 entry covers 512 GiB, so the map uses PML4[0], one PDPT and, for
/// 2 MiB pages, one page directory per GiB: PML4 at the base, the PDPT at
/// base + 4 KiB, the page directories after it. Every word of every table is
/// written, so whatever the memory held before cannot leak into the map.
///
/// The tables may lie inside the range they map (they normally do: they live in RAM).
public struct IdentityPageTableBuilder: Sendable {
    /// The page sizes the map can be built from. 4 KiB pages are not offered:
    /// a boot map has no use for them and they would need 512 times the tables.
    public enum LeafPageSize: Sendable, CaseIterable {
        case twoMiB
        case oneGiB

        public var pageSize: PageSize {
            switch self {
            case .twoMiB: return .twoMiB
            case .oneGiB: return .oneGiB
            }
        }
    }

    /// The largest map: everything one PML4 entry covers.
    public static let maximumSize: UInt64 = PagingLevel.pml4.bytesPerEntry

    /// 2 MiB pages (any CPU) or 1 GiB pages (needs CPUID.80000001H:EDX.Page1GB).
    public var leafPageSize: LeafPageSize
    /// R/W in every entry: the mapping is writable.
    public var writable: Bool
    /// U/S in every entry: ring 3 may use the mapping.
    public var user: Bool
    /// G in the page-mapping entries: the translations survive CR3 loads (needs CR4.PGE).
    public var global: Bool
    /// XD in the page-mapping entries: no instruction fetch. Needs IA32_EFER.NXE = 1,
    /// otherwise the CPU sees a reserved bit and faults on every access.
    public var noExecute: Bool

    public init(
        leafPageSize: LeafPageSize = .twoMiB,
        writable: Bool = true,
        user: Bool = false,
        global: Bool = false,
        noExecute: Bool = false
    ) {
        self.leafPageSize = leafPageSize
        self.writable = writable
        self.user = user
        self.global = global
        self.noExecute = noExecute
    }

    /// Checks the arguments and says where the tables would go, without writing anything.
    public func layout(size: UInt64, tableBase: UInt64) throws(IdentityMapError) -> IdentityMapLayout {
        let pageSize = leafPageSize.pageSize
        guard size != 0 else {
            throw .sizeZero
        }
        guard size & pageSize.offsetMask == 0 else {
            throw .sizeNotPageMultiple(size: size, pageSize: pageSize)
        }
        guard size <= Self.maximumSize else {
            throw .sizeTooLarge(size: size, maximum: Self.maximumSize)
        }
        guard tableBase & PageSize.fourKiB.offsetMask == 0 else {
            throw .baseNotAligned(tableBase)
        }
        let tableCount = IdentityMapLayout.upperTableCount + pageDirectoryCount(size: size)
        let tableBytes = UInt64(tableCount) * PagingLevel.tableSize
        let (end, overflow) = tableBase.addingReportingOverflow(tableBytes)
        // The last table's address must still fit the entries' address field.
        guard !overflow, end - PagingLevel.tableSize <= PageTableEntry.addressMask else {
            throw .tablesOutsidePhysicalAddressSpace(base: tableBase, tableBytes: tableBytes)
        }
        return IdentityMapLayout(
            cr3: tableBase, tableRange: tableBase..<end, tableCount: tableCount,
            mappedSize: size, pageSize: pageSize)
    }

    /// Writes the tables at `tableBase` and returns their layout.
    @discardableResult
    public func build(
        size: UInt64, tableBase: UInt64, memory: some PhysicalMemory
    ) throws(IdentityMapError) -> IdentityMapLayout {
        let layout = try layout(size: size, tableBase: tableBase)

        // PML4: entry 0 references the PDPT; the other 511 cover 512 GiB and up.
        try writeTable(at: layout.pml4Address, memory: memory) { index in
            index == 0 ? tableEntry(pointingTo: layout.pageDirectoryPointerTableAddress) : .empty
        }

        switch leafPageSize {
        case .oneGiB:
            // PDPT entries map 1 GiB pages directly (SDM vol. 3A Table 4-16).
            try writeTable(at: layout.pageDirectoryPointerTableAddress, memory: memory) { index in
                pageEntry(mapping: index * PageSize.oneGiB.bytes, size: size)
            }
        case .twoMiB:
            let directories = layout.tableCount - IdentityMapLayout.upperTableCount
            try writeTable(at: layout.pageDirectoryPointerTableAddress, memory: memory) { index in
                index < UInt64(directories)
                    ? tableEntry(pointingTo: layout.pageDirectoryAddress(Int(index))) : .empty
            }
            // PDEs map 2 MiB pages (SDM vol. 3A Table 4-18).
            for directory in 0..<directories {
                let firstAddress = UInt64(directory) * PageSize.oneGiB.bytes
                try writeTable(at: layout.pageDirectoryAddress(directory), memory: memory) { index in
                    pageEntry(mapping: firstAddress + index * PageSize.twoMiB.bytes, size: size)
                }
            }
        }
        return layout
    }

    // MARK: Private

    /// One page directory per GiB, the last one possibly partly empty.
    private func pageDirectoryCount(size: UInt64) -> Int {
        guard leafPageSize == .twoMiB else { return 0 }
        let perDirectory = PageSize.oneGiB.bytes
        return Int((size + perDirectory - 1) / perDirectory)
    }

    /// Rights common to every level. The CPU ANDs R/W and U/S over the walk
    /// (SDM vol. 3A §4.6.1), so upper entries carry the same rights as the
    /// leaves. A is preset so the CPU need not write it back (SDM vol. 3A
    /// §4.8); that saves a locked write per entry on a slow, emulated boot.
    private var commonBits: PageTableEntry {
        var entry = PageTableEntry.empty
        entry.present = true
        entry.writable = writable
        entry.user = user
        entry.accessed = true
        return entry
    }

    private func tableEntry(pointingTo tableAddress: UInt64) -> PageTableEntry {
        var entry = commonBits
        entry.physicalAddress = tableAddress
        return entry
    }

    /// The entry mapping the large page at `address`, or an empty entry if
    /// the page lies beyond the mapped size. D is preset for the same reason as A.
    private func pageEntry(mapping address: UInt64, size: UInt64) -> PageTableEntry {
        guard address < size else { return .empty }
        var entry = commonBits
        entry.physicalAddress = address
        entry.pageSize = true
        entry.dirty = true
        entry.global = global
        entry.noExecute = noExecute
        return entry
    }

    /// Writes all 512 entries of the table at `tableAddress`.
    private func writeTable(
        at tableAddress: UInt64, memory: some PhysicalMemory,
        entry: (UInt64) -> PageTableEntry
    ) throws(IdentityMapError) {
        for index in 0..<PagingLevel.entriesPerTable {
            let address = tableAddress + index * PagingLevel.entrySize
            do {
                try memory.writeUInt64(entry(index).rawValue, at: address)
            } catch {
                throw .memoryWriteFailed(address: address, underlying: error)
            }
        }
    }
}

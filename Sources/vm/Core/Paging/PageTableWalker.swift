/// Translates guest linear (virtual) addresses to guest-physical addresses by
/// walking 4-level page tables the way the CPU does with CR0.PG = 1,
/// CR4.PAE = 1, IA32_EFER.LME = 1 and CR4.LA57 = 0 (Intel SDM vol. 3A §4.5).
///
/// It is for debugging and for explaining faults, so it only reads: it never
/// sets accessed or dirty bits.
///
/// Not modelled, by choice: CR0.WP (supervisor writes to read-only pages),
/// SMEP and SMAP (supervisor access to user pages), protection keys, and the
/// access type of a particular fault. The walker reports the permissions the
/// entries grant; the caller decides what the access it cares about needs.
/// 1 GiB pages are assumed supported (CPUID.80000001H:EDX.Page1GB = 1).
public struct PageTableWalker: Sendable {
    /// MAXPHYADDR (CPUID.80000008H:EAX[7:0]); entry bits 51:MAXPHYADDR are reserved.
    public var physicalAddressWidth: Int
    /// IA32_EFER.NXE. When 0, bit 63 of an entry is reserved and nothing is execute-disabled.
    public var noExecuteEnabled: Bool

    public init(
        physicalAddressWidth: Int = PageTableEntry.maxPhysicalAddressWidth,
        noExecuteEnabled: Bool = true
    ) {
        // Below 13 bits there would be no frame bits at all; above 52 is not x86-64.
        precondition(
            physicalAddressWidth > Int(PageSize.fourKiB.shift)
                && physicalAddressWidth <= PageTableEntry.maxPhysicalAddressWidth,
            "physical-address width out of range: \(physicalAddressWidth)")
        self.physicalAddressWidth = physicalAddressWidth
        self.noExecuteEnabled = noExecuteEnabled
    }

    /// Walks with the architectural maximum MAXPHYADDR and NXE = 1, as a
    /// 64-bit Linux guest runs.
    public static func translate(
        virtualAddress: UInt64, cr3: UInt64, memory: some PhysicalMemory
    ) throws(PageWalkError) -> Translation {
        try PageTableWalker().translate(virtualAddress: virtualAddress, cr3: cr3, memory: memory)
    }

    /// Walks the tables rooted at `cr3` for `virtualAddress`.
    public func translate(
        virtualAddress: UInt64, cr3: UInt64, memory: some PhysicalMemory
    ) throws(PageWalkError) -> Translation {
        guard Self.isCanonical(virtualAddress) else {
            throw .nonCanonical(virtualAddress)
        }
        // CR3 bits 51:12 locate the PML4 (SDM vol. 3A §4.5.2, Table 4-13); the
        // low bits are PWT/PCD or a PCID and do not take part in the address.
        var tableAddress = cr3 & PageTableEntry.addressMask & physicalAddressMask
        var level = PagingLevel.pml4
        // Rights are the AND of R/W and U/S and the OR of XD over every
        // entry of the walk (SDM vol. 3A §4.6.1).
        var writable = true
        var user = true
        var executable = true

        while true {
            let entryAddress = tableAddress + level.index(of: virtualAddress) * PagingLevel.entrySize
            let entry: PageTableEntry
            do {
                entry = PageTableEntry(rawValue: try memory.readUInt64(at: entryAddress))
            } catch {
                throw .memoryReadFailed(level: level, entryAddress: entryAddress, underlying: error)
            }
            // P is checked before anything else: the other bits of a
            // not-present entry are ignored (SDM vol. 3A §4.5.4).
            guard entry.present else {
                throw .notPresent(level: level, entryAddress: entryAddress)
            }
            let mappedSize = Self.mappedPageSize(of: entry, at: level)
            guard entry.rawValue & reservedBits(at: level, mapping: mappedSize) == 0 else {
                throw .reservedBitSet(level: level)
            }
            writable = writable && entry.writable
            user = user && entry.user
            if noExecuteEnabled && entry.noExecute {
                executable = false
            }

            if let size = mappedSize {
                return Translation(
                    physicalAddress: entry.frameAddress(for: size) | (virtualAddress & size.offsetMask),
                    pageSize: size, writable: writable, user: user, executable: executable)
            }
            guard let next = level.next else {
                // mappedPageSize always maps at the page-table level.
                preconditionFailure("page-table entry did not map a page")
            }
            tableAddress = entry.physicalAddress
            level = next
        }
    }

    /// A 4-level linear address is canonical when bits 63:47 are all equal
    /// (SDM vol. 1 §3.3.7.1; vol. 3A §4.5).
    public static func isCanonical(_ address: UInt64) -> Bool {
        let signExtended = Int64(bitPattern: address << canonicalShift) >> Int64(canonicalShift)
        return UInt64(bitPattern: signExtended) == address
    }

    // MARK: Private

    /// 64 minus the 48 linear-address bits that 4-level paging translates.
    private static let canonicalShift: UInt64 = 16

    /// Bits 20:13 of a PDE that maps a 2 MiB page (SDM vol. 3A Table 4-18).
    private static let reservedBits2MiB: UInt64 = PageSize.twoMiB.offsetMask & ~PageSize.fourKiB.offsetMask & ~PageTableEntry.largePagePATBit
    /// Bits 29:13 of a PDPTE that maps a 1 GiB page (SDM vol. 3A Table 4-16).
    private static let reservedBits1GiB: UInt64 = PageSize.oneGiB.offsetMask & ~PageSize.fourKiB.offsetMask & ~PageTableEntry.largePagePATBit

    private var physicalAddressMask: UInt64 {
        PageTableEntry.physicalAddressMask(width: physicalAddressWidth)
    }

    /// The page a present entry maps, or nil if it references the next table.
    private static func mappedPageSize(of entry: PageTableEntry, at level: PagingLevel) -> PageSize? {
        switch level {
        case .pml4: return nil
        case .pageDirectoryPointerTable: return entry.pageSize ? .oneGiB : nil
        case .pageDirectory: return entry.pageSize ? .twoMiB : nil
        case .pageTable: return .fourKiB
        }
    }

    /// Bits that must be 0 in a present entry (SDM vol. 3A §4.5.4, Tables 4-15 to 4-20).
    private func reservedBits(at level: PagingLevel, mapping size: PageSize?) -> UInt64 {
        // Address bits from MAXPHYADDR up to 51, at every level.
        var reserved = PageTableEntry.addressMask & ~physicalAddressMask
        if !noExecuteEnabled {
            reserved |= PageTableEntry.noExecuteBit
        }
        switch (level, size) {
        case (.pml4, _):
            // Bit 7 of a PML4E is reserved: there are no 512 GiB pages.
            reserved |= PageTableEntry.pageSizeBit
        case (_, .oneGiB?):
            reserved |= Self.reservedBits1GiB
        case (_, .twoMiB?):
            reserved |= Self.reservedBits2MiB
        default:
            break
        }
        return reserved
    }
}

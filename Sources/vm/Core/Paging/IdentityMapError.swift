/// Why `IdentityPageTableBuilder` could not lay out or write its tables.
public enum IdentityMapError: Error, CustomStringConvertible {
    /// Nothing to map.
    case sizeZero
    /// The size is not a whole number of the pages asked for.
    case sizeNotPageMultiple(size: UInt64, pageSize: PageSize)
    /// More than one PML4 entry's worth (512 GiB) was asked for.
    case sizeTooLarge(size: UInt64, maximum: UInt64)
    /// Paging structures must be 4 KiB aligned (SDM vol. 3A §4.5.2).
    case baseNotAligned(UInt64)
    /// The tables would end beyond the 52-bit physical address space, where
    /// no entry could point to them.
    case tablesOutsidePhysicalAddressSpace(base: UInt64, tableBytes: UInt64)
    /// Writing the word at `address` failed.
    case memoryWriteFailed(address: UInt64, underlying: any Error)

    public var description: String {
        switch self {
        case .sizeZero:
            return "identity map of size 0"
        case .sizeNotPageMultiple(let size, let pageSize):
            return "identity map size 0x\(String(size, radix: 16)) is not a multiple of \(pageSize)"
        case .sizeTooLarge(let size, let maximum):
            return "identity map size 0x\(String(size, radix: 16)) exceeds 0x\(String(maximum, radix: 16))"
        case .baseNotAligned(let base):
            return "page-table base 0x\(String(base, radix: 16)) is not 4 KiB aligned"
        case .tablesOutsidePhysicalAddressSpace(let base, let tableBytes):
            return "page tables at 0x\(String(base, radix: 16)) (+0x\(String(tableBytes, radix: 16))) exceed the physical address space"
        case .memoryWriteFailed(let address, let underlying):
            return "writing page-table word at 0x\(String(address, radix: 16)) failed: \(underlying)"
        }
    }
}

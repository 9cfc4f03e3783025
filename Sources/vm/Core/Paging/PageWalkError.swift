/// Why a linear address could not be translated. The first three are what the
/// CPU would raise as a fault (#GP for a non-canonical address, #PF otherwise);
/// `memoryReadFailed` means a paging structure is not in guest RAM at all.
public enum PageWalkError: Error, CustomStringConvertible {
    /// Bits 63:47 of the address are not all equal (SDM vol. 1 §3.3.7.1); the CPU raises #GP.
    case nonCanonical(UInt64)
    /// The entry at `entryAddress` in the table of `level` has P = 0 (#PF, SDM vol. 3A §4.7).
    case notPresent(level: PagingLevel, entryAddress: UInt64)
    /// A present entry of `level` has a reserved bit set (#PF with RSVD = 1, SDM vol. 3A §4.5.4, §4.7).
    case reservedBitSet(level: PagingLevel)
    /// Reading the entry of `level` at `entryAddress` failed: the table lies outside guest memory.
    case memoryReadFailed(level: PagingLevel, entryAddress: UInt64, underlying: any Error)

    public var description: String {
        switch self {
        case .nonCanonical(let address):
            return "non-canonical address 0x\(String(address, radix: 16))"
        case .notPresent(let level, let entryAddress):
            return "\(level) entry at 0x\(String(entryAddress, radix: 16)) not present"
        case .reservedBitSet(let level):
            return "reserved bit set in \(level) entry"
        case .memoryReadFailed(let level, let entryAddress, let underlying):
            return "reading \(level) entry at 0x\(String(entryAddress, radix: 16)) failed: \(underlying)"
        }
    }
}

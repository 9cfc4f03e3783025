/// The sizes of page that 4-level paging can map (Intel SDM vol. 3A §4.5.4):
/// a PTE maps 4 KiB, a PDE with PS=1 maps 2 MiB, a PDPTE with PS=1 maps 1 GiB.
public enum PageSize: UInt64, Sendable, CaseIterable, CustomStringConvertible {
    case fourKiB = 0x1000
    case twoMiB = 0x20_0000
    case oneGiB = 0x4000_0000

    /// The size of the page in bytes.
    public var bytes: UInt64 { rawValue }

    /// Bits of an address that select a byte inside the page.
    public var offsetMask: UInt64 { rawValue - 1 }

    /// The number of offset bits (12, 21 or 30).
    public var shift: UInt64 { UInt64(rawValue.trailingZeroBitCount) }

    public var description: String {
        switch self {
        case .fourKiB: return "4 KiB"
        case .twoMiB: return "2 MiB"
        case .oneGiB: return "1 GiB"
        }
    }
}

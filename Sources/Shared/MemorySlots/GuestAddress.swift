/// A guest-physical address. Arithmetic on it is checked: an overflow is an
/// error the caller must handle, because the operands usually come from the guest.
public struct GuestAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// `self + offset`, or nil if it does not fit in 64 bits.
    public func adding(_ offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = value.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    /// Distance from `base` up to `self`, or nil if `self` is below `base`.
    public func offset(from base: GuestAddress) -> UInt64? {
        value >= base.value ? value - base.value : nil
    }

    public func isAligned(to alignment: UInt64) -> Bool {
        precondition(alignment.nonzeroBitCount == 1, "alignment must be a power of two")
        return value & (alignment - 1) == 0
    }

    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.value < rhs.value }

    public var description: String { "0x" + String(value, radix: 16) }
}

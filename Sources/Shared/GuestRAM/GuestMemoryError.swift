import MemorySlots
/// A guest-physical access that cannot be done. These come from guest input
/// (ring addresses, descriptor lengths), so they are failures of that request,
/// never crashes.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    /// No slot holds this address: beyond RAM, or inside the MMIO hole.
    case unmapped(GuestAddress)
    /// `address + length` does not fit in 64 bits.
    case overflow(GuestAddress, length: UInt64)
    /// A write to a slot the receiver mapped read-only.
    case readOnly(GuestAddress)
    /// An atomic access that is not naturally aligned.
    case misaligned(GuestAddress, alignment: Int)

    public var description: String {
        switch self {
        case .unmapped(let address): "guest address \(address) is not in guest RAM"
        case .overflow(let address, let length): "range \(address)+\(length) overflows"
        case .readOnly(let address): "guest address \(address) is read-only"
        case .misaligned(let address, let alignment): "guest address \(address) is not \(alignment)-byte aligned"
        }
    }
}

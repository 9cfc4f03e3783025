import GuestRAM
import MemorySlots
/// The three parts of a split virtqueue (virtio 1.2 §2.7).
public enum VirtqueuePart: Sendable, Equatable, CustomStringConvertible {
    case descriptorTable
    case availableRing
    case usedRing

    public var description: String {
        switch self {
        case .descriptorTable: "descriptor table"
        case .availableRing: "available ring"
        case .usedRing: "used ring"
        }
    }
}

/// Why the queue size and addresses a driver wrote cannot be used. These are
/// guest faults: the device refuses to enable the queue.
public enum VirtqueueConfigurationError: Error, Equatable, CustomStringConvertible {
    /// The size is 0 or above what the device offers (virtio 1.2 §4.1.4.3.2: the
    /// driver may only reduce queue_size; §2.7: at most 32768).
    case sizeOutOfRange(UInt16, maximum: UInt16)
    /// The size is not a power of two (virtio 1.2 §2.7).
    case sizeNotPowerOfTwo(UInt16)
    /// A part is not aligned as the table of virtio 1.2 §2.7 requires (§2.7.1).
    case misaligned(VirtqueuePart, GuestAddress, alignment: UInt64)
    /// A part is not one contiguous range of guest RAM (beyond RAM, in the MMIO
    /// hole, across two slots, overflowing, or a read-only used ring).
    case outsideGuestMemory(VirtqueuePart, GuestMemoryError)

    public var description: String {
        switch self {
        case .sizeOutOfRange(let size, let maximum): "queue size \(size) not in 1...\(maximum)"
        case .sizeNotPowerOfTwo(let size): "queue size \(size) is not a power of two"
        case .misaligned(let part, let address, let alignment): "\(part) at \(address) is not \(alignment)-byte aligned"
        case .outsideGuestMemory(let part, let error): "\(part) is not in guest RAM: \(error)"
        }
    }
}

import GuestRAM
import MemorySlots
/// The size and ring addresses of one split virtqueue, as the driver set them
/// through the transport, checked against virtio 1.2 §2.7. An instance exists
/// only once every check passed, so a `SplitVirtqueue` never sees a bad one.
public struct VirtqueueConfiguration: Equatable, Sendable {
    public let size: UInt16
    public let descriptorTable: GuestAddress
    public let availableRing: GuestAddress
    public let usedRing: GuestAddress

    /// Validates what the driver wrote. `maximumSize` is what the device offers
    /// (a power of two, at most 32768: a device bug otherwise).
    public init(
        size: UInt16,
        descriptorTable: GuestAddress,
        availableRing: GuestAddress,
        usedRing: GuestAddress,
        maximumSize: UInt16,
        memory: GuestMemory
    ) throws(VirtqueueConfigurationError) {
        precondition(
            maximumSize.nonzeroBitCount == 1 && maximumSize <= SplitRingLayout.maximumQueueSize,
            "device maximum queue size must be a power of two up to 32768"
        )
        // virtio 1.2 §2.7: "Queue Size ... a power of 2", maximum 32768; §4.1.4.3.2:
        // the driver may only reduce the device's queue_size.
        guard (1...maximumSize).contains(size) else { throw .sizeOutOfRange(size, maximum: maximumSize) }
        guard size.nonzeroBitCount == 1 else { throw .sizeNotPowerOfTwo(size) }

        // virtio 1.2 §2.7.1: each part starts at a multiple of its alignment.
        let parts: [(VirtqueuePart, GuestAddress, alignment: UInt64, bytes: UInt64, writable: Bool)] = [
            (.descriptorTable, descriptorTable, SplitRingLayout.descriptorTableAlignment,
             SplitRingLayout.descriptorTableBytes(size: size), false),
            (.availableRing, availableRing, SplitRingLayout.availableRingAlignment,
             SplitRingLayout.availableRingBytes(size: size), false),
            (.usedRing, usedRing, SplitRingLayout.usedRingAlignment,
             SplitRingLayout.usedRingBytes(size: size), true),
        ]
        for (part, address, alignment, _, _) in parts where !address.isAligned(to: alignment) {
            throw .misaligned(part, address, alignment: alignment)
        }
        // Each part lies entirely in one slot of guest RAM: not past RAM, not in
        // the MMIO hole, not spanning a hole (design §4); the device writes the used ring.
        for (part, address, _, bytes, writable) in parts {
            do {
                _ = try memory.contiguousSlice(at: address, length: bytes, forWriting: writable)
            } catch {
                throw .outsideGuestMemory(part, error)
            }
        }

        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
    }
}

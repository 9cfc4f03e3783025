import GuestRAM
/// What is wrong with a virtqueue or with one descriptor chain, as found by
/// `SplitVirtqueue`. Each case cites the virtio 1.2 rule it enforces.
///
/// Two kinds: queue faults (`isQueueFault`) mean the rings themselves cannot be
/// trusted any more, so the device sets DEVICE_NEEDS_RESET; the others concern
/// one chain, which the device completes with an error before going on.
public enum VirtqueueError: Error, Equatable, CustomStringConvertible {
    // MARK: Queue faults

    /// `avail.idx` moved more than the queue size past the last entry the
    /// device took (§2.7.13.3: idx only grows by the buffers added; design §4).
    case availableIndexJump(availableIndex: UInt16, lastAvailable: UInt16, size: UInt16)
    /// An available ring entry names a descriptor that does not exist (§2.7.6:
    /// ring entries are heads of chains in the descriptor table of `size` entries).
    case headOutOfRange(head: UInt16, size: UInt16)
    /// The rings or the descriptor table could not be accessed (they were checked
    /// at configuration, so only a read-only mapping can cause this).
    case ringInaccessible(GuestMemoryError)

    // MARK: Faults of one chain

    /// A descriptor's `next` is not an index of the descriptor table (§2.7.5).
    case nextOutOfRange(next: UInt16, size: UInt16)
    /// The chain has more descriptors than the queue size, the maximum chain
    /// length (§2.7.5): it loops (§2.7.5.2: loops are forbidden).
    case chainTooLong(limit: UInt16)
    /// VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3.1).
    case indirectNotNegotiated(index: UInt16)
    /// VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT (§2.7.5.3.1).
    case indirectWithNext(index: UInt16)
    /// An indirect table whose length is 0 or not a multiple of 16 bytes, the
    /// size of a descriptor (§2.7.5.3: it holds len/16 descriptors).
    case indirectTableLength(UInt32)
    /// An indirect table of more entries than the largest queue, 32768 (§2.7.5.3.1:
    /// no chain longer than the device allows; §2.7: queues of at most 32768).
    case indirectTableTooLarge(entries: UInt32)
    /// The indirect table itself is not in guest RAM (§2.7.5.3).
    case indirectTableOutsideGuestMemory(GuestMemoryError)
    /// VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1: one table per descriptor).
    case nestedIndirect(index: UInt16)
    /// An indirect descriptor's `next` is not an index of its table (§2.7.5.3).
    case indirectNextOutOfRange(next: UInt16, entries: UInt32)
    /// The chain inside an indirect table is longer than the table: it loops (§2.7.5.2).
    case indirectChainTooLong(limit: UInt32)
    /// A device-readable descriptor after a device-writable one (§2.7.4.2).
    case readableAfterWritable
    /// A buffer whose address + length overflows or that is not entirely inside
    /// guest RAM (or is writable but read-only to us) (§2.7.5: addr/len name guest memory).
    case bufferOutsideGuestMemory(GuestMemoryError)
    /// The buffers add up to more than 2^32 - 1 bytes, or than the device's maximum
    /// request size (§2.7.5.2: no chain longer than 2^32 bytes in total).
    case chainTooLarge(total: UInt64, limit: UInt32)

    /// The rings cannot be trusted any more: the device needs a reset.
    public var isQueueFault: Bool {
        switch self {
        case .availableIndexJump, .headOutOfRange, .ringInaccessible: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .availableIndexJump(let available, let last, let size):
            "avail.idx \(available) is more than \(size) past the last taken \(last)"
        case .headOutOfRange(let head, let size): "chain head \(head) not below queue size \(size)"
        case .ringInaccessible(let error): "virtqueue ring not accessible: \(error)"
        case .nextOutOfRange(let next, let size): "next index \(next) not below queue size \(size)"
        case .chainTooLong(let limit): "descriptor chain longer than \(limit) (loop?)"
        case .indirectNotNegotiated(let index): "descriptor \(index) is indirect but INDIRECT_DESC was not negotiated"
        case .indirectWithNext(let index): "descriptor \(index) has both INDIRECT and NEXT"
        case .indirectTableLength(let length): "indirect table length \(length) is not a positive multiple of 16"
        case .indirectTableTooLarge(let entries): "indirect table of \(entries) entries is too large"
        case .indirectTableOutsideGuestMemory(let error): "indirect table not in guest RAM: \(error)"
        case .nestedIndirect(let index): "indirect table entry \(index) is itself indirect"
        case .indirectNextOutOfRange(let next, let entries): "indirect next index \(next) not below \(entries)"
        case .indirectChainTooLong(let limit): "indirect chain longer than its table of \(limit) (loop?)"
        case .readableAfterWritable: "device-readable descriptor after a device-writable one"
        case .bufferOutsideGuestMemory(let error): "buffer not in guest RAM: \(error)"
        case .chainTooLarge(let total, let limit): "descriptor chain of \(total) bytes exceeds \(limit)"
        }
    }
}

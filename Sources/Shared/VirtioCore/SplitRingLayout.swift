/// Where each field of a split virtqueue lives (virtio 1.2 §2.7, §2.7.5, §2.7.6,
/// §2.7.8), shared by the device (`SplitVirtqueue`) and the test driver
/// (`VirtqueueDriver`) so both agree on one layout.
public enum SplitRingLayout {
    /// The largest queue size a split virtqueue can have (virtio 1.2 §2.7).
    public static let maximumQueueSize: UInt16 = 32768

    /// `struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }` (§2.7.5).
    public static let descriptorSize: UInt64 = 16

    /// Alignment of each part (virtio 1.2 §2.7, table "Virtqueue Part Alignment").
    public static let descriptorTableAlignment: UInt64 = 16
    public static let availableRingAlignment: UInt64 = 2
    public static let usedRingAlignment: UInt64 = 4

    /// Size in bytes of each part for a queue of `size` entries (§2.7): the
    /// available and used rings include their trailing event field.
    public static func descriptorTableBytes(size: UInt16) -> UInt64 { descriptorSize * UInt64(size) }
    public static func availableRingBytes(size: UInt16) -> UInt64 { 6 + 2 * UInt64(size) }
    public static func usedRingBytes(size: UInt16) -> UInt64 { 6 + 8 * UInt64(size) }

    // Offsets inside the available ring: le16 flags; le16 idx; le16 ring[size]; le16 used_event.
    static let availableFlagsOffset: UInt64 = 0
    static let availableIndexOffset: UInt64 = 2
    static func availableSlotOffset(_ slot: UInt16) -> UInt64 { 4 + 2 * UInt64(slot) }
    static func usedEventOffset(size: UInt16) -> UInt64 { 4 + 2 * UInt64(size) }

    // Offsets inside the used ring: le16 flags; le16 idx; virtq_used_elem ring[size]; le16 avail_event.
    static let usedFlagsOffset: UInt64 = 0
    static let usedIndexOffset: UInt64 = 2
    static func usedSlotOffset(_ slot: UInt16) -> UInt64 { 4 + 8 * UInt64(slot) }
    static func availableEventOffset(size: UInt16) -> UInt64 { 4 + 8 * UInt64(size) }

    /// `vring_need_event` (virtio 1.2 §2.7.7, §2.7.10): whether moving an index
    /// from `old` to `new` passed `event`, all modulo 2^16.
    public static func needsEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
        new &- event &- 1 < new &- old
    }
}

/// Flags of a descriptor (virtio 1.2 §2.7.5).
public enum VirtqueueDescriptorFlags {
    /// The chain continues in `next`.
    public static let next: UInt16 = 1
    /// The buffer is device-writable (otherwise device-readable).
    public static let write: UInt16 = 2
    /// The buffer holds a table of descriptors (§2.7.5.3).
    public static let indirect: UInt16 = 4
}

/// Flags of the rings (virtio 1.2 §2.7.6, §2.7.8), used when EVENT_IDX was not negotiated.
public enum VirtqueueRingFlags {
    /// In `avail.flags`: the driver does not want used-buffer notifications (§2.7.7).
    public static let availableNoInterrupt: UInt16 = 1
    /// In `used.flags`: the device does not want available-buffer notifications (§2.7.10).
    public static let usedNoNotify: UInt16 = 1
}

import CLinux
import IPC
import GuestRAM
import MemorySlots

/// The device side of one split virtqueue (virtio 1.2 §2.7): takes chains from
/// the available ring, checks them, returns them on the used ring, and decides
/// when the driver wants an interrupt and when the device wants kicks.
///
/// Every value read from guest memory is hostile until checked (design §4).
/// A typical device loop, which never loses a kick:
///
///     repeat {
///         try queue.disableNotifications()
///         while let entry = try queue.popAvailable() { ...; try queue.pushUsed(head:length:) }
///         if try queue.needsInterrupt() { signal the call eventfd }
///     } while try queue.enableNotifications()
public struct SplitVirtqueue {
    public let configuration: VirtqueueConfiguration
    public let eventIndex: Bool
    public let indirectDescriptors: Bool
    private let memory: GuestMemory
    private let walker: DescriptorChainWalker
    /// The buffer the walker fills; reused for every chain once its last chain is gone.
    private var chainScratch: [DescriptorBuffer] = []

    /// The free-running index of the next available ring entry to take (§2.7.6).
    public private(set) var lastAvailableIndex: UInt16 = 0
    /// The free-running index of the next used ring entry to fill (§2.7.8).
    public private(set) var usedIndex: UInt16 = 0
    /// `usedIndex` when the last interrupt decision was made, for EVENT_IDX (§2.7.7).
    /// It starts valid at 0 (the driver has seen nothing and expects nothing) and
    /// becomes invalid once it is 2^15 or more behind, too far to compare.
    private var signalledUsedIndex: UInt16 = 0
    private var signalledUsedIndexValid = true
    /// Whether pushUsed ran since the last interrupt decision.
    private var pushedSinceDecision = false

    /// `features` are the negotiated feature bits (VIRTIO_F_EVENT_IDX and
    /// VIRTIO_F_INDIRECT_DESC matter here). `maximumChainBytes` is the device's
    /// largest request; a chain never describes more than UInt32.max bytes (§2.7.5.2).
    public init(
        configuration: VirtqueueConfiguration,
        memory: GuestMemory,
        features: UInt64,
        maximumChainBytes: UInt32 = .max
    ) {
        self.configuration = configuration
        self.memory = memory
        self.eventIndex = features & VirtioFeature.eventIndex != 0
        self.indirectDescriptors = features & VirtioFeature.indirectDescriptors != 0
        self.walker = DescriptorChainWalker(
            memory: memory,
            descriptorTable: configuration.descriptorTable,
            size: configuration.size,
            indirectNegotiated: indirectDescriptors,
            maximumChainBytes: maximumChainBytes
        )
        chainScratch.reserveCapacity(16)
    }

    public var size: UInt16 { configuration.size }

    /// Goes on from where a snapshot's device left the rings. The interrupt decision starts
    /// over (invalid: the next push interrupts), a spurious interrupt at worst.
    public mutating func resume(at indices: QueueIndices) {
        lastAvailableIndex = indices.nextAvailable
        usedIndex = indices.nextUsed
        signalledUsedIndex = indices.nextUsed
        signalledUsedIndexValid = false
        pushedSinceDecision = false
    }

    /// Forgets all indices, as after a device or queue reset (§2.4).
    public mutating func reset() {
        lastAvailableIndex = 0
        usedIndex = 0
        signalledUsedIndex = 0
        signalledUsedIndexValid = true
        pushedSinceDecision = false
    }

    // MARK: Available ring

    /// The next chain the driver made available, nil if there is none. Throws
    /// only for queue faults (the device then needs a reset); a bad chain is
    /// returned as `.malformed` and consumed, so the next call goes on.
    public mutating func popAvailable() throws(VirtqueueError) -> AvailableEntry? {
        // Acquire: the ring entries and descriptors the driver wrote before
        // bumping idx are visible once we see the new idx (§2.7.13.3).
        let availableIndex = try load(at: availableField(SplitRingLayout.availableIndexOffset))
        let pending = availableIndex &- lastAvailableIndex
        if pending == 0 { return nil }
        // §2.7.13.3: idx only grows by the buffers the driver added, and at most
        // `size` can be outstanding; a larger jump is a broken driver (design §4).
        guard pending <= size else {
            throw .availableIndexJump(availableIndex: availableIndex, lastAvailable: lastAvailableIndex, size: size)
        }
        let slot = lastAvailableIndex & (size - 1)
        let head: UInt16 = try read(at: availableField(SplitRingLayout.availableSlotOffset(slot)))
        // §2.7.6: an entry is the index of a chain head in the descriptor table.
        guard head < size else { throw .headOutOfRange(head: head, size: size) }
        lastAvailableIndex &+= 1
        do {
            return .chain(try walker.walk(head: head, into: &chainScratch))
        } catch where error.isQueueFault {
            throw error
        } catch {
            return .malformed(head: head, error)
        }
    }

    // MARK: Used ring

    /// Returns chain `head` to the driver with `length` bytes written into its
    /// writable buffers (§2.7.8): the element first, then `used.idx` with release
    /// ordering so the driver never sees the index before the element.
    public mutating func pushUsed(head: UInt16, length: UInt32) throws(VirtqueueError) {
        try writeUsedElement(head: head, length: length, at: usedIndex)
        try publishUsed(upTo: usedIndex &+ 1, count: 1)
    }

    /// Returns several chains at once: every element, then `used.idx` once. A driver
    /// polling the used ring sees them together, not the first alone (the guest kit,
    /// seeing one of eight done, sent one request on its own and then seven).
    public mutating func pushUsed(contentsOf entries: [(head: UInt16, length: UInt32)]) throws(VirtqueueError) {
        guard !entries.isEmpty else { return }
        var index = usedIndex
        for (head, length) in entries {
            try writeUsedElement(head: head, length: length, at: index)
            index &+= 1
        }
        try publishUsed(upTo: index, count: entries.count)
    }

    private func writeUsedElement(head: UInt16, length: UInt32, at index: UInt16) throws(VirtqueueError) {
        precondition(head < size, "pushUsed with a head that popAvailable never returned")
        // struct virtq_used_elem { le32 id; le32 len; }
        let element = UInt64(head) | UInt64(length) << 32
        try write(element.littleEndian, at: usedField(SplitRingLayout.usedSlotOffset(index & (size - 1))))
    }

    /// Stores `used.idx` after `count` elements were written.
    private mutating func publishUsed(upTo index: UInt16, count: Int) throws(VirtqueueError) {
        try store(index, at: usedField(SplitRingLayout.usedIndexOffset))
        // The EVENT_IDX comparison works modulo 2^16 on distances below 2^15; past
        // that the last signalled index can no longer be compared (as QEMU does).
        if count >= 0x8000 || Int16(bitPattern: index &- signalledUsedIndex) <= 0 {
            signalledUsedIndexValid = false
        }
        usedIndex = index
        pushedSinceDecision = true
    }

    /// Whether the driver has made buffers available that were not taken yet,
    /// without taking any (for a device's polling window).
    public func hasAvailable() throws(VirtqueueError) -> Bool {
        try load(at: availableField(SplitRingLayout.availableIndexOffset)) != lastAvailableIndex
    }

    // MARK: Notification suppression

    /// Whether the driver wants an interrupt for the entries pushed since the
    /// last call (§2.7.7). False if nothing was pushed since then.
    public mutating func needsInterrupt() throws(VirtqueueError) -> Bool {
        guard pushedSinceDecision else { return false }
        // The used.idx store must be visible before we read the driver's
        // used_event or flags, or both sides may wait for each other.
        vmd_memory_fence()
        let old = signalledUsedIndex
        let wasValid = signalledUsedIndexValid
        signalledUsedIndex = usedIndex
        signalledUsedIndexValid = true
        pushedSinceDecision = false
        if eventIndex {
            // §2.7.7.2 with EVENT_IDX: interrupt iff used.idx passed used_event
            // (avail->ring[size]) since the last interrupt decision.
            if !wasValid { return true }
            let usedEvent: UInt16 = try read(at: availableField(SplitRingLayout.usedEventOffset(size: size)))
            return SplitRingLayout.needsEvent(event: usedEvent, new: usedIndex, old: old)
        } else {
            // §2.7.7.2 without EVENT_IDX: unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT.
            let flags: UInt16 = try read(at: availableField(SplitRingLayout.availableFlagsOffset))
            return flags & VirtqueueRingFlags.availableNoInterrupt == 0
        }
    }

    /// Asks the driver not to kick while the device is busy taking buffers (§2.7.10).
    /// With EVENT_IDX nothing is written: `avail_event` stays at the entry the
    /// device last asked about, which the driver has already passed.
    public mutating func disableNotifications() throws(VirtqueueError) {
        if eventIndex { return }
        try setUsedFlags(VirtqueueRingFlags.usedNoNotify)
    }

    /// Asks the driver to kick for the next buffer (§2.7.10) and returns true if
    /// buffers arrived meanwhile, so the caller takes them instead of waiting
    /// for a kick that the driver may have decided not to send.
    public mutating func enableNotifications() throws(VirtqueueError) -> Bool {
        if eventIndex {
            // §2.7.10 with EVENT_IDX: kick when the entry at last_avail is made available.
            try write(lastAvailableIndex.littleEndian, at: usedField(SplitRingLayout.availableEventOffset(size: size)))
        } else {
            try setUsedFlags(0)
        }
        // Our write must be visible before we re-read avail.idx (store-load order):
        // otherwise the driver may read the old value and skip the kick while we
        // read the old idx and go to sleep.
        vmd_memory_fence()
        let availableIndex = try load(at: availableField(SplitRingLayout.availableIndexOffset))
        return availableIndex != lastAvailableIndex
    }

    // MARK: Guest memory (the rings were checked by VirtqueueConfiguration)

    private func availableField(_ offset: UInt64) -> GuestAddress {
        GuestAddress(configuration.availableRing.value + offset)
    }

    private func usedField(_ offset: UInt64) -> GuestAddress {
        GuestAddress(configuration.usedRing.value + offset)
    }

    private func setUsedFlags(_ flags: UInt16) throws(VirtqueueError) {
        try write(flags.littleEndian, at: usedField(SplitRingLayout.usedFlagsOffset))
    }

    private func load(at address: GuestAddress) throws(VirtqueueError) -> UInt16 {
        do { return UInt16(littleEndian: try memory.loadAcquire(UInt16.self, at: address)) } catch {
            throw .ringInaccessible(error)
        }
    }

    private func store(_ value: UInt16, at address: GuestAddress) throws(VirtqueueError) {
        do { try memory.storeRelease(value.littleEndian, at: address) } catch {
            throw .ringInaccessible(error)
        }
    }

    private func read(at address: GuestAddress) throws(VirtqueueError) -> UInt16 {
        do { return UInt16(littleEndian: try memory.read(UInt16.self, at: address)) } catch {
            throw .ringInaccessible(error)
        }
    }

    private func write<Value: GuestPlainData>(_ value: Value, at address: GuestAddress) throws(VirtqueueError) {
        do { try memory.write(value, at: address) } catch {
            throw .ringInaccessible(error)
        }
    }
}

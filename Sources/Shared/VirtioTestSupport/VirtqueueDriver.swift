import GuestRAM
import MemorySlots
import VirtioCore
/// The driver side of one split virtqueue, for tests and fuzzers: what a guest's
/// virtio driver does (virtio 1.2 §2.7.13, §2.7.14), plus raw pokes to play a
/// hostile guest. It trusts nothing the device writes but checks little itself:
/// it is a test tool, not a driver.
///
/// Layout from `base` (16-byte aligned): the descriptor table, the available
/// ring right after it, the used ring at the next 4-byte boundary. Field
/// offsets are spelled out here rather than taken from `SplitRingLayout`, so
/// tests of the device against this driver also check the device's layout.
public struct VirtqueueDriver {
    /// One buffer of a chain, as the driver describes it.
    public struct Buffer: Equatable, Sendable {
        public let address: GuestAddress
        public let length: UInt32
        public let writable: Bool

        public init(address: GuestAddress, length: UInt32, writable: Bool) {
            self.address = address
            self.length = length
            self.writable = writable
        }
    }

    /// `struct virtq_used_elem` as the device wrote it (§2.7.8).
    public struct UsedElement: Equatable, Sendable {
        public let id: UInt32
        public let length: UInt32

        public init(id: UInt32, length: UInt32) {
            self.id = id
            self.length = length
        }
    }

    public enum Failure: Error, Equatable {
        /// Not enough free descriptors for the chain.
        case noFreeDescriptors(needed: Int, free: Int)
    }

    public let memory: GuestMemory
    public let size: UInt16
    public let descriptorTable: GuestAddress
    public let availableRing: GuestAddress
    public let usedRing: GuestAddress
    /// avail.idx as the driver will publish it: entries added since the last
    /// `publish()` sit below it.
    public private(set) var availableIndex: UInt16 = 0
    /// The next used ring entry `popUsed()` reads.
    public private(set) var lastUsedIndex: UInt16 = 0
    private var freeDescriptors: [UInt16]
    /// The descriptors each chain in flight holds, by head.
    private var inFlight: [UInt16: [UInt16]] = [:]

    /// Bytes the three parts take from `base`.
    public static func footprint(size: UInt16) -> UInt64 {
        usedRingOffset(size: size) + SplitRingLayout.usedRingBytes(size: size)
    }

    private static func usedRingOffset(size: UInt16) -> UInt64 {
        let availableEnd = SplitRingLayout.descriptorTableBytes(size: size) + SplitRingLayout.availableRingBytes(size: size)
        return (availableEnd + 3) & ~3
    }

    /// Lays out a zeroed queue of `size` entries at `base`.
    public init(memory: GuestMemory, base: GuestAddress, size: UInt16) throws {
        precondition(base.isAligned(to: SplitRingLayout.descriptorTableAlignment), "descriptor table must be 16-byte aligned")
        precondition(size > 0 && size.nonzeroBitCount == 1 && size <= SplitRingLayout.maximumQueueSize, "bad queue size")
        self.memory = memory
        self.size = size
        self.descriptorTable = base
        self.availableRing = GuestAddress(base.value + SplitRingLayout.descriptorTableBytes(size: size))
        self.usedRing = GuestAddress(base.value + Self.usedRingOffset(size: size))
        self.freeDescriptors = Array((0..<size).reversed())
        try memory.fill(0, at: base, count: Self.footprint(size: size))
    }

    /// The configuration a device would validate for this queue.
    public func configuration(maximumSize: UInt16 = SplitRingLayout.maximumQueueSize) throws(VirtqueueConfigurationError) -> VirtqueueConfiguration {
        try VirtqueueConfiguration(
            size: size, descriptorTable: descriptorTable, availableRing: availableRing,
            usedRing: usedRing, maximumSize: maximumSize, memory: memory
        )
    }

    // MARK: Adding chains (§2.7.13)

    /// Adds a chain of direct descriptors and makes its head the next available
    /// entry (not yet published). Returns the head.
    @discardableResult
    public mutating func add(_ buffers: [Buffer]) throws -> UInt16 {
        try add(buffers, indirect: nil)
    }

    /// Adds `direct` descriptors followed by one indirect descriptor whose table,
    /// holding `indirect`, is written at `tableAt` (§2.7.5.3). Returns the head.
    @discardableResult
    public mutating func add(_ direct: [Buffer] = [], indirect: [Buffer], tableAt table: GuestAddress) throws -> UInt16 {
        for (position, buffer) in indirect.enumerated() {
            let last = position == indirect.count - 1
            try writeDescriptor(
                at: GuestAddress(table.value + SplitRingLayout.descriptorSize * UInt64(position)),
                address: buffer.address.value, length: buffer.length,
                flags: (buffer.writable ? VirtqueueDescriptorFlags.write : 0) | (last ? 0 : VirtqueueDescriptorFlags.next),
                next: last ? 0 : UInt16(position + 1)
            )
        }
        let tableLength = UInt32(indirect.count) * UInt32(SplitRingLayout.descriptorSize)
        return try add(direct, indirect: (table, tableLength))
    }

    private mutating func add(_ buffers: [Buffer], indirect: (GuestAddress, UInt32)?) throws -> UInt16 {
        let needed = buffers.count + (indirect == nil ? 0 : 1)
        precondition(needed > 0, "a chain has at least one descriptor")
        guard needed <= freeDescriptors.count else {
            throw Failure.noFreeDescriptors(needed: needed, free: freeDescriptors.count)
        }
        let indices = Array(freeDescriptors.suffix(needed).reversed())
        freeDescriptors.removeLast(needed)
        for (position, buffer) in buffers.enumerated() {
            let last = position == needed - 1
            try writeDescriptor(
                indices[position], address: buffer.address.value, length: buffer.length,
                flags: (buffer.writable ? VirtqueueDescriptorFlags.write : 0) | (last ? 0 : VirtqueueDescriptorFlags.next),
                next: last ? 0 : indices[position + 1]
            )
        }
        if let (table, length) = indirect {
            try writeDescriptor(indices[needed - 1], address: table.value, length: length,
                                flags: VirtqueueDescriptorFlags.indirect, next: 0)
        }
        let head = indices[0]
        inFlight[head] = indices
        try makeAvailable(head: head)
        return head
    }

    /// Puts `head` in the next available ring slot and counts it, without
    /// publishing: for chains written with `writeDescriptor`.
    public mutating func makeAvailable(head: UInt16) throws {
        try writeAvailableSlot(availableIndex & (size - 1), head: head)
        availableIndex &+= 1
    }

    /// Publishes every entry added so far: avail.idx with release ordering (§2.7.13.3).
    public func publish() throws {
        try memory.storeRelease(availableIndex.littleEndian, at: GuestAddress(availableRing.value + 2))
    }

    // MARK: Used ring (§2.7.14)

    /// The next used element, or nil if the device has not returned one. Frees
    /// the descriptors of a chain added with `add`.
    public mutating func popUsed() throws -> UsedElement? {
        guard try usedIndex() != lastUsedIndex else { return nil }
        let element = try usedElement(slot: lastUsedIndex & (size - 1))
        lastUsedIndex &+= 1
        if let head = UInt16(exactly: element.id), let indices = inFlight.removeValue(forKey: head) {
            freeDescriptors.append(contentsOf: indices)
        }
        return element
    }

    /// The used element in ring slot `slot` (0..<size).
    public func usedElement(slot: UInt16) throws -> UsedElement {
        let raw = UInt64(littleEndian: try memory.read(UInt64.self, at: GuestAddress(usedRing.value + 4 + 8 * UInt64(slot))))
        return UsedElement(id: UInt32(truncatingIfNeeded: raw), length: UInt32(truncatingIfNeeded: raw >> 32))
    }

    /// used.idx, read with acquire ordering.
    public func usedIndex() throws -> UInt16 {
        UInt16(littleEndian: try memory.loadAcquire(UInt16.self, at: GuestAddress(usedRing.value + 2)))
    }

    public func usedFlags() throws -> UInt16 {
        UInt16(littleEndian: try memory.read(UInt16.self, at: usedRing))
    }

    /// avail_event (`used->ring[size]`), written by the device with EVENT_IDX (§2.7.10).
    public func availableEvent() throws -> UInt16 {
        UInt16(littleEndian: try memory.read(UInt16.self, at: GuestAddress(usedRing.value + 4 + 8 * UInt64(size))))
    }

    /// Whether the driver must kick after moving avail.idx from `old` to its
    /// current value (§2.7.10): avail_event with EVENT_IDX, else VIRTQ_USED_F_NO_NOTIFY.
    public func needsKick(since old: UInt16, eventIndex: Bool) throws -> Bool {
        if eventIndex {
            return SplitRingLayout.needsEvent(event: try availableEvent(), new: availableIndex, old: old)
        }
        return try usedFlags() & VirtqueueRingFlags.usedNoNotify == 0
    }

    /// used_event (`avail->ring[size]`): interrupt me once used.idx passes it (§2.7.7).
    public func setUsedEvent(_ index: UInt16) throws {
        try memory.write(index.littleEndian, at: GuestAddress(availableRing.value + 4 + 2 * UInt64(size)))
    }

    /// avail.flags, e.g. VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7).
    public func setAvailableFlags(_ flags: UInt16) throws {
        try memory.write(flags.littleEndian, at: availableRing)
    }

    // MARK: Raw pokes, for hostile guests

    /// Writes descriptor `index` of the descriptor table, any values at all.
    public func writeDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        try writeDescriptor(
            at: GuestAddress(descriptorTable.value + SplitRingLayout.descriptorSize * UInt64(index)),
            address: address, length: length, flags: flags, next: next
        )
    }

    /// Writes a descriptor anywhere, e.g. into an indirect table.
    public func writeDescriptor(at location: GuestAddress, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        let high = UInt64(length) | UInt64(flags) << 32 | UInt64(next) << 48
        try memory.write(address.littleEndian, at: location)
        try memory.write(high.littleEndian, at: GuestAddress(location.value + 8))
    }

    /// Sets avail.idx to anything (release ordering) and takes it as the driver's own.
    public mutating func setAvailableIndex(_ index: UInt16) throws {
        availableIndex = index
        try publish()
    }

    /// Writes any head into available ring slot `slot` (taken modulo 2^16, not the size).
    public func writeAvailableSlot(_ slot: UInt16, head: UInt16) throws {
        try memory.write(head.littleEndian, at: GuestAddress(availableRing.value + 4 + 2 * UInt64(slot)))
    }
}

import GuestRAM
import MemorySlots
/// One descriptor as read from guest memory, copied out once so the guest
/// cannot change a field between our check and our use (virtio 1.2 §2.7.5).
struct RawDescriptor {
    let address: UInt64
    let length: UInt32
    let flags: UInt16
    let next: UInt16

    /// Reads the 16 bytes of `struct virtq_desc` at `address` in one copy.
    init(memory: GuestMemory, at address: GuestAddress) throws(GuestMemoryError) {
        let words = try memory.read(Words.self, at: address)
        let high = UInt64(littleEndian: words.high)
        self.address = UInt64(littleEndian: words.low)
        self.length = UInt32(truncatingIfNeeded: high)
        self.flags = UInt16(truncatingIfNeeded: high >> 32)
        self.next = UInt16(truncatingIfNeeded: high >> 48)
    }

    /// The descriptor as two little-endian words: address, then length, flags and next.
    struct Words: GuestPlainData {
        var low: UInt64
        var high: UInt64
    }

    var hasNext: Bool { flags & VirtqueueDescriptorFlags.next != 0 }
    var isWritable: Bool { flags & VirtqueueDescriptorFlags.write != 0 }
    var isIndirect: Bool { flags & VirtqueueDescriptorFlags.indirect != 0 }
}

/// Follows one descriptor chain from its head and turns it into a checked
/// `DescriptorChain`, or says exactly which rule of virtio 1.2 §2.7 it breaks.
struct DescriptorChainWalker {
    let memory: GuestMemory
    let descriptorTable: GuestAddress
    let size: UInt16
    let indirectNegotiated: Bool
    /// The most bytes a chain may describe, at most UInt32.max (§2.7.5.2).
    let maximumChainBytes: UInt32

    /// The buffers found so far and the ordering and length rules across them.
    private struct Accumulator {
        var buffers: [DescriptorBuffer]
        var readableCount = 0
        var sawWritable = false
        var totalBytes: UInt64 = 0
    }

    /// Walks the chain at `head` into `scratch` (emptied first, its capacity kept, so a
    /// chain costs no allocation when the caller let go of the previous one).
    func walk(head: UInt16, into scratch: inout [DescriptorBuffer]) throws(VirtqueueError) -> DescriptorChain {
        scratch.removeAll(keepingCapacity: true)
        var buffers = Accumulator(buffers: scratch)
        scratch = []  // one owner while appending
        defer { scratch = buffers.buffers }
        try walkChain(head: head, into: &buffers)
        return DescriptorChain(head: head, buffers: buffers.buffers, readableCount: buffers.readableCount)
    }

    private func walkChain(head: UInt16, into buffers: inout Accumulator) throws(VirtqueueError) {
        precondition(head < size, "the caller checks the head against the queue size")
        var index = head
        var visited: UInt32 = 0
        while true {
            // §2.7.5: the table has `size` entries, the longest possible chain;
            // more means a loop (§2.7.5.2).
            visited += 1
            guard visited <= UInt32(size) else { throw .chainTooLong(limit: size) }
            let descriptor: RawDescriptor
            do {
                descriptor = try RawDescriptor(
                    memory: memory,
                    at: GuestAddress(descriptorTable.value + SplitRingLayout.descriptorSize * UInt64(index))
                )
            } catch {
                throw .ringInaccessible(error)
            }
            if descriptor.isIndirect {
                // §2.7.5.3.1: only with INDIRECT_DESC negotiated, and never with NEXT,
                // so an indirect descriptor ends the chain (§2.7.5.3.2).
                guard indirectNegotiated else { throw .indirectNotNegotiated(index: index) }
                guard !descriptor.hasNext else { throw .indirectWithNext(index: index) }
                try walkIndirect(descriptor, into: &buffers)
                break
            }
            try append(descriptor, to: &buffers)
            guard descriptor.hasNext else { break }
            // §2.7.5: `next` indexes the descriptor table.
            guard descriptor.next < size else { throw .nextOutOfRange(next: descriptor.next, size: size) }
            index = descriptor.next
        }
    }

    /// Follows the chain inside the indirect table `table` points at (§2.7.5.3).
    /// The WRITE flag of `table` itself is ignored (§2.7.5.3.2).
    private func walkIndirect(_ table: RawDescriptor, into buffers: inout Accumulator) throws(VirtqueueError) {
        // §2.7.5.3: the table holds len/16 descriptors.
        let descriptorSize = UInt32(SplitRingLayout.descriptorSize)
        guard table.length > 0, table.length % descriptorSize == 0 else {
            throw .indirectTableLength(table.length)
        }
        let entries = table.length / descriptorSize
        // §2.7.5.3.1: no longer chain than the device allows; we allow the largest queue.
        guard entries <= UInt32(SplitRingLayout.maximumQueueSize) else {
            throw .indirectTableTooLarge(entries: entries)
        }
        let base = GuestAddress(table.address)
        do {
            try memory.forEachSlice(at: base, length: UInt64(table.length), forWriting: false)
        } catch {
            throw .indirectTableOutsideGuestMemory(error)
        }
        var index: UInt16 = 0
        var visited: UInt32 = 0
        while true {
            // Each entry at most once; more means a loop inside the table (§2.7.5.2).
            visited += 1
            guard visited <= entries else { throw .indirectChainTooLong(limit: entries) }
            let descriptor: RawDescriptor
            do {
                // Cannot overflow or leave RAM: the whole table was checked above.
                descriptor = try RawDescriptor(
                    memory: memory,
                    at: GuestAddress(base.value + SplitRingLayout.descriptorSize * UInt64(index))
                )
            } catch {
                throw .indirectTableOutsideGuestMemory(error)
            }
            // §2.7.5.3.1: one level of indirection only.
            guard !descriptor.isIndirect else { throw .nestedIndirect(index: index) }
            try append(descriptor, to: &buffers)
            guard descriptor.hasNext else { return }
            // §2.7.5.3: `next` indexes the indirect table.
            guard UInt32(descriptor.next) < entries else {
                throw .indirectNextOutOfRange(next: descriptor.next, entries: entries)
            }
            index = descriptor.next
        }
    }

    /// Checks one buffer descriptor and adds it to the chain.
    private func append(_ descriptor: RawDescriptor, to buffers: inout Accumulator) throws(VirtqueueError) {
        // §2.7.4.2: device-readable descriptors come before device-writable ones.
        if !descriptor.isWritable && buffers.sawWritable { throw .readableAfterWritable }
        // §2.7.5.2: at most 2^32 bytes in a chain; summed in 64 bits, so no overflow.
        buffers.totalBytes += UInt64(descriptor.length)
        guard buffers.totalBytes <= UInt64(maximumChainBytes) else {
            throw .chainTooLarge(total: buffers.totalBytes, limit: maximumChainBytes)
        }
        let address = GuestAddress(descriptor.address)
        // A zero-length buffer names no byte, so there is nothing to check in RAM;
        // it still counts towards the chain length limits above.
        if descriptor.length > 0 {
            do {
                try memory.forEachSlice(at: address, length: UInt64(descriptor.length), forWriting: descriptor.isWritable)
            } catch {
                throw .bufferOutsideGuestMemory(error)
            }
        }
        buffers.buffers.append(DescriptorBuffer(address: address, length: descriptor.length))
        if descriptor.isWritable {
            buffers.sawWritable = true
        } else {
            buffers.readableCount += 1
        }
    }
}

import Glibc
import CLinux
import LinuxSystem
import MemorySlots

/// One slot of guest RAM as mapped in this process.
final class GuestRegion {
    let slot: SlotDescriptor
    let host: UnsafeMutableRawPointer
    /// Set for unsealed mappings (tests); sealed guest RAM has no owner (see `SealedMapping`).
    private let owner: MemoryMapping?

    init(slot: SlotDescriptor, sealed: SealedMapping) {
        precondition(UInt64(sealed.size) == slot.size, "mapping and slot disagree")
        self.slot = slot
        self.host = sealed.base
        self.owner = nil
    }

    init(slot: SlotDescriptor, owning mapping: consuming MemoryMapping) {
        precondition(UInt64(mapping.size) == slot.size, "mapping and slot disagree")
        self.slot = slot
        self.host = mapping.base
        self.owner = consume mapping
    }
}

/// All access to guest memory (design §2): guest-physical address in, bounds-
/// and overflow-checked, split across adjacent slots, honouring each slot's access.
/// No caller ever sees a raw pointer; `VolatileSlice` is the narrowest window.
///
/// The checks and copies allocate nothing: devices make several of them per packet
/// or request, and an array per access was most of a device's time (perf, issue 8).
public struct GuestMemory: @unchecked Sendable {
    /// Where one slot is, as plain values: the fast path touches no reference counts.
    private struct Span {
        let guestBase: UInt64
        let size: UInt64
        let host: UnsafeMutableRawPointer
        let readOnly: Bool
    }

    /// Address-ordered, never overlapping.
    private let spans: [Span]
    /// Keeps the mappings alive (unsealed test mappings are unmapped with their owner).
    private let regions: [GuestRegion]
    /// Shared by every copy: the pages written through this process's mapping, while a live migration runs.
    let dirtyLog: DirtyPageLog

    init(regions: [GuestRegion]) {
        let sorted = regions.sorted { $0.slot.guestBase < $1.slot.guestBase }
        for (lower, upper) in zip(sorted, sorted.dropFirst()) {
            precondition(lower.slot.guestEnd.map { $0 <= upper.slot.guestBase } ?? false, "slots overlap")
        }
        self.regions = sorted
        dirtyLog = DirtyPageLog(slotSizes: sorted.map(\.slot.size))
        self.spans = sorted.map {
            Span(guestBase: $0.slot.guestBase.value, size: $0.slot.size, host: $0.host, readOnly: $0.slot.access == .readOnly)
        }
    }

    /// Guest memory backed by private anonymous mappings, for tests and tools.
    public static func anonymous(_ slots: [SlotDescriptor]) throws -> GuestMemory {
        var regions: [GuestRegion] = []
        for slot in slots {
            let mapping = try MemoryMapping(anonymousSize: Int(slot.size))
            regions.append(GuestRegion(slot: slot, owning: mapping))
        }
        return GuestMemory(regions: regions)
    }

    public var slots: [SlotDescriptor] { regions.map(\.slot) }

    /// Starts logging the pages this process writes into `bitmap` (a live migration's, as
    /// `DirtyPageLog` lays it out for these slots); `stopLoggingWrites` ends it.
    public func logWrites(into bitmap: FileDescriptor) throws {
        let bytes = DirtyPageLog.bitmapBytes(slotSizes: spans.map(\.size))
        guard try bitmap.fileSize() >= Int64(bytes) else { throw SystemError("dirty-page bitmap smaller than \(bytes) bytes", errno: EINVAL) }
        dirtyLog.start(try MemoryMapping(fd: bitmap, size: bytes, writable: true))
    }

    public func stopLoggingWrites() { dirtyLog.stop() }

    /// The host address of each slot, for KVM_SET_USER_MEMORY_REGION only.
    public var kvmUserspaceAddresses: [(slot: SlotDescriptor, userspaceAddress: UInt64)] {
        regions.map { ($0.slot, UInt64(UInt(bitPattern: $0.host))) }
    }

    // MARK: Slices

    /// Calls `body` with the slices covering `[address, address + length)`, one per slot
    /// it touches, in order, after checking all of them: nothing is called if any byte is
    /// outside RAM, if the range overflows, or (for writing) if any slot is read-only.
    /// Returns how many slices there were. A zero length names one empty slice at `address`.
    @discardableResult
    public func forEachSlice(
        at address: GuestAddress, length: UInt64, forWriting: Bool,
        _ body: (VolatileSlice) throws(GuestMemoryError) -> Void = { _ in }
    ) throws(GuestMemoryError) -> Int {
        if let slice = try sliceInOneSlot(at: address, length: length, forWriting: forWriting) {
            // The usual case: one slot holds it all.
            try body(slice)
            return 1
        }
        // Check every slot the range reaches before handing out any slice.
        let first = try span(containing: address.value, forWriting: forWriting)
        let offset = address.value - spans[first].guestBase
        var count = 1
        var cursor = spans[first].guestBase + spans[first].size
        var remaining = length - (spans[first].size - offset)
        while remaining > 0 {
            let index = try span(containing: cursor, forWriting: forWriting)
            let chunk = min(remaining, spans[index].size)
            remaining -= chunk
            cursor += chunk
            count += 1
        }
        cursor = address.value
        remaining = length
        var index = first
        while remaining > 0 {
            let start = cursor - spans[index].guestBase
            let chunk = min(remaining, spans[index].size - start)
            // SAFETY: `start + chunk <= size` of this span, whose mapping is `size` bytes from `host`;
            // the whole range was checked (first loop) before the first callback.
            if forWriting { dirtyLog.mark(slot: index, offset: start, length: chunk) }
            try body(VolatileSlice(base: spans[index].host + Int(start), count: Int(chunk)))
            remaining -= chunk
            cursor += chunk
            index += 1
        }
        return count
    }

    /// The index of the span holding `address`, checked for access.
    private func span(containing address: UInt64, forWriting: Bool) throws(GuestMemoryError) -> Int {
        for index in spans.indices where address >= spans[index].guestBase && address - spans[index].guestBase < spans[index].size {
            if forWriting && spans[index].readOnly { throw .readOnly(GuestAddress(address)) }
            return index
        }
        throw .unmapped(GuestAddress(address))
    }

    /// The slices covering `[address, address + length)`, one per slot it touches.
    /// Fails if any byte is outside RAM, if the range overflows, or (for writing)
    /// if any slot is read-only.
    public func slices(at address: GuestAddress, length: UInt64, forWriting: Bool) throws(GuestMemoryError) -> [VolatileSlice] {
        var result: [VolatileSlice] = []
        try forEachSlice(at: address, length: length, forWriting: forWriting) { result.append($0) }
        return result
    }

    /// A single contiguous slice, for structures that must not span slots (rings).
    public func contiguousSlice(at address: GuestAddress, length: UInt64, forWriting: Bool) throws(GuestMemoryError) -> VolatileSlice {
        if let slice = try sliceInOneSlot(at: address, length: length, forWriting: forWriting) { return slice }
        // Spans two slots: the first address past the first slot is where it breaks.
        let index = try span(containing: address.value, forWriting: forWriting)
        throw .unmapped(GuestAddress(spans[index].guestBase + spans[index].size))
    }

    /// The slice of `[address, address + length)` when one slot holds all of it, nil when it
    /// runs on past that slot; throws when the range overflows or its start is not accessible.
    private func sliceInOneSlot(at address: GuestAddress, length: UInt64, forWriting: Bool) throws(GuestMemoryError) -> VolatileSlice? {
        guard address.adding(length) != nil else { throw .overflow(address, length: length) }
        let index = try span(containing: address.value, forWriting: forWriting)
        let offset = address.value - spans[index].guestBase
        guard length <= spans[index].size - offset else { return nil }
        if forWriting { dirtyLog.mark(slot: index, offset: offset, length: length) }
        // SAFETY: `offset + length <= size` (checked just above, no overflow: offset < size).
        return VolatileSlice(base: spans[index].host + Int(offset), count: Int(length))
    }

    // MARK: Bytes

    public func read(into buffer: UnsafeMutableRawBufferPointer, at address: GuestAddress) throws(GuestMemoryError) {
        var done = 0
        try forEachSlice(at: address, length: UInt64(buffer.count), forWriting: false) { slice in
            // SAFETY: the slices add up to `buffer.count` (forEachSlice covers exactly the length asked).
            slice.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + slice.count)]))
            done += slice.count
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at address: GuestAddress) throws(GuestMemoryError) {
        var done = 0
        try forEachSlice(at: address, length: UInt64(bytes.count), forWriting: true) { slice in
            // SAFETY: as in `read(into:at:)`.
            slice.copyBytes(from: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + slice.count)]))
            done += slice.count
        }
    }

    public func readBytes(at address: GuestAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: GuestMemoryError?  // withUnsafeMutableBytes only rethrows untyped errors
        bytes.withUnsafeMutableBytes { buffer in
            do throws(GuestMemoryError) { try read(into: buffer, at: address) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    public func writeBytes(_ bytes: [UInt8], at address: GuestAddress) throws(GuestMemoryError) {
        var failure: GuestMemoryError?
        bytes.withUnsafeBytes { buffer in
            do throws(GuestMemoryError) { try write(buffer, at: address) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public func fill(_ byte: UInt8, at address: GuestAddress, count: UInt64) throws(GuestMemoryError) {
        try forEachSlice(at: address, length: count, forWriting: true) { $0.fill(byte) }
    }

    // MARK: Plain-old-data values (little-endian, as the guest stores them)

    // Inlinable, so that each caller gets a copy for its own type: a generic call across
    // modules asked the runtime for Value's metadata every time (perf: 5 % of virtio-blk's
    // time at 4 KiB requests, in the descriptor walk).

    @inlinable
    public func read<Value: GuestPlainData>(_ type: Value.Type, at address: GuestAddress) throws(GuestMemoryError) -> Value {
        if let base = try addressInOneSlot(at: address, length: UInt64(MemoryLayout<Value>.size), forWriting: false) {
            // SAFETY: `size` bytes inside one mapped slot (checked by addressInOneSlot); any bit
            // pattern is a valid Value (GuestPlainData); unaligned loads are allowed.
            return base.loadUnaligned(as: Value.self)
        }
        // Split across two slots: assemble it in a temporary.
        return try withUnsafeTemporaryAllocation(of: Value.self, capacity: 1) { storage throws(GuestMemoryError) in
            // SAFETY: the buffer is exactly one Value; `read(into:)` fills all of it or throws.
            try read(into: UnsafeMutableRawBufferPointer(storage), at: address)
            return storage[0]
        }
    }

    @inlinable
    public func write<Value: GuestPlainData>(_ value: Value, at address: GuestAddress) throws(GuestMemoryError) {
        // SAFETY: the bytes of a GuestPlainData value are all there is to it (no pointers, no references).
        try withUnsafeBytes(of: value) { bytes throws(GuestMemoryError) in try write(bytes, at: address) }
    }

    /// `sliceInOneSlot`'s address, for the inlined reads above; not for other callers.
    @usableFromInline
    func addressInOneSlot(at address: GuestAddress, length: UInt64, forWriting: Bool) throws(GuestMemoryError) -> UnsafeMutableRawPointer? {
        try sliceInOneSlot(at: address, length: length, forWriting: forWriting)?.base
    }

    // MARK: Atomics (virtqueue indices; virtio 1.2 §2.7.13 needs acquire/release ordering)

    private func alignedPointer(at address: GuestAddress, size: Int, forWriting: Bool) throws(GuestMemoryError) -> UnsafeMutableRawPointer {
        guard address.isAligned(to: UInt64(size)) else { throw GuestMemoryError.misaligned(address, alignment: size) }
        // SAFETY: `size` bytes inside one slot (contiguousSlice), naturally aligned (the slot
        // bases are page-aligned and the guest address is aligned), as the atomics need.
        return try contiguousSlice(at: address, length: UInt64(size), forWriting: forWriting).base
    }

    public func loadAcquire(_ type: UInt16.Type, at address: GuestAddress) throws(GuestMemoryError) -> UInt16 {
        vmd_atomic_load_u16_acquire(try alignedPointer(at: address, size: 2, forWriting: false))
    }

    public func storeRelease(_ value: UInt16, at address: GuestAddress) throws(GuestMemoryError) {
        vmd_atomic_store_u16_release(try alignedPointer(at: address, size: 2, forWriting: true), value)
    }

    public func loadAcquire(_ type: UInt32.Type, at address: GuestAddress) throws(GuestMemoryError) -> UInt32 {
        vmd_atomic_load_u32_acquire(try alignedPointer(at: address, size: 4, forWriting: false))
    }

    public func storeRelease(_ value: UInt32, at address: GuestAddress) throws(GuestMemoryError) {
        vmd_atomic_store_u32_release(try alignedPointer(at: address, size: 4, forWriting: true), value)
    }
}

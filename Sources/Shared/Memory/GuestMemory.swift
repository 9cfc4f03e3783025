import Glibc
import CLinux

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
public struct GuestMemory: @unchecked Sendable {
    private let regions: [GuestRegion]

    init(regions: [GuestRegion]) {
        let sorted = regions.sorted { $0.slot.guestBase < $1.slot.guestBase }
        for (lower, upper) in zip(sorted, sorted.dropFirst()) {
            precondition(lower.slot.guestEnd.map { $0 <= upper.slot.guestBase } ?? false, "slots overlap")
        }
        self.regions = sorted
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

    /// The host address of each slot, for KVM_SET_USER_MEMORY_REGION only.
    public var kvmUserspaceAddresses: [(slot: SlotDescriptor, userspaceAddress: UInt64)] {
        regions.map { ($0.slot, UInt64(UInt(bitPattern: $0.host))) }
    }

    // MARK: Slices

    /// The slices covering `[address, address + length)`, one per slot it touches.
    /// Fails if any byte is outside RAM, if the range overflows, or (for writing)
    /// if any slot is read-only.
    public func slices(at address: GuestAddress, length: UInt64, forWriting: Bool) throws -> [VolatileSlice] {
        guard address.adding(length) != nil else { throw GuestMemoryError.overflow(address, length: length) }
        var result: [VolatileSlice] = []
        var cursor = address
        var remaining = length
        repeat {
            guard let region = regions.first(where: { $0.slot.contains(cursor) }) else {
                throw GuestMemoryError.unmapped(cursor)
            }
            if forWriting && region.slot.access == .readOnly { throw GuestMemoryError.readOnly(cursor) }
            let offset = cursor.value - region.slot.guestBase.value
            let chunk = min(remaining, region.slot.size - offset)
            result.append(VolatileSlice(base: region.host + Int(offset), count: Int(chunk)))
            remaining -= chunk
            cursor = GuestAddress(cursor.value + chunk)
        } while remaining > 0
        return result
    }

    /// A single contiguous slice, for structures that must not span slots (rings).
    public func contiguousSlice(at address: GuestAddress, length: UInt64, forWriting: Bool) throws -> VolatileSlice {
        let parts = try slices(at: address, length: length, forWriting: forWriting)
        guard parts.count == 1 else {
            // Spans two slots: the first address past the first slot is where it breaks.
            throw GuestMemoryError.unmapped(GuestAddress(address.value + UInt64(parts[0].count)))
        }
        return parts[0]
    }

    // MARK: Bytes

    public func read(into buffer: UnsafeMutableRawBufferPointer, at address: GuestAddress) throws {
        var done = 0
        for slice in try slices(at: address, length: UInt64(buffer.count), forWriting: false) {
            slice.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + slice.count)]))
            done += slice.count
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at address: GuestAddress) throws {
        var done = 0
        for slice in try slices(at: address, length: UInt64(bytes.count), forWriting: true) {
            slice.copyBytes(from: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + slice.count)]))
            done += slice.count
        }
    }

    public func readBytes(at address: GuestAddress, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(into: $0, at: address) }
        return bytes
    }

    public func writeBytes(_ bytes: [UInt8], at address: GuestAddress) throws {
        try bytes.withUnsafeBytes { try write($0, at: address) }
    }

    public func fill(_ byte: UInt8, at address: GuestAddress, count: UInt64) throws {
        for slice in try slices(at: address, length: count, forWriting: true) { slice.fill(byte) }
    }

    // MARK: Plain-old-data values (little-endian, as the guest stores them)

    public func read<Value: BitwiseCopyable>(_ type: Value.Type, at address: GuestAddress) throws -> Value {
        try withUnsafeTemporaryAllocation(of: Value.self, capacity: 1) { storage in
            try read(into: UnsafeMutableRawBufferPointer(storage), at: address)
            return storage[0]
        }
    }

    public func write<Value: BitwiseCopyable>(_ value: Value, at address: GuestAddress) throws {
        try withUnsafeBytes(of: value) { try write($0, at: address) }
    }

    // MARK: Atomics (virtqueue indices; virtio 1.2 §2.7.13 needs acquire/release ordering)

    private func alignedPointer(at address: GuestAddress, size: Int, forWriting: Bool) throws -> UnsafeMutableRawPointer {
        guard address.isAligned(to: UInt64(size)) else { throw GuestMemoryError.misaligned(address, alignment: size) }
        return try contiguousSlice(at: address, length: UInt64(size), forWriting: forWriting).base
    }

    public func loadAcquire(_ type: UInt16.Type, at address: GuestAddress) throws -> UInt16 {
        vmd_atomic_load_u16_acquire(try alignedPointer(at: address, size: 2, forWriting: false))
    }

    public func storeRelease(_ value: UInt16, at address: GuestAddress) throws {
        vmd_atomic_store_u16_release(try alignedPointer(at: address, size: 2, forWriting: true), value)
    }

    public func loadAcquire(_ type: UInt32.Type, at address: GuestAddress) throws -> UInt32 {
        vmd_atomic_load_u32_acquire(try alignedPointer(at: address, size: 4, forWriting: false))
    }

    public func storeRelease(_ value: UInt32, at address: GuestAddress) throws {
        vmd_atomic_store_u32_release(try alignedPointer(at: address, size: 4, forWriting: true), value)
    }
}

import CLinux
import Synchronization

/// The pages this process wrote in guest RAM while a live migration runs (KVM logs the
/// guest's own writes; a device process's writes through its own mapping it cannot see).
/// The bitmap is a shared mapping the vm process made and hands to every device for the
/// migration: one bit per page, slot after slot in guest-address order (each slot whole
/// 64-bit words), set with atomic ORs from any thread, taken and cleared by vm each round.
/// A device that lied in it could only corrupt its own guest's memory, which it can anyway.
public final class DirtyPageLog: @unchecked Sendable {
    /// Set while logging: the bitmap's base address.
    private let bitmap = Atomic<UInt>(0)
    /// Each slot's first bit: fixed with the slots, so writers on other threads read it freely.
    private let firstBits: [UInt64]
    /// Every bitmap ever started, kept mapped: a write in flight when logging stops may still set a bit.
    private var mappings: [Mapped] = []
    public static let pageSize: UInt64 = 4096

    private final class Mapped {
        let mapping: MemoryMapping
        init(_ mapping: consuming MemoryMapping) { self.mapping = mapping }
    }

    init(slotSizes: [UInt64]) {
        var bit: UInt64 = 0
        firstBits = slotSizes.map { size in
            defer { bit += Self.words(size) * 64 }
            return bit
        }
    }

    private static func words(_ slotSize: UInt64) -> UInt64 { (slotSize / pageSize + 63) / 64 }

    /// How many bytes the bitmap of `slotSizes` takes.
    public static func bitmapBytes(slotSizes: [UInt64]) -> Int {
        slotSizes.reduce(0) { $0 + Int(words($1)) * 8 }
    }

    /// Starts setting bits in `mapping` (at least `bitmapBytes` long). One thread at a time.
    func start(_ mapping: consuming MemoryMapping) {
        let holder = Mapped(mapping)
        mappings.append(holder)
        bitmap.store(UInt(bitPattern: holder.mapping.base), ordering: .releasing)
    }

    func stop() {
        bitmap.store(0, ordering: .releasing)
    }

    /// Marks the pages of `[offset, offset + length)` of slot `slot` (offset in bytes from its base).
    @inline(__always)
    func mark(slot: Int, offset: UInt64, length: UInt64) {
        let base = bitmap.load(ordering: .acquiring)
        guard base != 0, length > 0, slot < firstBits.count else { return }
        var page = firstBits[slot] + offset / Self.pageSize
        let last = firstBits[slot] + (offset + length - 1) / Self.pageSize
        while page <= last {
            // SAFETY: `page` is a bit of this slot's words (the range lies inside the slot), inside the mapping.
            vmd_atomic_or_u64(UnsafeMutableRawPointer(bitPattern: base)! + Int(page / 64) * 8, 1 << (page % 64))
            page += 1
        }
    }
}

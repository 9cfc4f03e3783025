import Glibc
import CLinux
import LinuxSystem
import MemorySlots

/// Why a SHAREMEM slot table was refused by a receiver.
public enum SharedMemoryError: Error, Equatable, CustomStringConvertible {
    case countMismatch(slots: Int, fds: Int)
    case badSlot(SlotDescriptor, reason: String)
    case overlapping(SlotDescriptor, SlotDescriptor)
    case notSealed(SlotDescriptor, seals: Int32)
    case tooSmall(SlotDescriptor, fileSize: Int64)

    public var description: String {
        switch self {
        case .countMismatch(let slots, let fds): "slot table has \(slots) slots but \(fds) descriptors came with it"
        case .badSlot(let slot, let reason): "\(slot): \(reason)"
        case .overlapping(let a, let b): "\(a) overlaps \(b)"
        case .notSealed(let slot, let seals): "\(slot): memfd lacks shrink/grow seals (seals 0x\(String(seals, radix: 16)))"
        case .tooSmall(let slot, let size): "\(slot): memfd holds only \(size) bytes"
        }
    }
}

extension GuestMemory {
    /// The receiving half of the SHAREMEM handoff (design §2).
    ///
    /// Checks the table (page-aligned, no wrap, no overlap, each memfd sealed
    /// against shrinking and at least as large as its slot), maps each slot
    /// MAP_SHARED without PROT_EXEC, makes it non-inheritable and undumpable,
    /// seals the mapping with mseal, and closes every fd, whatever happens.
    public static func mapShared(slots: [SlotDescriptor], memfds: [FileDescriptor]) throws -> GuestMemory {
        defer { memfds.forEach { $0.close() } }
        guard slots.count == memfds.count else {
            throw SharedMemoryError.countMismatch(slots: slots.count, fds: memfds.count)
        }
        try validate(slots)
        var regions: [GuestRegion] = []
        for (slot, memfd) in zip(slots, memfds) {
            let seals = try retryingInterrupts("fcntl(F_GET_SEALS)") { vmd_fcntl_int(memfd.rawValue, VMD_F_GET_SEALS, 0) }
            guard seals & (VMD_F_SEAL_SHRINK | VMD_F_SEAL_GROW) == (VMD_F_SEAL_SHRINK | VMD_F_SEAL_GROW) else {
                throw SharedMemoryError.notSealed(slot, seals: seals)
            }
            let fileSize = try memfd.fileSize()
            guard fileSize >= 0, UInt64(fileSize) >= slot.size else { throw SharedMemoryError.tooSmall(slot, fileSize: fileSize) }
            let mapping = try MemoryMapping(fd: memfd, size: Int(slot.size), writable: slot.access == .readWrite)
            regions.append(GuestRegion(slot: slot, sealed: try mapping.seal()))
        }
        return GuestMemory(regions: regions)
    }

    static func validate(_ slots: [SlotDescriptor]) throws {
        for slot in slots {
            guard slot.size > 0, slot.size % pageSize == 0, slot.guestBase.isAligned(to: pageSize) else {
                throw SharedMemoryError.badSlot(slot, reason: "base and size must be whole pages")
            }
            guard slot.guestEnd != nil, slot.size <= UInt64(Int.max) else {
                throw SharedMemoryError.badSlot(slot, reason: "wraps the address space")
            }
        }
        let sorted = slots.sorted { $0.guestBase < $1.guestBase }
        for (lower, upper) in zip(sorted, sorted.dropFirst()) where lower.guestEnd! > upper.guestBase {
            throw SharedMemoryError.overlapping(lower, upper)
        }
    }
}

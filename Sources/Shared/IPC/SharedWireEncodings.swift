import LinuxSystem
import MemorySlots
/// Encodings several message enums share: slot tables, descriptor lists, device types.
/// The slot table of a SHAREMEM handoff on the wire; the memfds travel beside it, one per slot.
extension WireWriter {
    mutating func writeSlotTable(_ slots: [SlotDescriptor], memfds: [FileDescriptor]) {
        precondition(slots.count == memfds.count, "one memfd per slot")
        write(UInt32(slots.count))
        for slot in slots {
            write(slot.guestBase.value)
            write(slot.size)
            write(slot.access.rawValue)
        }
        memfds.forEach { write($0) }
    }
}

extension WireReader {
    static let maximumSlots = 8

    mutating func readSlotTable() throws -> (slots: [SlotDescriptor], memfds: [FileDescriptor]) {
        let count = try readCount(limit: WireReader.maximumSlots)
        var slots: [SlotDescriptor] = []
        for _ in 0..<count {
            let base = GuestAddress(try read(UInt64.self))
            let size = try read(UInt64.self)
            let rawAccess = try read(UInt8.self)
            guard let access = SlotAccess(rawValue: rawAccess) else { throw IPCError.malformed("slot access \(rawAccess)") }
            slots.append(SlotDescriptor(guestBase: base, size: size, access: access))
        }
        return (slots, try (0..<count).map { _ in try readDescriptor() })
    }

    /// `count` descriptors, bounded so garbage cannot make us allocate.
    mutating func readDescriptors(limit: Int) throws -> [FileDescriptor] {
        let count = try readCount(limit: limit)
        return try (0..<count).map { _ in try readDescriptor() }
    }
}

extension WireWriter {
    mutating func writeDescriptors(_ descriptors: [FileDescriptor]) {
        write(UInt32(descriptors.count))
        descriptors.forEach { write($0) }
    }
}

extension WireReader {
    /// A virtio device type, refused if it is not one we know.
    mutating func readDeviceType() throws -> VirtioDeviceType {
        let raw = try read(UInt16.self)
        guard let type = VirtioDeviceType(rawValue: raw) else { throw IPCError.malformed("device type \(raw)") }
        return type
    }
}

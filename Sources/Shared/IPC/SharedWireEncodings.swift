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

/// A device's `RateLimit`: for each bucket its rate and burst, 0 and 0 for none.
extension WireWriter {
    mutating func writeRateLimit(_ limit: RateLimit) {
        for bucket in [limit.bytes, limit.operations] {
            write(bucket?.rate ?? 0)
            write(bucket?.burst ?? 0)
        }
    }
}

extension WireReader {
    /// Refuses a bucket with a zero or absurd rate or burst: vmd's parser never sends one.
    mutating func readRateLimit() throws -> RateLimit {
        var buckets: [RateLimit.Bucket?] = []
        for name in ["bandwidth", "operations"] {
            let rate = try read(UInt64.self), burst = try read(UInt64.self)
            if rate == 0 && burst == 0 {
                buckets.append(nil)
                continue
            }
            guard (1...RateLimit.Bucket.maximum).contains(rate), (1...RateLimit.Bucket.maximum).contains(burst) else {
                throw IPCError.malformed("\(name) limit of \(rate)/s, burst \(burst)")
            }
            buckets.append(RateLimit.Bucket(rate: rate, burst: burst))
        }
        return RateLimit(bytes: buckets[0], operations: buckets[1])
    }
}

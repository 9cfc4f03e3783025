import IPC

/// What a snapshot must match to be restored into a VM: its RAM slots, vCPUs, boot kind and
/// virtio devices, in order. A restore into anything else is refused before a byte of RAM is read.
public struct SnapshotShape: Equatable, Sendable {
    public struct Slot: Equatable, Sendable {
        public var guestBase: UInt64
        public var size: UInt64
        public init(guestBase: UInt64, size: UInt64) { (self.guestBase, self.size) = (guestBase, size) }
    }

    public struct Device: Equatable, Sendable {
        public var type: UInt16
        public var queueCount: UInt16
        public var name: String
        public init(type: UInt16, queueCount: UInt16, name: String) { (self.type, self.queueCount, self.name) = (type, queueCount, name) }
    }

    public var vcpus: Int
    public var firmware: Bool
    public var slots: [Slot]
    public var devices: [Device]

    public init(vcpus: Int, firmware: Bool, slots: [Slot], devices: [Device]) {
        (self.vcpus, self.firmware, self.slots, self.devices) = (vcpus, firmware, slots, devices)
    }

    public var memoryBytes: UInt64 { slots.reduce(0) { $0 &+ $1.size } }

    /// Why a snapshot of shape `self` cannot become a VM of shape `vm`, nil if it can.
    public func mismatch(against vm: SnapshotShape) -> String? {
        if memoryBytes != vm.memoryBytes || slots != vm.slots {
            return "the snapshot has \(memoryBytes >> 20) MiB of RAM in \(slots.count) slots, the VM \(vm.memoryBytes >> 20) MiB in \(vm.slots.count)"
        }
        if vcpus != vm.vcpus { return "the snapshot has \(vcpus) vCPUs, the VM \(vm.vcpus)" }
        if firmware != vm.firmware {
            return "the snapshot \(firmware ? "booted through firmware" : "booted a kernel"), the VM \(vm.firmware ? "boots through firmware" : "boots a kernel")"
        }
        if devices != vm.devices {
            let describe = { (devices: [Device]) in
                devices.isEmpty ? "none" : devices.map { "\($0.name) (type \($0.type), \($0.queueCount) queues)" }.joined(separator: ", ")
            }
            return "the snapshot's devices are \(describe(devices)), the VM's \(describe(vm.devices))"
        }
        return nil
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(UInt32(vcpus))
        writer.write(firmware)
        writer.write(UInt32(slots.count))
        for slot in slots { writer.write(slot.guestBase); writer.write(slot.size) }
        writer.write(UInt32(devices.count))
        for device in devices { writer.write(device.type); writer.write(device.queueCount); writer.write(device.name) }
    }

    /// Bounded: at most 256 vCPUs, 8 slots and 64 devices, names of at most 64 bytes.
    public static func decode(from reader: inout WireReader) throws -> SnapshotShape {
        let vcpus = Int(try reader.read(UInt32.self))
        guard (1...256).contains(vcpus) else { throw SnapshotError.malformed("\(vcpus) vCPUs") }
        let firmware = try reader.read(Bool.self)
        let slots = try (0..<reader.readCount(limit: 8)).map { _ in
            Slot(guestBase: try reader.read(UInt64.self), size: try reader.read(UInt64.self))
        }
        for slot in slots where slot.size % SnapshotFormat.pageSize != 0 || slot.guestBase % SnapshotFormat.pageSize != 0 {
            throw SnapshotError.malformed("RAM slot at 0x\(String(slot.guestBase, radix: 16)) is not page-aligned")
        }
        let devices = try (0..<reader.readCount(limit: 64)).map { _ in
            Device(type: try reader.read(UInt16.self), queueCount: try reader.read(UInt16.self), name: try reader.read(String.self, limit: 64))
        }
        return SnapshotShape(vcpus: vcpus, firmware: firmware, slots: slots, devices: devices)
    }
}

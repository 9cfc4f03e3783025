/// The 256-byte configuration space of a PCI function, with a mask of the bits
/// the guest may write. Everything else reads back as set by the device.
struct PCIConfigSpace {
    static let size = 256
    private(set) var bytes = [UInt8](repeating: 0, count: PCIConfigSpace.size)
    private var writable = [UInt8](repeating: 0, count: PCIConfigSpace.size)

    // Standard header offsets (PCI Local Bus 3.0, §6.1).
    enum Offset {
        static let vendorID = 0x00
        static let deviceID = 0x02
        static let command = 0x04
        static let status = 0x06
        static let revision = 0x08
        static let classCode = 0x09  // prog-if, subclass, class
        static let headerType = 0x0E
        static let bar0 = 0x10
        static let subsystemVendorID = 0x2C
        static let subsystemID = 0x2E
        static let capabilitiesPointer = 0x34
        static let interruptLine = 0x3C
        static let interruptPin = 0x3D
    }
    enum Command {
        static let memorySpace: UInt16 = 1 << 1
        static let busMaster: UInt16 = 1 << 2
        static let interruptDisable: UInt16 = 1 << 10
    }
    static let statusCapabilitiesList: UInt16 = 1 << 4

    mutating func set8(_ offset: Int, _ value: UInt8, writableMask: UInt8 = 0) {
        bytes[offset] = value
        writable[offset] = writableMask
    }

    mutating func set16(_ offset: Int, _ value: UInt16, writableMask: UInt16 = 0) {
        for index in 0..<2 {
            set8(offset + index, UInt8(truncatingIfNeeded: value >> (8 * index)), writableMask: UInt8(truncatingIfNeeded: writableMask >> (8 * index)))
        }
    }

    mutating func set32(_ offset: Int, _ value: UInt32, writableMask: UInt32 = 0) {
        for index in 0..<4 {
            set8(offset + index, UInt8(truncatingIfNeeded: value >> (8 * index)), writableMask: UInt8(truncatingIfNeeded: writableMask >> (8 * index)))
        }
    }

    func read(offset: Int, size: Int) -> UInt32 {
        guard offset >= 0, size > 0, offset + size <= PCIConfigSpace.size else { return UInt32.max }
        var value: UInt32 = 0
        for index in 0..<size { value |= UInt32(bytes[offset + index]) << (8 * index) }
        return value
    }

    func read16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: read(offset: offset, size: 2)) }
    func read32(_ offset: Int) -> UInt32 { read(offset: offset, size: 4) }

    /// Applies a guest write through the writable mask.
    mutating func write(offset: Int, data: [UInt8]) {
        guard offset >= 0, offset + data.count <= PCIConfigSpace.size else { return }
        for (index, byte) in data.enumerated() {
            let mask = writable[offset + index]
            bytes[offset + index] = (bytes[offset + index] & ~mask) | (byte & mask)
        }
    }
}

// MARK: Snapshot

extension PCIConfigSpace {
    /// Takes from `saved` only the bits the guest may write: what the device declared
    /// (IDs, capabilities, BAR size) stays as this build sets it, whatever a file says.
    mutating func restoreWritableBits(_ saved: [UInt8]) {
        guard saved.count == PCIConfigSpace.size else { return }
        for offset in 0..<PCIConfigSpace.size {
            bytes[offset] = (bytes[offset] & ~writable[offset]) | (saved[offset] & writable[offset])
        }
    }
}

import GuestRAM
import MemorySlots

/// Intel MultiProcessor Specification 1.4 tables: the floating pointer structure
/// ("_MP_") and the configuration table ("PCMP") it points to. A kernel without
/// ACPI (Linux with acpi=off, or with no RSDP as here) finds its CPUs, the IOAPIC and
/// the ISA interrupt wiring through them. Building is pure (`bytes(at:)`).
///
/// The tables go in the BIOS area at 0xF0000, which the e820 map reserves
/// (`MemoryMapEntry.map(for:)`: 0x9FC00–0x100000) and Linux scans (MP spec §4:
/// the first KiB of the EBDA, the last KiB of base memory, 0xF0000–0xFFFFF).
struct MPTable {
    static let defaultAddress = GuestAddress(0xF_0000)
    static let floatingSignature = Array("_MP_".utf8)
    static let tableSignature = Array("PCMP".utf8)
    static let specRevision: UInt8 = 4  // 1.4
    static let localAPICAddress: UInt32 = 0xFEE0_0000
    static let ioAPICAddress: UInt32 = 0xFEC0_0000
    static let ioAPICVersion: UInt8 = 0x11
    static let localAPICVersion: UInt8 = 0x14
    static let floatingSize = 16
    static let headerSize = 44
    static let processorEntrySize = 20
    static let shortEntrySize = 8
    static let isaBusID: UInt8 = 0
    static let pciBusID: UInt8 = 1
    /// KVM accepts up to 255 vCPUs with xAPIC ids; the IOAPIC takes id N.
    static let maximumProcessors = 254

    enum EntryType: UInt8 {
        case processor = 0, bus = 1, ioAPIC = 2, ioInterrupt = 3, localInterrupt = 4
    }

    enum InterruptType: UInt8 {
        case vectored = 0, nmi = 1, smi = 2, extINT = 3
    }

    enum BuildError: Error, CustomStringConvertible {
        case processorCount(Int)
        var description: String {
            switch self {
            case .processorCount(let count): "MP table: \(count) processors (1...\(MPTable.maximumProcessors) supported)"
            }
        }
    }

    let processorCount: Int
    var ioAPICID: UInt8 { UInt8(processorCount) }

    init(processorCount: Int) throws {
        guard (1...MPTable.maximumProcessors).contains(processorCount) else { throw BuildError.processorCount(processorCount) }
        self.processorCount = processorCount
    }

    /// The IOAPIC pin of each ISA IRQ: the PIT's IRQ 0 on pin 2 (pin 0 is the 8259's
    /// ExtINT), the others identity, as QEMU and SeaBIOS describe a PC.
    static func ioAPICPin(forISAIRQ irq: UInt8) -> UInt8 { irq == 0 ? 2 : irq }

    /// The configuration table (header and entries) with its checksum.
    func configurationTable() -> [UInt8] {
        var entries: [UInt8] = []
        var count = 0
        for index in 0..<processorCount {
            var entry = [UInt8](repeating: 0, count: MPTable.processorEntrySize)
            entry[0] = EntryType.processor.rawValue
            entry[1] = UInt8(index)                             // local APIC id
            entry[2] = MPTable.localAPICVersion
            entry[3] = index == 0 ? 0b11 : 0b01                 // EN, and BP on the first
            MPTable.put(UInt32(0x0000_0600), into: &entry, at: 4)  // CPU signature: family 6
            MPTable.put(UInt32(0x0000_0201), into: &entry, at: 8)  // features: FPU, APIC
            entries += entry
            count += 1
        }
        for (id, name) in [(MPTable.isaBusID, "ISA   "), (MPTable.pciBusID, "PCI   ")] {
            entries += [EntryType.bus.rawValue, id] + Array(name.utf8)
            count += 1
        }
        entries += [EntryType.ioAPIC.rawValue, ioAPICID, MPTable.ioAPICVersion, 0x01]  // EN
        // SAFETY: the address's 4 bytes are appended to the array.
        withUnsafeBytes(of: MPTable.ioAPICAddress.littleEndian) { entries += $0 }
        count += 1
        for irq in UInt8(0)..<16 {
            // Flags 0: polarity and trigger conform to the bus (ISA: active high, edge).
            entries += [EntryType.ioInterrupt.rawValue, InterruptType.vectored.rawValue, 0, 0,
                        MPTable.isaBusID, irq, ioAPICID, MPTable.ioAPICPin(forISAIRQ: irq)]
            count += 1
        }
        // LINT0 is the 8259's ExtINT, LINT1 NMI, on every local APIC (0xFF).
        entries += [EntryType.localInterrupt.rawValue, InterruptType.extINT.rawValue, 0, 0, MPTable.isaBusID, 0, 0xFF, 0]
        entries += [EntryType.localInterrupt.rawValue, InterruptType.nmi.rawValue, 0, 0, MPTable.isaBusID, 0, 0xFF, 1]
        count += 2

        var header = [UInt8](repeating: 0, count: MPTable.headerSize)
        header.replaceSubrange(0..<4, with: MPTable.tableSignature)
        MPTable.put(UInt16(MPTable.headerSize + entries.count), into: &header, at: 4)
        header[6] = MPTable.specRevision
        header.replaceSubrange(8..<16, with: Array("SWIFTVMD".utf8))
        header.replaceSubrange(16..<28, with: Array("swift-vmd   ".utf8))
        MPTable.put(UInt16(count), into: &header, at: 34)
        MPTable.put(MPTable.localAPICAddress, into: &header, at: 36)
        var table = header + entries
        table[7] = MPTable.checksum(table)
        return table
    }

    /// The floating pointer for a configuration table at `tableAddress`.
    static func floatingPointer(tableAddress: GuestAddress) -> [UInt8] {
        var pointer = [UInt8](repeating: 0, count: floatingSize)
        pointer.replaceSubrange(0..<4, with: floatingSignature)
        put(UInt32(truncatingIfNeeded: tableAddress.value), into: &pointer, at: 4)
        pointer[8] = 1               // length in 16-byte units
        pointer[9] = specRevision
        // Feature bytes 0: a configuration table is present (no default configuration).
        pointer[10] = checksum(pointer)
        return pointer
    }

    /// Floating pointer at `address` (16-byte aligned), the configuration table right after it.
    func bytes(at address: GuestAddress) -> [UInt8] {
        precondition(address.value & 0xF == 0 && address.value + 0x1_0000 <= 1 << 32, "MP tables need a 16-byte aligned address below 4 GiB")
        return MPTable.floatingPointer(tableAddress: GuestAddress(address.value + UInt64(MPTable.floatingSize))) + configurationTable()
    }

    func write(into memory: GuestMemory, at address: GuestAddress = MPTable.defaultAddress) throws {
        try memory.writeBytes(bytes(at: address), at: address)
    }

    /// The byte that makes `bytes` sum to zero modulo 256 (with its own slot still 0).
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }

    private static func put<Value: FixedWidthInteger>(_ value: Value, into buffer: inout [UInt8], at offset: Int) {
        // SAFETY: the integer's bytes are copied into the array in range (replaceSubrange checks it).
        withUnsafeBytes(of: value.littleEndian) { buffer.replaceSubrange(offset..<(offset + $0.count), with: $0) }
    }
}

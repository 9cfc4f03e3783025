import GuestRAM
import MemorySlots

/// The ACPI tables vm builds from the VM's shape (ACPI 6.5 §5.2): RSDP, XSDT, a
/// hardware-reduced FADT, MADT and DSDT. Linux finds its CPUs in the MADT (Debian's
/// cloud kernel has no MP-table SMP) and the PCI host bridge and COM1 in the DSDT.
///
/// Hardware-reduced (FADT flag HW_REDUCED_ACPI), as Firecracker and cloud-hypervisor
/// do: no PM1 event and control blocks, no SCI, no SMI command port for the guest to
/// poke, nothing of the legacy fixed hardware to emulate. Power-off and reset go
/// through the FADT's sleep control and reset registers (`ACPIPowerPorts`); the power
/// button is a PNP0C0C device that a Generic Event Device (ACPI0013) notifies when its
/// interrupt fires (`powerButtonGSI`). The alternative, PM1 blocks with an SCI, would
/// add a PM timer, fixed-event status/enable registers and the SCI's level semantics
/// to emulate, for no guest we care about: Linux has handled hardware-reduced ACPI
/// since 3.x.
///
/// The tables live in the BIOS area, which the e820 map reserves: the RSDP at
/// 0xE0000, where a kernel that is not told looks for it, and the rest after it.
struct ACPITables {
    static let rsdpAddress = GuestAddress(0xE_0000)
    static let xsdtAddress = GuestAddress(0xE_0040)
    static let madtAddress = GuestAddress(0xE_0100)
    static let fadtAddress = GuestAddress(0xE_0800)
    static let dsdtAddress = GuestAddress(0xE_0A00)
    /// Where the tables end: the MP table follows at 0xF0000.
    static let limit = GuestAddress(0xE_2000)

    static let oemID = Array("SWFVMD".utf8)
    static let oemTableID = Array("SWIFTVMD".utf8)
    static let localAPICAddress: UInt32 = 0xFEE0_0000
    static let ioAPICAddress: UInt32 = 0xFEC0_0000
    /// The IOAPIC pin the Generic Event Device raises for a power-button press: the last
    /// of the 24, above the ISA IRQs and used by nothing else (virtio uses MSI-X).
    static let powerButtonGSI: UInt32 = 23
    /// The PCI MMIO window: the hole below 4 GiB up to the IOAPIC (design §2).
    static let pciMemoryWindow: (UInt32, UInt32) = (0xC000_0000, 0xFEBF_FFFF)

    let processorCount: Int

    init(processorCount: Int) throws {
        guard (1...MPTable.maximumProcessors).contains(processorCount) else { throw MPTable.BuildError.processorCount(processorCount) }
        self.processorCount = processorCount
    }

    // MARK: Tables

    /// The common header (§5.2.6) with the table's checksum; `body` follows it.
    static func table(_ signature: String, revision: UInt8, _ body: [UInt8]) -> [UInt8] {
        var bytes = Array(signature.utf8) + AML.little(UInt64(36 + body.count), 4) + [revision, 0]
        bytes += oemID + oemTableID + AML.little(1, 4) + Array("SVMD".utf8) + AML.little(1, 4)
        bytes += body
        bytes[9] = MPTable.checksum(bytes)
        return bytes
    }

    /// RSDP revision 2 (§5.2.5.3): no RSDT, only the XSDT; both checksums.
    /// The addresses default to the fixed ones of a direct boot (`write(into:)`); a
    /// firmware boot passes offsets that the firmware relocates (`FirmwareACPIFiles`).
    func rsdp(xsdt: UInt64 = ACPITables.xsdtAddress.value) -> [UInt8] {
        var bytes = Array("RSD PTR ".utf8) + [0] + ACPITables.oemID + [2] + AML.little(0, 4)
        bytes += AML.little(36, 4) + AML.little(xsdt, 8) + [0, 0, 0, 0]
        bytes[8] = MPTable.checksum(Array(bytes[0..<20]))
        bytes[32] = MPTable.checksum(bytes)
        return bytes
    }

    /// The offset of the XSDT's first entry; the FADT's, then the MADT's.
    static let xsdtEntriesOffset = 36

    func xsdt(fadt: UInt64 = ACPITables.fadtAddress.value, madt: UInt64 = ACPITables.madtAddress.value) -> [UInt8] {
        ACPITables.table("XSDT", revision: 1, AML.little(fadt, 8) + AML.little(madt, 8))
    }

    /// MADT (§5.2.12): a local APIC per vCPU (APIC id = index, as KVM and the MP table
    /// have it), the IOAPIC (id N, GSI base 0), the PIT's IRQ 0 on GSI 2, and LINT1 as
    /// NMI on every processor.
    func madt() -> [UInt8] {
        var body = AML.little(UInt64(ACPITables.localAPICAddress), 4) + AML.little(1, 4)  // PCAT_COMPAT: there are 8259s
        for index in 0..<processorCount {
            body += [0, 8, UInt8(index), UInt8(index)] + AML.little(1, 4)  // Processor Local APIC, enabled
        }
        body += [1, 12, UInt8(processorCount), 0] + AML.little(UInt64(ACPITables.ioAPICAddress), 4) + AML.little(0, 4)
        body += [2, 10, 0, 0] + AML.little(UInt64(MPTable.ioAPICPin(forISAIRQ: 0)), 4) + AML.little(0, 2)  // ISA IRQ 0 → GSI 2
        body += [4, 6, 0xFF] + AML.little(0, 2) + [1]  // Local APIC NMI: all processors, LINT1
        return ACPITables.table("APIC", revision: 5, body)
    }

    static let hardwareReducedFlag: UInt32 = 1 << 20
    static let resetRegisterFlag: UInt32 = 1 << 10
    /// WBINVD; PWR_BUTTON and SLP_BUTTON set: no fixed buttons (the power button is a device); RESET_REG_SUP.
    static let fadtFlags: UInt32 = 1 << 0 | 1 << 4 | 1 << 5 | resetRegisterFlag | hardwareReducedFlag
    /// IAPC_BOOT_ARCH: LEGACY_DEVICES (COM1, the CMOS clock), VGA Not Present. No 8042:
    /// there is no keyboard to find, so Linux need not probe one (the controller still
    /// answers at 0x60/0x64, for firmware and for its reset line).
    static let bootArchitecture: UInt16 = 1 << 0 | 1 << 2

    /// A Generic Address Structure (§5.2.3.2) for one byte-wide I/O port.
    static func ioByteRegister(_ port: UInt64) -> [UInt8] {
        [1, 8, 0, 1] + AML.little(port, 8)  // system I/O, 8 bits at bit 0, byte access
    }

    /// FADT revision 6 (§5.2.9), 276 bytes: no PM register blocks; the reset register and
    /// the sleep control and status registers at `ACPIPowerPorts`.
    /// Where the FADT holds the DSDT's address: DSDT (32 bits) and X_DSDT (64 bits).
    static let fadtDSDTOffset = 40
    static let fadtXDSDTOffset = 140

    func fadt(dsdt: UInt64 = ACPITables.dsdtAddress.value) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 276 - 36)
        func put(_ value: UInt64, _ count: Int, at offset: Int) {
            body.replaceSubrange((offset - 36)..<(offset - 36 + count), with: AML.little(value, count))
        }
        put(dsdt, 4, at: ACPITables.fadtDSDTOffset)              // DSDT
        put(UInt64(ACPITables.bootArchitecture), 2, at: 109)     // IAPC_BOOT_ARCH
        put(UInt64(ACPITables.fadtFlags), 4, at: 112)            // Flags
        let power = ACPIPowerPorts.port
        body.replaceSubrange((116 - 36)..<(128 - 36), with: ACPITables.ioByteRegister(power + ACPIPowerPorts.resetOffset))  // RESET_REG
        put(UInt64(ACPIPowerPorts.resetValue), 1, at: 128)       // RESET_VALUE
        body.replaceSubrange((244 - 36)..<(256 - 36), with: ACPITables.ioByteRegister(power + ACPIPowerPorts.sleepControlOffset))
        body.replaceSubrange((256 - 36)..<(268 - 36), with: ACPITables.ioByteRegister(power + ACPIPowerPorts.sleepStatusOffset))
        put(5, 1, at: 131)                                        // FADT minor version: ACPI 6.5
        put(dsdt, 8, at: ACPITables.fadtXDSDTOffset)             // X_DSDT
        body.replaceSubrange((268 - 36)..<(276 - 36), with: Array("SWIFTVMD".utf8))  // Hypervisor vendor identity
        return ACPITables.table("FACP", revision: 6, body)
    }

    /// DSDT: the PCI host bridge (bus 0, configuration mechanism 1 at 0xCF8, the I/O
    /// ports around it and the MMIO hole as its windows), COM1, the power button and
    /// the Generic Event Device that notifies it, and `\_S5` (soft off, `ACPIPowerPorts`).
    func dsdt() -> [UInt8] {
        let bridge: [UInt8] = ACPIResource.word(.bus, 0, 0xFF) + ACPIResource.io(0xCF8, length: 8)
            + ACPIResource.word(.io, 0x0000, 0x0CF7) + ACPIResource.word(.io, 0x0D00, 0xFFFF)
            + ACPIResource.dwordMemory(ACPITables.pciMemoryWindow.0, ACPITables.pciMemoryWindow.1) + ACPIResource.end
        let serial: [UInt8] = ACPIResource.io(0x3F8, length: 8) + ACPIResource.irq(4) + ACPIResource.end
        let eventInterrupt = ACPIResource.edgeInterrupt(gsi: ACPITables.powerButtonGSI) + ACPIResource.end
        let softOff = AML.name("\\_S5", .package([.integer(UInt64(ACPIPowerPorts.softOffType)), .integer(0)]))
        let namespace = AML.scope("\\_SB", [
            .device("PCI0", [
                .name("_HID", .eisaID("PNP0A03")),
                .name("_UID", .integer(0)),
                .name("_BBN", .integer(0)),
                .name("_CRS", .buffer(bridge)),
            ]),
            .device("COM1", [
                .name("_HID", .eisaID("PNP0501")),
                .name("_UID", .integer(1)),
                .name("_CRS", .buffer(serial)),
            ]),
            .device("PWRB", [
                .name("_HID", .eisaID("PNP0C0C")),
                .name("_UID", .integer(0)),
            ]),
            // The only event is the power button, so _EVT need not look at its argument.
            .device("GED0", [
                .name("_HID", .string("ACPI0013")),
                .name("_UID", .integer(0)),
                .name("_CRS", .buffer(eventInterrupt)),
                .method("_EVT", arguments: 1, [.notify("\\_SB.PWRB", 0x80)]),
            ]),
        ])
        return ACPITables.table("DSDT", revision: 2, softOff.bytes + namespace.bytes)
    }

    /// Every table at its address, checked to fit before the next.
    func write(into memory: GuestMemory) throws {
        let placed: [(GuestAddress, [UInt8], GuestAddress)] = [
            (ACPITables.rsdpAddress, rsdp(), ACPITables.xsdtAddress),
            (ACPITables.xsdtAddress, xsdt(), ACPITables.madtAddress),
            (ACPITables.madtAddress, madt(), ACPITables.fadtAddress),
            (ACPITables.fadtAddress, fadt(), ACPITables.dsdtAddress),
            (ACPITables.dsdtAddress, dsdt(), ACPITables.limit),
        ]
        for (address, bytes, next) in placed {
            guard address.value + UInt64(bytes.count) <= next.value else { throw BuildError.tooLarge(address: address.value, size: bytes.count) }
            try memory.writeBytes(bytes, at: address)
        }
    }

    enum BuildError: Error, CustomStringConvertible {
        case tooLarge(address: UInt64, size: Int)
        var description: String {
            switch self {
            case .tooLarge(let address, let size): "ACPI table at 0x\(String(address, radix: 16)) of \(size) bytes does not fit"
            }
        }
    }
}

import Foundation
import XCTest
@testable import VMCore

/// The ACPI tables vm builds, read back by hand and disassembled by iasl (Debian's
/// acpica-tools, installed by scripts/setup) as the oracle.
final class ACPITablesTests: XCTestCase {
    private func sum(_ bytes: [UInt8]) -> UInt8 { bytes.reduce(0, &+) }
    private func u32(_ bytes: [UInt8], _ offset: Int) -> UInt64 { (0..<4).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) } }
    private func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) } }

    func testEveryTableChecksumsAndPointsAtTheNext() throws {
        let tables = try ACPITables(processorCount: 4)
        let rsdp = tables.rsdp()
        XCTAssertEqual(rsdp.count, 36)
        XCTAssertEqual(Array(rsdp[0..<8]), Array("RSD PTR ".utf8))
        XCTAssertEqual(sum(Array(rsdp[0..<20])), 0, "ACPI 1.0 checksum")
        XCTAssertEqual(sum(rsdp), 0, "extended checksum")
        XCTAssertEqual(rsdp[15], 2, "revision 2: an XSDT")
        XCTAssertEqual(u64(rsdp, 24), ACPITables.xsdtAddress.value)
        let xsdt = tables.xsdt()
        XCTAssertEqual([u64(xsdt, 36), u64(xsdt, 44)], [ACPITables.fadtAddress.value, ACPITables.madtAddress.value])
        let fadt = tables.fadt()
        XCTAssertEqual(fadt.count, 276)
        XCTAssertEqual(u32(fadt, 40), ACPITables.dsdtAddress.value)
        XCTAssertEqual(u64(fadt, 140), ACPITables.dsdtAddress.value)
        XCTAssertNotEqual(u32(fadt, 112) & UInt64(ACPITables.hardwareReducedFlag), 0)
        for table in [xsdt, fadt, tables.madt(), tables.dsdt()] {
            XCTAssertEqual(sum(table), 0, String(decoding: table[0..<4], as: UTF8.self))
            XCTAssertEqual(u32(table, 4), UInt64(table.count), "length field")
        }
    }

    func testTheMADTHasOneLocalAPICPerVCPUAndTheIOAPIC() throws {
        for count in [1, 2, 4, 8, 64] {
            let madt = try ACPITables(processorCount: count).madt()
            var offset = 44
            var apicIDs: [UInt8] = []
            var types: [UInt8] = []
            while offset < madt.count {
                types.append(madt[offset])
                if madt[offset] == 0 { apicIDs.append(madt[offset + 3]) }
                if madt[offset] == 1 { XCTAssertEqual(madt[offset + 2], UInt8(count), "IOAPIC id after the CPUs") }
                offset += Int(madt[offset + 1])
            }
            XCTAssertEqual(offset, madt.count, "entries fill the table exactly")
            XCTAssertEqual(apicIDs, (0..<count).map(UInt8.init), "APIC id i for vCPU i, as CPUID and the MP table")
            XCTAssertEqual(types.filter { $0 == 1 }.count, 1)
            XCTAssertEqual(types.filter { $0 == 2 }.count, 1, "the PIT's IRQ 0 override")
            XCTAssertEqual(types.filter { $0 == 4 }.count, 1, "LINT1 NMI")
        }
        XCTAssertThrowsError(try ACPITables(processorCount: 0))
    }

    func testAMLEncodingOfNamesIntegersAndPackages() {
        XCTAssertEqual(AML.nameString("_HID"), Array("_HID".utf8))
        XCTAssertEqual(AML.nameString("\\_SB"), [0x5C] + Array("_SB_".utf8))
        XCTAssertEqual(AML.nameString("\\_SB.PCI0"), [0x5C, 0x2E] + Array("_SB_PCI0".utf8))
        XCTAssertEqual(AML.integer(0).bytes, [0x00])
        XCTAssertEqual(AML.integer(1).bytes, [0x01])
        XCTAssertEqual(AML.integer(0x3F8).bytes, [0x0B, 0xF8, 0x03])
        XCTAssertEqual(AML.eisaID("PNP0A03").bytes, [0x0C, 0x41, 0xD0, 0x0A, 0x03], "EISAID(\"PNP0A03\") as iasl encodes it")
        XCTAssertEqual(AML.package([UInt8](repeating: 0, count: 10)).first, 11, "one-byte PkgLength counts itself")
        let long = AML.package([UInt8](repeating: 0, count: 100))
        XCTAssertEqual(long[0] >> 6, 1, "two-byte PkgLength")
        XCTAssertEqual(Int(long[0] & 0x0F) | Int(long[1]) << 4, 102)
    }

    func testAMLEncodingOfPackagesMethodsAndNotify() {
        XCTAssertEqual(AML.package([.integer(5), .integer(0)]).bytes, [0x12, 0x05, 0x02, 0x0A, 0x05, 0x00])
        XCTAssertEqual(AML.notify("\\_SB.PWRB", 0x80).bytes, [0x86, 0x5C, 0x2E] + Array("_SB_PWRB".utf8) + [0x0A, 0x80])
        let method = AML.method("_EVT", arguments: 1, [.notify("PWRB", 0x80)]).bytes
        XCTAssertEqual(Array(method[0..<7]), [0x14, 13] + Array("_EVT".utf8) + [0x01], "MethodOp, PkgLength, name, one argument")
        XCTAssertEqual(ACPIResource.edgeInterrupt(gsi: 23), [0x89, 6, 0, 0x03, 1, 23, 0, 0, 0])
    }

    func testPowerPortsPowerOffOnlyForSoftOffAndResetOnlyForTheResetValue() {
        let ports = ACPIPowerPorts()
        XCTAssertEqual(ports.write(offset: 0, data: [5 << 2 | 1 << 5]), .endGuest(.powerOff))
        XCTAssertEqual(ports.write(offset: 0, data: [5 << 2]), .none, "SLP_EN clear: nothing")
        XCTAssertEqual(ports.write(offset: 0, data: [3 << 2 | 1 << 5]), .none, "S3 is not offered")
        XCTAssertEqual(ports.write(offset: 2, data: [1]), .endGuest(.reset))
        XCTAssertEqual(ports.write(offset: 2, data: [0x0E]), .none)
        XCTAssertEqual(ports.write(offset: 1, data: [0xFF]), .none)
        var status: [UInt8] = [0xAA]
        ports.read(offset: 1, into: &status)
        XCTAssertEqual(status, [0], "WAK_STS clear")
    }

    // MARK: iasl as the oracle

    func testIaslDisassemblesEveryTableCleanly() throws {
        let tables = try ACPITables(processorCount: 4)
        // (iasl 20200925 does not take an RSDP on its own: that one is checked by hand above.)
        let madt = try disassembleACPI(tables.madt(), name: "apic")
        XCTAssertEqual(madt.components(separatedBy: "Subtable Type : 00 [Processor Local APIC]").count - 1, 4, madt)
        XCTAssertTrue(madt.contains("[I/O APIC]") && madt.contains("[Interrupt Source Override]") && madt.contains("[Local APIC NMI]"), madt)
        let fadt = try disassembleACPI(tables.fadt(), name: "facp")
        XCTAssertTrue(fadt.contains("Hardware Reduced (V5) : 1"), fadt)
        XCTAssertTrue(fadt.contains("8042 Present on ports 60/64 (V2) : 0"), fadt)
        XCTAssertTrue(fadt.contains("Reset Register Supported (V2) : 1"), fadt)
        XCTAssertTrue(fadt.contains("Control Method Power Button (V1) : 1"), "the power button is a device, not fixed:\n\(fadt)")
        // RESET_REG, SLEEP_CONTROL_REG, SLEEP_STATUS_REG: byte-wide system I/O at ACPIPowerPorts.
        for register in ["0000000000000602", "0000000000000600", "0000000000000601"] {
            XCTAssertTrue(fadt.contains("Address : \(register)"), "\(register) in:\n\(fadt)")
        }
        XCTAssertTrue(fadt.contains("Value to cause reset : 01"), fadt)
        let dsdt = try disassembleACPI(tables.dsdt(), name: "dsdt")
        for expected in ["Device (PCI0)", "EisaId (\"PNP0A03\")", "WordBusNumber", "0x0CF8", "DWordMemory", "0xC0000000", "0xFEBFFFFF",
                         "Device (COM1)", "EisaId (\"PNP0501\")", "0x03F8", "IRQNoFlags",
                         "Name (\\_S5, Package (0x02)", "Device (PWRB)", "EisaId (\"PNP0C0C\")",
                         "Device (GED0)", "Name (_HID, \"ACPI0013\" /* Generic Event Device */)", "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
                         "0x00000017,", "Method (_EVT, 1, NotSerialized)", "Notify (\\_SB.PWRB, 0x80)"] {
            XCTAssertTrue(dsdt.contains(expected), "\(expected) in:\n\(dsdt)")
        }
        _ = try disassembleACPI(tables.xsdt(), name: "xsdt")
    }
}

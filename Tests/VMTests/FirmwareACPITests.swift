import XCTest
@testable import VMCore

/// The ACPI tables as fw_cfg hands them to SeaBIOS: this test runs the table-loader
/// script the way SeaBIOS's romfile_loader.c does (its own small interpreter, written
/// from the command layout, not from our builder), at addresses a BIOS might choose,
/// then checks the linked tables by hand and with iasl.
final class FirmwareACPITests: XCTestCase {
    private func sum(_ bytes: ArraySlice<UInt8>) -> UInt8 { bytes.reduce(0, &+) }
    private func le(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        (0..<count).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
    private func name(_ bytes: [UInt8], _ offset: Int) -> String {
        String(decoding: bytes[offset..<(offset + 56)].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Runs the script; returns each file's bytes after linking and where it was placed.
    private func link(_ files: FirmwareACPIFiles, addresses: [String: UInt64]) throws -> [String: [UInt8]] {
        var contents = [FirmwareACPIFiles.rsdpFile: files.rsdp, FirmwareACPIFiles.tablesFile: files.tables]
        var allocated: [String] = []
        let script = files.loader
        XCTAssertEqual(script.count % 128, 0)
        for start in stride(from: 0, to: script.count, by: 128) {
            let command = Array(script[start..<(start + 128)])
            switch le(command, 0, 4) {
            case 1:
                let file = name(command, 4)
                let alignment = le(command, 60, 4)
                XCTAssertEqual(alignment & (alignment - 1), 0, "alignment is a power of two")
                XCTAssertEqual(addresses[file]! % alignment, 0)
                XCTAssertEqual(command[64], file == FirmwareACPIFiles.rsdpFile ? 2 : 1, "the RSDP in the F segment, the rest high")
                allocated.append(file)
            case 2:
                let dest = name(command, 4), source = name(command, 60)
                let offset = Int(le(command, 116, 4)), size = Int(command[120])
                XCTAssertTrue(allocated.contains(dest) && allocated.contains(source), "allocated before use")
                var bytes = contents[dest]!
                let value = le(bytes, offset, size) &+ addresses[source]!
                bytes.replaceSubrange(offset..<(offset + size), with: (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) })
                contents[dest] = bytes
            case 3:
                let file = name(command, 4)
                let offset = Int(le(command, 60, 4)), start = Int(le(command, 64, 4)), length = Int(le(command, 68, 4))
                var bytes = contents[file]!
                bytes[offset] = bytes[offset] &- sum(bytes[start..<(start + length)])
                contents[file] = bytes
            default:
                XCTFail("unknown command \(le(command, 0, 4))")
            }
        }
        XCTAssertEqual(Set(allocated), [FirmwareACPIFiles.rsdpFile, FirmwareACPIFiles.tablesFile])
        return contents
    }

    func testTheLoaderLinksTheTablesWhereverTheFirmwarePutsThem() throws {
        let acpi = try ACPITables(processorCount: 2)
        let files = FirmwareACPIFiles(acpi)
        for base in [UInt64(0x7FFE_0000), 0xBFF0_0040, 0x1000_0000] {
            let linked = try link(files, addresses: [FirmwareACPIFiles.rsdpFile: 0xF_5A10, FirmwareACPIFiles.tablesFile: base])
            let rsdp = linked[FirmwareACPIFiles.rsdpFile]!, tables = linked[FirmwareACPIFiles.tablesFile]!
            XCTAssertEqual(sum(rsdp[0..<20]), 0)
            XCTAssertEqual(sum(rsdp[0..<36]), 0)
            // Walk from the RSDP as an OS does: XSDT → FADT and MADT, FADT → DSDT.
            func table(at address: UInt64) -> [UInt8] {
                let offset = Int(address - base)
                return Array(tables[offset..<(offset + Int(le(tables, offset + 4, 4)))])
            }
            let xsdt = table(at: le(rsdp, 24, 8))
            XCTAssertEqual(Array(xsdt[0..<4]), Array("XSDT".utf8))
            let fadt = table(at: le(xsdt, 36, 8)), madt = table(at: le(xsdt, 44, 8))
            XCTAssertEqual(Array(fadt[0..<4]), Array("FACP".utf8))
            XCTAssertEqual(Array(madt[0..<4]), Array("APIC".utf8))
            XCTAssertEqual(le(fadt, 40, 4), le(fadt, 140, 8), "DSDT and X_DSDT agree")
            let dsdt = table(at: le(fadt, 140, 8))
            XCTAssertEqual(Array(dsdt[0..<4]), Array("DSDT".utf8))
            for each in [xsdt, fadt, madt, dsdt] { XCTAssertEqual(sum(each[...]), 0, String(decoding: each[0..<4], as: UTF8.self)) }
            XCTAssertEqual(madt, acpi.madt())
            XCTAssertEqual(dsdt, acpi.dsdt())
        }
    }

    func testIaslDisassemblesTheLinkedTablesCleanly() throws {
        let files = FirmwareACPIFiles(try ACPITables(processorCount: 2))
        let base: UInt64 = 0x7FFE_0000
        let tables = try link(files, addresses: [FirmwareACPIFiles.rsdpFile: 0xF_5A10, FirmwareACPIFiles.tablesFile: base])[FirmwareACPIFiles.tablesFile]!
        var offset = 0
        var signatures: [String] = []
        while offset < tables.count {
            let length = Int(le(tables, offset + 4, 4))
            let signature = String(decoding: tables[offset..<(offset + 4)], as: UTF8.self)
            signatures.append(signature)
            let text = try disassembleACPI(Array(tables[offset..<(offset + length)]), name: "fw-\(signature.lowercased())")
            if signature == "XSDT" { XCTAssertTrue(text.contains(String(format: "%016llX", base + 0x34)), "the FADT's linked address:\n\(text)") }
            offset += length
        }
        XCTAssertEqual(signatures, ["XSDT", "FACP", "APIC", "DSDT"])
    }
}

import BootImage
import GuestRAM
import MemorySlots
import XCTest
@testable import VMCore

/// fw_cfg as SeaBIOS reads it (QEMU's docs/specs/fw_cfg.rst): the port interface,
/// the DMA interface against guest RAM, and the file directory.
final class FirmwareConfigTests: XCTestCase {
    private let ram = SlotDescriptor(guestBase: GuestAddress(0), size: 1 << 20)

    private func device(_ table: FirmwareConfigTable) throws -> (FirmwareConfigDevice, GuestMemory) {
        let memory = try GuestMemory.anonymous([ram])
        return (FirmwareConfigDevice(table: table, memory: memory), memory)
    }

    private func select(_ device: FirmwareConfigDevice, _ key: UInt16) {
        _ = device.write(offset: FirmwareConfigDevice.selectorOffset, data: [UInt8(key & 0xFF), UInt8(key >> 8)])
    }

    private func readData(_ device: FirmwareConfigDevice, count: Int) -> [UInt8] {
        (0..<count).map { _ in
            var byte: [UInt8] = [0xAA]
            device.read(offset: FirmwareConfigDevice.dataOffset, into: &byte)
            return byte[0]
        }
    }

    private func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) } }

    /// Writes a FWCfgDmaAccess at `at` and starts it through the two address registers.
    private func runDMA(_ device: FirmwareConfigDevice, _ memory: GuestMemory, at: UInt64, control: UInt32, length: UInt32,
                        buffer: UInt64) throws -> UInt32 {
        try memory.writeBytes(FirmwareConfigTable.big(UInt64(control), 4) + FirmwareConfigTable.big(UInt64(length), 4)
                              + FirmwareConfigTable.big(buffer, 8), at: GuestAddress(at))
        _ = device.write(offset: FirmwareConfigDevice.dmaHighOffset, data: FirmwareConfigTable.big(at >> 32, 4))
        _ = device.write(offset: FirmwareConfigDevice.dmaLowOffset, data: FirmwareConfigTable.big(at & 0xFFFF_FFFF, 4))
        return be32(try memory.readBytes(at: GuestAddress(at), count: 4), 0)
    }

    func testThePortInterfaceReadsTheSignatureAnItemAndZerosPastItsEnd() throws {
        var table = FirmwareConfigTable()
        table.set(FirmwareConfigTable.Key.processorCount, [4, 0])
        let (device, _) = try device(table)
        select(device, FirmwareConfigTable.Key.signature)
        XCTAssertEqual(readData(device, count: 4), Array("QEMU".utf8))
        select(device, FirmwareConfigTable.Key.interfaceID)
        XCTAssertEqual(readData(device, count: 4), [3, 0, 0, 0], "traditional and DMA interfaces")
        select(device, FirmwareConfigTable.Key.processorCount)
        XCTAssertEqual(readData(device, count: 4), [4, 0, 0, 0], "little-endian count, then zeros")
        select(device, FirmwareConfigTable.Key.processorCount)
        XCTAssertEqual(readData(device, count: 1), [4], "selecting again rewinds")
        select(device, 0x7777)
        XCTAssertEqual(readData(device, count: 2), [0, 0], "an unknown item reads as zeros")
        var signature = [UInt8](repeating: 0, count: 8)
        device.read(offset: FirmwareConfigDevice.dmaHighOffset, into: &signature)
        XCTAssertEqual(signature, Array("QEMU CFG".utf8))
    }

    func testTheDirectoryListsEachFileWithItsSizeSelectorAndName() throws {
        var table = FirmwareConfigTable()
        try table.addFile("etc/one", [1, 2, 3])
        try table.addFile("etc/two", Array(repeating: 9, count: 300))
        let directory = table.item(FirmwareConfigTable.Key.fileDirectory)
        XCTAssertEqual(directory.count, 4 + 2 * 64)
        XCTAssertEqual(be32(directory, 0), 2)
        for (index, (name, size)) in [("etc/one", 3), ("etc/two", 300)].enumerated() {
            let entry = Array(directory[(4 + 64 * index)..<(4 + 64 * (index + 1))])
            XCTAssertEqual(be32(entry, 0), UInt32(size))
            let key = UInt16(entry[4]) << 8 | UInt16(entry[5])
            XCTAssertEqual(key, FirmwareConfigTable.Key.firstFile + UInt16(index))
            XCTAssertEqual(table.item(key).count, size)
            XCTAssertEqual(String(decoding: entry[8...].prefix { $0 != 0 }, as: UTF8.self), name)
        }
        XCTAssertThrowsError(try table.addFile("etc/one", [])) { XCTAssertEqual($0 as? FirmwareConfigTable.BuildError, .duplicate("etc/one")) }
        let long = String(repeating: "x", count: 56)
        XCTAssertThrowsError(try table.addFile(long, [])) { XCTAssertEqual($0 as? FirmwareConfigTable.BuildError, .nameTooLong(long)) }
    }

    func testDMASelectsReadsSkipsAndZeroFills() throws {
        var table = FirmwareConfigTable()
        try table.addFile("etc/data", Array(1...10))
        let (device, memory) = try device(table)
        let key = UInt32(FirmwareConfigTable.Key.firstFile)
        let read = FirmwareConfigDevice.Control.read, select = FirmwareConfigDevice.Control.select
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: key << 16 | select | read, length: 4, buffer: 0x2000), 0)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x2000), count: 4), [1, 2, 3, 4])
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: FirmwareConfigDevice.Control.skip, length: 2, buffer: 0), 0)
        try memory.writeBytes(Array(repeating: 0xEE, count: 8), at: GuestAddress(0x3000))
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: read, length: 8, buffer: 0x3000), 0)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x3000), count: 8), [7, 8, 9, 10, 0, 0, 0, 0], "the rest of the item, then zeros")
        // The port interface continues from where DMA left the cursor.
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: key << 16 | select | read, length: 1, buffer: 0x2000), 0)
        XCTAssertEqual(readData(device, count: 2), [2, 3])
    }

    func testABadDMARequestSetsTheErrorBitAndWritesNothing() throws {
        var table = FirmwareConfigTable()
        try table.addFile("etc/data", Array(repeating: 0x5A, count: 64))
        let (device, memory) = try device(table)
        let key = UInt32(FirmwareConfigTable.Key.firstFile)
        let control = FirmwareConfigDevice.Control.self
        let error = control.error
        // A buffer that runs off the end of RAM: refused before any byte is copied.
        let edge = ram.size - 16
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: key << 16 | control.select | control.read, length: 64, buffer: edge), error)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(edge), count: 16), Array(repeating: 0, count: 16))
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: control.read, length: 8, buffer: UInt64.max - 3), error, "a wrapping address")
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: key << 16 | control.select | control.write, length: 4, buffer: 0x2000), error,
                       "nothing is writable")
        XCTAssertEqual(try runDMA(device, memory, at: 0x1000, control: 1 << 9 | control.read, length: 4, buffer: 0x2000), error, "an unknown bit")
        // An access structure outside RAM has nowhere to report: nothing happens, nothing crashes.
        _ = device.write(offset: FirmwareConfigDevice.dmaHighOffset, data: [0, 0, 0, 0x10])
        _ = device.write(offset: FirmwareConfigDevice.dmaLowOffset, data: [0, 0, 0, 0])
    }

    func testTheVMsE820ListsItsRAMAndKVMsPagesBelowTheBIOS() {
        let slots = [SlotDescriptor(guestBase: GuestAddress(0), size: 3 << 30), SlotDescriptor(guestBase: GuestAddress(4 << 30), size: 1 << 30)]
        let bytes = FirmwareConfigContents.e820(slots: slots)
        XCTAssertEqual(bytes.count, 3 * 20, "packed 20-byte entries")
        func entry(_ index: Int) -> (UInt64, UInt64, UInt32) {
            let e = Array(bytes[(20 * index)..<(20 * index + 20)])
            let base = (0..<8).reduce(UInt64(0)) { $0 | UInt64(e[$1]) << (8 * UInt64($1)) }
            let length = (0..<8).reduce(UInt64(0)) { $0 | UInt64(e[8 + $1]) << (8 * UInt64($1)) }
            return (base, length, (0..<4).reduce(UInt32(0)) { $0 | UInt32(e[16 + $1]) << (8 * UInt32($1)) })
        }
        XCTAssertTrue(entry(0) == (0, 3 << 30, 1))
        XCTAssertTrue(entry(1) == (4 << 30, 1 << 30, 1))
        XCTAssertTrue(entry(2) == (0xFFFB_C000, 0x4000, 2), "KVM's identity map and TSS, reserved")
    }

    func testTheVMsTableHasTheCPUCountNoGraphicsAndTheFilesSeaBIOSNeeds() throws {
        let table = try FirmwareConfigContents.table(slots: [ram], processorCount: 3, acpi: try ACPITables(processorCount: 3))
        XCTAssertEqual(table.item(FirmwareConfigTable.Key.processorCount), [3, 0])
        XCTAssertEqual(table.item(FirmwareConfigTable.Key.noGraphic), [1, 0], "int 10h text goes to COM1")
        XCTAssertEqual(table.item(FirmwareConfigTable.Key.bootMenu), [0, 0], "no boot menu wait")
        XCTAssertEqual(table.files.map(\.name), ["etc/e820", "etc/acpi/rsdp", "etc/acpi/tables", "etc/table-loader"])
    }

    func testTheBIOSEndsAt4GiBAndItsLast128KiBEndAt1MiB() throws {
        let image = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 / 4096) }
        let memory = try GuestMemory.anonymous([ram])
        let rom = try FirmwareLoader.load(image, into: memory)
        XCTAssertEqual(rom.slots, [SlotDescriptor(guestBase: GuestAddress(0xFFFC_0000), size: 256 << 10)])
        XCTAssertEqual(try rom.readBytes(at: GuestAddress(0xFFFF_FFF0), count: 16), Array(image.suffix(16)), "the reset vector")
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0xE_0000), count: 128 << 10), Array(image.suffix(128 << 10)))
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0xD_FFF0), count: 16), Array(repeating: 0, count: 16), "nothing below the alias")
        for size in [0, 4096, 100 << 10, 512 << 10] {
            XCTAssertThrowsError(try FirmwareImageLayout(size: size), "\(size) bytes")
            XCTAssertThrowsError(try FirmwareLoader.load(Array(repeating: 0, count: size), into: memory))
        }
        XCTAssertEqual(try FirmwareImageLayout(size: 128 << 10).lowAliasBase, 0xE_0000)
        XCTAssertEqual(try FirmwareImageLayout(size: 64 << 10).lowAliasBase, 0xF_0000)
    }

    func testTheCMOSGivesTheProcessorCountLessOne() {
        let cmos = CMOS(ramBelow4G: 1 << 30, ramAbove4G: 0, processorCount: 4)
        _ = cmos.write(offset: 0, data: [CMOS.processorCountLessOne])
        var value: [UInt8] = [0]
        cmos.read(offset: 1, into: &value)
        XCTAssertEqual(value, [3])
    }

    func testTheHostBridgeIsAnI440FXWhosePAMRegistersKeepWhatIsWritten() {
        let bridge = PCIHostBridge()
        XCTAssertEqual(bridge.configRead(offset: 0, size: 4), 0x1237_8086)
        bridge.configWrite(offset: 0x58, data: [0x11, 0x30, 0x33, 0x33])
        XCTAssertEqual(bridge.configRead(offset: 0x58, size: 4), 0x3333_3000, "0x58 is not a PAM register; 0x59-0x5B are")
        bridge.configWrite(offset: 0, data: [0, 0])
        XCTAssertEqual(bridge.configRead(offset: 0, size: 2), 0x8086, "the id is read-only")
    }
}

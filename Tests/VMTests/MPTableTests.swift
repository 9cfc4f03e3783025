import XCTest
@testable import GuestRAM
@testable import MemorySlots
@testable import VMCore

/// Reads MP tables back the way a kernel does: scan for "_MP_" on 16-byte boundaries,
/// check both checksums, follow the pointer, walk the entries by type.
struct MPTableReader {
    struct Processor: Equatable { let apicID: UInt8; let enabled: Bool; let bootstrap: Bool }
    struct IOAPIC: Equatable { let id: UInt8; let version: UInt8; let address: UInt32 }
    struct Interrupt: Equatable { let type: UInt8; let bus: UInt8; let irq: UInt8; let destination: UInt8; let pin: UInt8 }

    var floatingAddress: UInt64 = 0
    var floatingSum: UInt8 = 1
    var tableSum: UInt8 = 1
    var processors: [Processor] = []
    var buses: [String] = []
    var ioAPICs: [IOAPIC] = []
    var ioInterrupts: [Interrupt] = []
    var localInterrupts: [Interrupt] = []
    var localAPICAddress: UInt32 = 0

    init?(memory: GuestMemory, from start: UInt64 = 0xF_0000, to end: UInt64 = 0x10_0000) throws {
        var address = start
        var found: [UInt8]?
        while address < end {
            let candidate = try memory.readBytes(at: GuestAddress(address), count: 16)
            if Array(candidate[0..<4]) == Array("_MP_".utf8) { found = candidate; break }
            address += 16
        }
        guard let floating = found else { return nil }
        floatingAddress = address
        floatingSum = floating.reduce(0, &+)
        let tableAddress = UInt64(ByteReader(floating).u32Value(4))
        let header = try memory.readBytes(at: GuestAddress(tableAddress), count: 44)
        guard Array(header[0..<4]) == Array("PCMP".utf8) else { return nil }
        let length = Int(try ByteReader(header).u16(at: 4))
        let table = try memory.readBytes(at: GuestAddress(tableAddress), count: length)
        tableSum = table.reduce(0, &+)
        localAPICAddress = ByteReader(table).u32Value(36)
        let count = Int(try ByteReader(table).u16(at: 34))
        var offset = 44
        for _ in 0..<count {
            switch table[offset] {
            case 0:
                processors.append(Processor(apicID: table[offset + 1], enabled: table[offset + 3] & 1 != 0, bootstrap: table[offset + 3] & 2 != 0))
                offset += 20
            case 1:
                buses.append(String(decoding: table[(offset + 2)..<(offset + 8)], as: UTF8.self)); offset += 8
            case 2:
                ioAPICs.append(IOAPIC(id: table[offset + 1], version: table[offset + 2], address: ByteReader(table).u32Value(offset + 4))); offset += 8
            case 3, 4:
                let entry = Interrupt(type: table[offset + 1], bus: table[offset + 4], irq: table[offset + 5], destination: table[offset + 6], pin: table[offset + 7])
                if table[offset] == 3 { ioInterrupts.append(entry) } else { localInterrupts.append(entry) }
                offset += 8
            default:
                return nil
            }
        }
        guard offset == length else { return nil }
    }
}

final class MPTableTests: XCTestCase {
    func testTablesAreFoundChecksummedAndDescribeThePlatform() throws {
        let memory = try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: 2 << 20)])
        try MPTable(processorCount: 4).write(into: memory)
        guard let mp = try MPTableReader(memory: memory) else { return XCTFail("no MP floating pointer in 0xF0000-0xFFFFF") }
        XCTAssertEqual(mp.floatingAddress, 0xF_0000)
        XCTAssertEqual(mp.floatingSum, 0, "floating pointer checksum")
        XCTAssertEqual(mp.tableSum, 0, "configuration table checksum")
        XCTAssertEqual(mp.localAPICAddress, 0xFEE0_0000)
        XCTAssertEqual(mp.processors, (0..<4).map { MPTableReader.Processor(apicID: UInt8($0), enabled: true, bootstrap: $0 == 0) })
        XCTAssertEqual(mp.buses, ["ISA   ", "PCI   "])
        XCTAssertEqual(mp.ioAPICs, [MPTableReader.IOAPIC(id: 4, version: 0x11, address: 0xFEC0_0000)])
        XCTAssertEqual(mp.ioInterrupts.count, 16)
        XCTAssertEqual(mp.ioInterrupts.map(\.irq), Array(0..<16))
        XCTAssertEqual(mp.ioInterrupts.map(\.pin), [2] + Array(1..<16), "IRQ 0 (PIT) on pin 2, the rest identity")
        XCTAssertTrue(mp.ioInterrupts.allSatisfy { $0.destination == 4 && $0.type == 0 && $0.bus == 0 })
        XCTAssertEqual(mp.localInterrupts, [
            MPTableReader.Interrupt(type: 3, bus: 0, irq: 0, destination: 0xFF, pin: 0),
            MPTableReader.Interrupt(type: 1, bus: 0, irq: 0, destination: 0xFF, pin: 1),
        ])
    }

    func testChecksumByteMakesTheSumZero() {
        for bytes: [UInt8] in [[], [1], [0xFF, 0xFF, 3], Array("PCMP".utf8)] {
            XCTAssertEqual((bytes + [MPTable.checksum(bytes)]).reduce(0, &+), 0)
        }
        let pointer = MPTable.floatingPointer(tableAddress: GuestAddress(0xF_0010))
        XCTAssertEqual(pointer.count, 16)
        XCTAssertEqual(pointer.reduce(0, &+), 0)
        XCTAssertEqual(Array(pointer[4..<8]), [0x10, 0, 0x0F, 0])
        XCTAssertEqual(pointer[9], 4, "spec revision 1.4")
    }

    func testProcessorCountIsChecked() {
        XCTAssertThrowsError(try MPTable(processorCount: 0))
        XCTAssertThrowsError(try MPTable(processorCount: 255))
        XCTAssertNoThrow(try MPTable(processorCount: 254))
    }

    func testEveryBootWritesTheMPTableSizedForTheVCPUs() throws {
        let memory = try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: 4 << 20)])
        _ = try KernelLoader.load(image: ELFBuilder().build(), commandLine: "", vcpuCount: 3, into: memory)
        let mp = try XCTUnwrap(try MPTableReader(memory: memory))
        XCTAssertEqual(mp.processors.count, 3)
        XCTAssertEqual(mp.ioAPICs.first?.id, 3)
        // The e820 map reserves where the tables are.
        let reserved = MemoryMapEntry.map(for: memory.slots).filter { $0.kind == .reserved }
        XCTAssertTrue(reserved.contains { $0.base <= mp.floatingAddress && mp.floatingAddress + 0x1000 <= $0.base + $0.size })
    }
}

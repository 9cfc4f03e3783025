import XCTest
@testable import GuestRAM
@testable import MemorySlots
@testable import VMCore

/// Builds small ELF64 files in memory, for loader tests that do not need the guest kit.
struct ELFBuilder {
    var entry: UInt64 = 0x10_0000
    var segments: [(address: UInt64, bytes: [UInt8], memorySize: UInt64)] = [(0x10_0000, [0xF4, 0xEB, 0xFE], 0x2000)]
    var pvhEntry: UInt32?
    var machine: UInt16 = 62

    func build() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        out.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
        func put<V: FixedWidthInteger>(_ v: V, _ at: Int, _ buffer: inout [UInt8]) {
            withUnsafeBytes(of: v.littleEndian) { buffer.replaceSubrange(at..<(at + $0.count), with: $0) }
        }
        var note: [UInt8] = []
        if let pvhEntry {
            note = [4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0] + Array("Xen\0".utf8)
            withUnsafeBytes(of: pvhEntry.littleEndian) { note += $0 }
        }
        let headerCount = segments.count + (note.isEmpty ? 0 : 1)
        put(UInt16(2), 16, &out); put(machine, 18, &out); put(UInt32(1), 20, &out)
        put(entry, 24, &out); put(UInt64(64), 32, &out)
        put(UInt16(64), 52, &out); put(UInt16(56), 54, &out); put(UInt16(headerCount), 56, &out)
        var dataOffset = 64 + 56 * headerCount
        var headers: [UInt8] = []
        var payload: [UInt8] = []
        for segment in segments {
            var header = [UInt8](repeating: 0, count: 56)
            put(UInt32(1), 0, &header); put(UInt64(dataOffset), 8, &header)
            put(segment.address, 16, &header); put(segment.address, 24, &header)
            put(UInt64(segment.bytes.count), 32, &header); put(segment.memorySize, 40, &header)
            headers += header; payload += segment.bytes; dataOffset += segment.bytes.count
        }
        if !note.isEmpty {
            var header = [UInt8](repeating: 0, count: 56)
            put(UInt32(4), 0, &header); put(UInt64(dataOffset), 8, &header); put(UInt64(note.count), 32, &header)
            headers += header; payload += note
        }
        return out + headers + payload
    }
}

final class KernelLoaderTests: XCTestCase {
    private func memory(_ size: UInt64 = 4 << 20) throws -> GuestMemory {
        try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: size)])
    }

    func testPVHNoteSelectsThe32BitEntryAndStartInfoIsWritten() throws {
        var elf = ELFBuilder()
        elf.pvhEntry = 0x10_0001
        let memory = try memory()
        let entry = try KernelLoader.load(image: elf.build(), commandLine: "test=boot exit=3", into: memory)
        XCTAssertEqual(entry, .pvh32(entry: 0x10_0001))
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x10_0000), count: 3), [0xF4, 0xEB, 0xFE])
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x10_0003), count: 16), [UInt8](repeating: 0, count: 16), "bss zeroed")

        let start = BootLayout.startInfo
        XCTAssertEqual(try memory.read(UInt32.self, at: start), PVHStartInfo.magic)
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(start.value + 4)), 1)
        let cmdline = try memory.read(UInt64.self, at: GuestAddress(start.value + 24))
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(cmdline), count: 17), Array("test=boot exit=3\0".utf8))
        let mapAddress = try memory.read(UInt64.self, at: GuestAddress(start.value + 40))
        let mapCount = try memory.read(UInt32.self, at: GuestAddress(start.value + 48))
        XCTAssertEqual(mapCount, 3)
        // Entry 2: RAM from 1 MiB to the end of the slot.
        XCTAssertEqual(try memory.read(UInt64.self, at: GuestAddress(mapAddress + 48)), 0x10_0000)
        XCTAssertEqual(try memory.read(UInt64.self, at: GuestAddress(mapAddress + 56)), (4 << 20) - 0x10_0000)
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(mapAddress + 64)), 1)
    }

    func testPlainELF64GetsIdentityPageTablesThatMapItsEntry() throws {
        let memory = try memory()
        let entry = try KernelLoader.load(image: ELFBuilder().build(), commandLine: "", into: memory)
        guard case .long64(let address, let cr3) = entry else { return XCTFail("expected the 64-bit entry, got \(entry)") }
        XCTAssertEqual(address, 0x10_0000)
        XCTAssertEqual(cr3, BootLayout.pageTables.value)
        let translation = try PageTableWalker.translate(virtualAddress: address, cr3: cr3, memory: memory)
        XCTAssertEqual(translation.physicalAddress, address)
        XCTAssertTrue(translation.executable && translation.writable)
        // The boot structures (start_info, GDT) are reachable through the map too.
        XCTAssertEqual(try PageTableWalker.translate(virtualAddress: BootLayout.startInfo.value, cr3: cr3, memory: memory).physicalAddress,
                       BootLayout.startInfo.value)
    }

    func testMemoryMapFollowsTheSlotTable() {
        let map = MemoryMapEntry.map(for: GuestPhysicalLayout.ramSlots(ramBytes: (3 << 30) + (1 << 30)))
        XCTAssertEqual(map, [
            MemoryMapEntry(base: 0, size: 0x9_FC00, kind: .ram),
            MemoryMapEntry(base: 0x9_FC00, size: 0x10_0000 - 0x9_FC00, kind: .reserved),
            MemoryMapEntry(base: 0x10_0000, size: (3 << 30) - 0x10_0000, kind: .ram),
            MemoryMapEntry(base: 4 << 30, size: 1 << 30, kind: .ram),
        ])
    }

    func testKernelThatDoesNotFitIsRefused() throws {
        var elf = ELFBuilder()
        elf.segments = [(0x10_0000, [1, 2, 3], 8 << 20)]
        XCTAssertThrowsError(try KernelLoader.load(image: elf.build(), commandLine: "", into: try memory())) {
            XCTAssertTrue("\($0)".contains("does not fit in guest memory"), "\($0)")
        }
    }

    func testSegmentBelowOneMiBIsRefused() throws {
        var elf = ELFBuilder()
        elf.segments = [(0x8000, [1], 1)]
        XCTAssertThrowsError(try KernelLoader.load(image: elf.build(), commandLine: "", into: try memory())) {
            XCTAssertTrue("\($0)".contains("below 1 MiB"), "\($0)")
        }
    }

    func testMalformedImagesAreRefusedWithAReason() throws {
        XCTAssertThrowsError(try ELFImage(bytes: Array("MZ not an elf at all, just text padding it out to 64 bytes......".utf8))) {
            XCTAssertEqual($0 as? ELFImage.ParseError, .notELF)
        }
        var wrongMachine = ELFBuilder()
        wrongMachine.machine = 183
        XCTAssertThrowsError(try ELFImage(bytes: wrongMachine.build())) {
            XCTAssertEqual($0 as? ELFImage.ParseError, .unsupported("machine 183, not x86-64"))
        }
        let truncated = Array(ELFBuilder().build().prefix(100))
        XCTAssertThrowsError(try ELFImage(bytes: truncated)) {
            guard case .malformed = $0 as? ELFImage.ParseError else { return XCTFail("\($0)") }
        }
        var bigFile = ELFBuilder()
        bigFile.segments = [(0x10_0000, [1, 2, 3, 4], 2)]  // file size above memory size
        XCTAssertThrowsError(try ELFImage(bytes: bigFile.build()))
        XCTAssertThrowsError(try KernelLoader.load(image: ELFBuilder().build(), commandLine: String(repeating: "x", count: 5000), into: try memory())) {
            XCTAssertTrue("\($0)".contains("command line"), "\($0)")
        }
    }

    func testGuestKitImageHasPVHNoteAndItsVariantDoesNot() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pvhPath = root.appendingPathComponent("Guest/build/guest-kit.elf").path
        let elf64Path = root.appendingPathComponent("Guest/build/guest-kit-elf64.elf").path
        guard FileManager.default.fileExists(atPath: pvhPath) else {
            return XCTFail("build the guest kit first (make guest): \(pvhPath) is missing")
        }
        let pvh = try ELFImage(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: pvhPath))))
        XCTAssertNotNil(pvh.pvhEntry)
        XCTAssertTrue(pvh.segments.allSatisfy { $0.physicalAddress >= 0x10_0000 })
        let plain = try ELFImage(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: elf64Path))))
        XCTAssertNil(plain.pvhEntry)
        XCTAssertEqual(plain.entry, pvh.entry)
    }

    func testBootGDTSegmentsDecode() {
        let code64 = BootGDT.segment(BootGDT.code64Selector)
        XCTAssertEqual(code64.l, 1); XCTAssertEqual(code64.db, 0); XCTAssertEqual(code64.type, 0xB)
        XCTAssertEqual(code64.limit, 0xFFFF_FFFF); XCTAssertEqual(code64.present, 1)
        let code32 = BootGDT.segment(BootGDT.code32Selector)
        XCTAssertEqual(code32.l, 0); XCTAssertEqual(code32.db, 1)
        let task = BootGDT.segment(BootGDT.taskSelector)
        XCTAssertEqual(task.s, 0); XCTAssertEqual(task.type, 0xB); XCTAssertEqual(task.limit, 0x67)
    }
}

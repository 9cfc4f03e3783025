import XCTest
@testable import GuestRAM
@testable import MemorySlots
@testable import VMCore

/// Builds a fake bzImage: boot sector + setup sectors with a setup header, then a
/// "protected-mode kernel" of arbitrary bytes. Enough for the loader; nothing runs.
struct BzImageBuilder {
    var setupSectors: UInt8 = 4
    var magic = Array("HdrS".utf8)
    var version: UInt16 = 0x020F
    var loadFlags: UInt8 = 0x01
    var xLoadFlags: UInt16 = 0x0001
    var kernelAlignment: UInt32 = 0x20_0000
    var relocatable: UInt8 = 1
    var initSize: UInt32 = 0x40_0000
    var commandLineSize: UInt32 = 2047
    var initrdAddressMax: UInt32 = 0x7FFF_FFFF
    var preferredAddress: UInt64 = 0x100_0000
    var kernel: [UInt8] = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    func build() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ((setupSectors == 0 ? 4 : Int(setupSectors)) + 1) * 512)  // 0 means 4
        func put<V: FixedWidthInteger>(_ v: V, _ at: Int) {
            withUnsafeBytes(of: v.littleEndian) { out.replaceSubrange(at..<(at + $0.count), with: $0) }
        }
        out[0x1F1] = setupSectors
        put(UInt16(0xAA55), 0x1FE)
        out[0x200] = 0xEB; out[0x201] = 0x6A  // jmp to 0x26C: the header is 0x26C - 0x1F1 bytes
        out.replaceSubrange(0x202..<0x206, with: magic)
        put(version, 0x206)
        out[0x211] = loadFlags
        put(kernelAlignment, 0x230); out[0x234] = relocatable
        put(xLoadFlags, 0x236); put(commandLineSize, 0x238)
        put(initrdAddressMax, 0x22C); put(preferredAddress, 0x258); put(initSize, 0x260)
        return out + kernel
    }
}

final class BzImageTests: XCTestCase {
    private func memory(_ size: UInt64 = 64 << 20, high: UInt64 = 0) throws -> GuestMemory {
        var slots = [SlotDescriptor(guestBase: GuestAddress(0), size: size)]
        if high > 0 { slots.append(SlotDescriptor(guestBase: GuestAddress(4 << 30), size: high)) }
        return try GuestMemory.anonymous(slots)
    }

    func testSyntheticHeaderParses() throws {
        let image = try BzImage(bytes: BzImageBuilder().build())
        XCTAssertEqual(image.version, 0x020F)
        XCTAssertEqual(image.versionString, "2.15")
        XCTAssertEqual(image.setupSectors, 4)
        XCTAssertEqual(image.kernelOffset, 5 * 512)
        XCTAssertEqual(image.kernelSize, 8192)
        XCTAssertTrue(image.loadFlags.contains(.loadedHigh))
        XCTAssertTrue(image.xLoadFlags.contains(.kernel64))
        XCTAssertTrue(image.relocatable)
        XCTAssertEqual(image.setupHeader.count, 0x26C - 0x1F1)
        XCTAssertEqual(image.memoryEnd, 0x100_0000 + 0x40_0000, "relocatable: runs from pref_address")
        var fixed = BzImageBuilder(); fixed.relocatable = 0
        XCTAssertEqual(try BzImage(bytes: fixed.build()).memoryEnd, 0x10_0000 + 0x40_0000)
        var zeroSectors = BzImageBuilder(); zeroSectors.setupSectors = 0
        XCTAssertEqual(try BzImage(bytes: zeroSectors.build()).setupSectors, 4, "0 means 4 (boot.rst)")
    }

    func testBadMagicOldProtocolAndNo64BitEntryAreRefused() throws {
        var badMagic = BzImageBuilder(); badMagic.magic = Array("HdrZ".utf8)
        XCTAssertThrowsError(try BzImage(bytes: badMagic.build())) {
            guard case .notBzImage = $0 as? BzImage.ParseError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try KernelLoader.load(image: badMagic.build(), commandLine: "", into: try memory())) {
            XCTAssertTrue("\($0)".contains("not an ELF file or a bzImage"), "\($0)")
        }
        var old = BzImageBuilder(); old.version = 0x0209
        XCTAssertThrowsError(try BzImage(bytes: old.build())) {
            XCTAssertEqual($0 as? BzImage.ParseError, .protocolTooOld(major: 2, minor: 9))
            XCTAssertTrue("\($0)".contains("2.09"), "\($0)")
        }
        var no64 = BzImageBuilder(); no64.xLoadFlags = 0
        XCTAssertThrowsError(try BzImage(bytes: no64.build())) {
            XCTAssertEqual($0 as? BzImage.ParseError, .unsupported("no 64-bit entry (XLF_KERNEL_64 clear)"))
        }
        var low = BzImageBuilder(); low.loadFlags = 0
        XCTAssertThrowsError(try BzImage(bytes: low.build())) {
            guard case .unsupported(let what) = $0 as? BzImage.ParseError, what.contains("LOADED_HIGH") else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try BzImage(bytes: Array(BzImageBuilder().build().prefix(0x300)))) {
            guard case .malformed = $0 as? BzImage.ParseError else { return XCTFail("\($0)") }
        }
    }

    func testKernelOrInitrdThatDoesNotFitIsRefused() throws {
        var big = BzImageBuilder(); big.initSize = 200 << 20
        XCTAssertThrowsError(try KernelLoader.load(image: big.build(), commandLine: "", into: try memory())) {
            guard case .kernelDoesNotFit(let end, let ram) = $0 as? KernelLoader.LoadError else { return XCTFail("\($0)") }
            XCTAssertEqual(end, 0x100_0000 + (200 << 20)); XCTAssertEqual(ram, 64 << 20)
        }
        let initrd = [UInt8](repeating: 1, count: 48 << 20)  // 64 MiB RAM, the kernel needs up to 20 MiB
        XCTAssertThrowsError(try KernelLoader.load(image: BzImageBuilder().build(), commandLine: "", initrd: initrd, into: try memory())) {
            guard case .initrdDoesNotFit = $0 as? KernelLoader.LoadError else { return XCTFail("\($0)") }
        }
        var shortCommandLine = BzImageBuilder(); shortCommandLine.commandLineSize = 16
        XCTAssertThrowsError(try KernelLoader.load(image: shortCommandLine.build(), commandLine: "console=ttyS0 quiet", into: try memory())) {
            guard case .commandLineTooLong(19, limit: 16) = $0 as? KernelLoader.LoadError else { return XCTFail("\($0)") }
        }
    }

    func testSyntheticBootParamsAndEntry() throws {
        let memory = try memory(64 << 20, high: 2 << 20)
        let bytes = BzImageBuilder().build()
        let initrd = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let entry = try KernelLoader.load(image: bytes, commandLine: "console=ttyS0", initrd: initrd, into: memory)
        XCTAssertEqual(entry, .linux64(entry: 0x10_0200, cr3: BootLayout.pageTables.value, bootParams: BootLayout.zeroPage.value))
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x10_0000), count: 8192), Array(bytes[2560...]))
        let page = try memory.readBytes(at: BootLayout.zeroPage, count: 4096)
        // The setup header is the image's, except the fields the loader fills in.
        XCTAssertEqual(Array(page[0x1F1..<0x210]), Array(bytes[0x1F1..<0x210]))
        XCTAssertEqual(Array(page[0x211..<0x218]), Array(bytes[0x211..<0x218]))
        XCTAssertEqual(Array(page[0x22C..<0x26C]), Array(bytes[0x22C..<0x26C]))
        XCTAssertEqual(Array(page[0x26C..<0x2D0]), [UInt8](repeating: 0, count: 0x2D0 - 0x26C), "nothing past the header's end")
        XCTAssertEqual(Array(page[0x202..<0x206]), Array("HdrS".utf8))
        XCTAssertEqual(page[0x210], 0xFF, "type_of_loader")
        XCTAssertEqual(ByteReader(page).u32Value(0x228), UInt32(BootLayout.commandLine.value))
        XCTAssertEqual(try memory.readBytes(at: BootLayout.commandLine, count: 14), Array("console=ttyS0\0".utf8))
        // initrd: as high as possible below the end of low RAM, page-aligned.
        let ramdisk = UInt64(ByteReader(page).u32Value(0x218))
        XCTAssertEqual(ByteReader(page).u32Value(0x21C), 10_000)
        XCTAssertEqual(ramdisk, ((64 << 20) - 10_000) & ~0xFFF)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(ramdisk), count: initrd.count), initrd)
        // e820: the slot table's map, both slots.
        XCTAssertEqual(BootParamsReader(page: page).e820, MemoryMapEntry.map(for: memory.slots))
        // The reset vector's alias resets through the i8042, for a kernel that reboots by jumping there.
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0xF_FFF0), count: 4), [0xB0, 0xFE, 0xE6, 0x64], "mov al, 0xFE; out 0x64, al")
        XCTAssertEqual(page[0x1E8], 4)
        // The 4 GiB identity map covers the kernel entry and the IOAPIC.
        for address: UInt64 in [0x10_0200, BootLayout.zeroPage.value, 0xFEC0_0000] {
            XCTAssertEqual(try PageTableWalker.translate(virtualAddress: address, cr3: BootLayout.pageTables.value, memory: memory).physicalAddress, address)
        }
    }

    func testInitrdPlacementRespectsLimitFloorAndAlignment() {
        let slots = [SlotDescriptor(guestBase: GuestAddress(0), size: 256 << 20)]
        XCTAssertEqual(InitrdPlacement.address(size: 0x1800, floor: 0, limit: 0x8000_0000, slots: slots), GuestAddress((256 << 20) - 0x2000))
        XCTAssertEqual(InitrdPlacement.address(size: 0x1000, floor: 0, limit: 0x10_0001, slots: slots), GuestAddress(0xF_F000))
        XCTAssertNil(InitrdPlacement.address(size: 0x2000, floor: 0xF_F000, limit: 0x10_0000, slots: slots))
        XCTAssertNil(InitrdPlacement.address(size: 0, floor: 0, limit: 0x10_0000, slots: slots))
        XCTAssertNil(InitrdPlacement.address(size: 1, floor: 0, limit: 0x8000_0000, slots: []))
    }

    func testPVHInitrdBecomesAModule() throws {
        var elf = ELFBuilder()
        elf.pvhEntry = 0x10_0000
        let memory = try memory(16 << 20)
        let initrd = [UInt8](repeating: 0xA5, count: 5000)
        XCTAssertEqual(try KernelLoader.load(image: elf.build(), commandLine: "", initrd: initrd, into: memory), .pvh32(entry: 0x10_0000))
        let start = BootLayout.startInfo.value
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(start + 12)), 1, "nr_modules")
        let list = try memory.read(UInt64.self, at: GuestAddress(start + 16))
        XCTAssertEqual(list, BootLayout.moduleList.value)
        let address = try memory.read(UInt64.self, at: GuestAddress(list))
        XCTAssertEqual(try memory.read(UInt64.self, at: GuestAddress(list + 8)), 5000)
        XCTAssertEqual(address, ((16 << 20) - 5000) & ~0xFFF)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(address), count: 5000), initrd)
        // Without an initrd there are no modules.
        _ = try KernelLoader.load(image: elf.build(), commandLine: "", into: memory)
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(start + 12)), 0)
    }
}

/// Reads fields back out of a zero page, independently of the code that wrote it.
struct BootParamsReader {
    let page: [UInt8]

    var e820: [MemoryMapEntry] {
        (0..<Int(page[0x1E8])).map { index in
            let offset = 0x2D0 + index * 20
            let reader = ByteReader(page)
            return MemoryMapEntry(base: reader.u64Value(offset), size: reader.u64Value(offset + 8),
                                  kind: MemoryMapEntry.Kind(rawValue: reader.u32Value(offset + 16)) ?? .reserved)
        }
    }
}

extension ByteReader {
    func u32Value(_ offset: Int) -> UInt32 { (try? u32(at: offset)) ?? 0xDEAD_BEEF }
    func u64Value(_ offset: Int) -> UInt64 { (try? u64(at: offset)) ?? 0xDEAD_BEEF }
}

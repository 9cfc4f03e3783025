import XCTest
@testable import GuestRAM
@testable import MemorySlots
@testable import VMCore

/// Loader tests on a real Debian kernel (linux-image-cloud-amd64). They need the files
/// `scripts/linux-guest` produces (run it once as root: it downloads the package):
///   build/linux/vmlinuz, build/linux/vmlinux, build/linux/initramfs.cpio.gz
/// Without them each test skips with the reason.
final class DebianKernelTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private func file(_ name: String) throws -> [UInt8] {
        let path = DebianKernelTests.root.appendingPathComponent("build/linux/\(name)").path
        guard FileManager.default.fileExists(atPath: path) else {
            print("DebianKernelTests: skipped, \(path) is missing (produce it with scripts/linux-guest, as root)")
            throw XCTSkip("\(path) is missing: run scripts/linux-guest (as root) to download and build the Debian kernel guest")
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    private func memory(_ size: UInt64 = 256 << 20) throws -> GuestMemory {
        try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: size)])
    }

    func testSetupHeaderOfTheDebianKernel() throws {
        let bytes = try file("vmlinuz")
        let image = try BzImage(bytes: bytes)
        XCTAssertGreaterThanOrEqual(image.version, 0x020C, image.versionString)
        // Values the file holds at their boot.rst offsets, read here independently.
        XCTAssertEqual(image.version, UInt16(bytes[0x206]) | UInt16(bytes[0x207]) << 8)
        XCTAssertEqual(image.setupSectors, Int(bytes[0x1F1]))
        XCTAssertGreaterThan(image.setupSectors, 4)
        XCTAssertTrue(image.loadFlags.contains(.loadedHigh))
        XCTAssertTrue(image.xLoadFlags.contains(.kernel64))
        XCTAssertTrue(image.relocatable, "Debian kernels are relocatable")
        XCTAssertEqual(image.kernelAlignment.nonzeroBitCount, 1)
        XCTAssertGreaterThan(UInt64(image.initSize), UInt64(image.kernelSize))
        XCTAssertEqual(image.commandLineSize, 2047)
        XCTAssertEqual(image.setupHeader.count, 0x202 + Int(bytes[0x201]) - 0x1F1)
        // The compressed payload sits where the protected-mode kernel starts + payload_offset.
        let payloadOffset = Int(ByteReader(bytes).u32Value(0x248))
        let head = Array(bytes[(image.kernelOffset + payloadOffset)..<(image.kernelOffset + payloadOffset + 4)])
        let magics: [[UInt8]] = [[0x02, 0x21, 0x4C, 0x18], [0xFD, 0x37, 0x7A, 0x58], [0x28, 0xB5, 0x2F, 0xFD], [0x1F, 0x8B, 0x08, 0x00]]
        XCTAssertTrue(magics.contains { head == $0 || Array(head.prefix(3)) == Array($0.prefix(3)) }, "payload starts with \(head)")
    }

    func testBootParamsForTheDebianKernel() throws {
        let bytes = try file("vmlinuz")
        let initrd = (try? file("initramfs.cpio.gz")) ?? [UInt8](repeating: 0x5A, count: 1 << 20)
        let memory = try memory()
        let commandLine = "console=ttyS0 earlyprintk=serial,ttyS0,115200"
        let entry = try KernelLoader.load(image: bytes, commandLine: commandLine, initrd: initrd, vcpuCount: 2, into: memory)
        XCTAssertEqual(entry, .linux64(entry: 0x10_0200, cr3: BootLayout.pageTables.value, bootParams: BootLayout.zeroPage.value))
        let image = try BzImage(bytes: bytes)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x10_0000), count: 4096), Array(bytes[image.kernelOffset..<(image.kernelOffset + 4096)]))

        let page = try memory.readBytes(at: BootLayout.zeroPage, count: 4096)
        let reader = ByteReader(page)
        XCTAssertEqual(Array(page[0x202..<0x206]), Array("HdrS".utf8))
        XCTAssertEqual(Array(page[0x206..<0x208]), Array(bytes[0x206..<0x208]), "version copied")
        XCTAssertEqual(page[0x210], 0xFF, "type_of_loader")
        XCTAssertEqual(UInt64(reader.u32Value(0x228)), BootLayout.commandLine.value, "cmd_line_ptr")
        XCTAssertEqual(try memory.readBytes(at: BootLayout.commandLine, count: commandLine.utf8.count + 1), Array(commandLine.utf8) + [0])
        XCTAssertEqual(BootParamsReader(page: page).e820, MemoryMapEntry.map(for: memory.slots))
        XCTAssertEqual(Int(page[0x1E8]), 3)

        let ramdisk = UInt64(reader.u32Value(0x218))
        XCTAssertEqual(UInt64(reader.u32Value(0x21C)), UInt64(initrd.count), "ramdisk_size")
        XCTAssertEqual(ramdisk & 0xFFF, 0, "page-aligned")
        XCTAssertGreaterThanOrEqual(ramdisk, image.memoryEnd, "above the kernel's init_size footprint")
        XCTAssertLessThanOrEqual(ramdisk + UInt64(initrd.count), min(UInt64(image.initrdAddressMax) + 1, 256 << 20))
        XCTAssertLessThan((256 << 20) - (ramdisk + UInt64(initrd.count)), 4096, "as high as possible")
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(ramdisk), count: 4096), Array(initrd.prefix(4096)))

        let mp = try XCTUnwrap(try MPTableReader(memory: memory))
        XCTAssertEqual(mp.floatingSum, 0); XCTAssertEqual(mp.tableSum, 0)
        XCTAssertEqual(mp.processors.map(\.apicID), [0, 1])
        XCTAssertEqual(mp.processors.map(\.bootstrap), [true, false])
        XCTAssertEqual(mp.ioAPICs, [MPTableReader.IOAPIC(id: 2, version: 0x11, address: 0xFEC0_0000)])
    }

    func testDebianKernelNeedsMemoryForItsInitSize() throws {
        let bytes = try file("vmlinuz")
        XCTAssertThrowsError(try KernelLoader.load(image: bytes, commandLine: "", into: try memory(32 << 20))) {
            guard case .kernelDoesNotFit = $0 as? KernelLoader.LoadError else { return XCTFail("\($0)") }
        }
    }

    func testVmlinuxHasAPVHEntryAndLoadsThroughIt() throws {
        let bytes = try file("vmlinux")
        let image = try ELFImage(bytes: bytes)
        let pvh = try XCTUnwrap(image.pvhEntry, "Debian's vmlinux carries XEN_ELFNOTE_PHYS32_ENTRY")
        let initrd = [UInt8](repeating: 0xC3, count: 12345)
        let memory = try memory()
        XCTAssertEqual(try KernelLoader.load(image: bytes, commandLine: "console=ttyS0", initrd: initrd, into: memory), .pvh32(entry: pvh))
        let start = BootLayout.startInfo.value
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(start)), PVHStartInfo.magic)
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(start + 12)), 1)
        let list = try memory.read(UInt64.self, at: GuestAddress(start + 16))
        let address = try memory.read(UInt64.self, at: GuestAddress(list))
        let kernelEnd = image.segments.map { $0.physicalAddress + $0.memorySize }.max() ?? 0
        XCTAssertGreaterThanOrEqual(address, kernelEnd)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(address), count: initrd.count), initrd)
    }
}

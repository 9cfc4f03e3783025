import GuestRAM
import MemorySlots

/// struct boot_params, the "zero page" of the Linux x86 boot protocol
/// (arch/x86/include/uapi/asm/bootparam.h; Documentation/arch/x86/boot.rst,
/// "64-bit boot protocol"): the setup header copied from the image, filled in
/// with what the loader decided, and the e820 memory map. Building the page is
/// pure (`bytes()`); `write(into:at:)` puts it in guest memory.
struct LinuxBootParams {
    static let size = 4096
    // Offsets in struct boot_params.
    static let acpiRSDPAddressOffset = 0x070
    static let extRamdiskImageOffset = 0x0C0
    static let extRamdiskSizeOffset = 0x0C4
    static let extCommandLinePointerOffset = 0x0C8
    static let e820EntriesOffset = 0x1E8
    static let e820TableOffset = 0x2D0
    static let e820EntrySize = 20
    static let e820MaximumEntries = 128
    /// type_of_loader 0xFF: a boot loader without an assigned id (boot.rst).
    static let undefinedLoader: UInt8 = 0xFF

    let image: BzImage
    let commandLine: GuestAddress
    let initrd: (address: GuestAddress, size: UInt64)?
    let memoryMap: [MemoryMapEntry]

    func bytes() -> [UInt8] {
        var page = [UInt8](repeating: 0, count: LinuxBootParams.size)
        func put<Value: FixedWidthInteger>(_ value: Value, _ offset: Int) {
            // SAFETY: the integer's bytes are copied into the zero page in range (replaceSubrange checks it).
            withUnsafeBytes(of: value.littleEndian) { page.replaceSubrange(offset..<(offset + $0.count), with: $0) }
        }
        // The setup header, as the image has it (boot.rst: copy 0x1F1 up to 0x202 + byte at 0x201).
        page.replaceSubrange(BzImage.setupHeaderOffset..<(BzImage.setupHeaderOffset + image.setupHeader.count), with: image.setupHeader)
        page[BzImage.typeOfLoaderOffset] = LinuxBootParams.undefinedLoader
        put(ACPITables.rsdpAddress.value, LinuxBootParams.acpiRSDPAddressOffset)  // acpi_rsdp_addr
        put(UInt32(truncatingIfNeeded: commandLine.value), BzImage.commandLinePointerOffset)
        put(UInt32(truncatingIfNeeded: commandLine.value >> 32), LinuxBootParams.extCommandLinePointerOffset)
        if let initrd {
            put(UInt32(truncatingIfNeeded: initrd.address.value), BzImage.ramdiskImageOffset)
            put(UInt32(truncatingIfNeeded: initrd.size), BzImage.ramdiskSizeOffset)
            put(UInt32(truncatingIfNeeded: initrd.address.value >> 32), LinuxBootParams.extRamdiskImageOffset)
            put(UInt32(truncatingIfNeeded: initrd.size >> 32), LinuxBootParams.extRamdiskSizeOffset)
        }
        let entries = memoryMap.prefix(LinuxBootParams.e820MaximumEntries)
        page[LinuxBootParams.e820EntriesOffset] = UInt8(entries.count)
        for (index, entry) in entries.enumerated() {
            let offset = LinuxBootParams.e820TableOffset + index * LinuxBootParams.e820EntrySize
            put(entry.base, offset)
            put(entry.size, offset + 8)
            put(entry.kind.rawValue, offset + 16)
        }
        return page
    }

    func write(into memory: GuestMemory, at address: GuestAddress) throws {
        try memory.writeBytes(bytes(), at: address)
    }
}

/// Where a boot module (the initrd) goes: as high as possible in low RAM, page-aligned,
/// ending at or below `limit` (the last byte's address + 1), not below `floor`.
enum InitrdPlacement {
    static func address(size: UInt64, floor: UInt64, limit: UInt64, slots: [SlotDescriptor]) -> GuestAddress? {
        guard size > 0 else { return nil }
        // The RAM slot that starts at 0 is the one below the MMIO hole (design §2).
        guard let low = slots.first(where: { $0.guestBase.value == 0 }) else { return nil }
        let end = min(limit, low.size)
        guard end >= size else { return nil }
        let start = (end - size) & ~(PageSize.fourKiB.bytes - 1)
        guard start >= floor else { return nil }
        return GuestAddress(start)
    }
}

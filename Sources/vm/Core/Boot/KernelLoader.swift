import BootImage
import GuestRAM
import MemorySlots

/// How the boot vCPU starts, decided by what the image offers.
enum BootEntry: Equatable {
    /// PVH: 32-bit protected mode, paging off, EBX = start_info.
    case pvh32(entry: UInt32)
    /// A plain ELF64 entry: long mode with identity-mapped low memory, RDI = RBX = start_info.
    case long64(entry: UInt64, cr3: UInt64)
    /// The Linux 64-bit boot protocol (bzImage): long mode, identity-mapped first 4 GiB,
    /// interrupts off, RSI = boot_params.
    case linux64(entry: UInt64, cr3: UInt64, bootParams: UInt64)
}

/// Loads a kernel into guest memory and writes what its entry needs. Two formats:
/// - ELF (the guest kit, or a Linux vmlinux): segments at their physical addresses,
///   start_info with the memory map, command line and initrd module; PVH when the
///   note is there, else the 64-bit entry with identity page tables.
/// - bzImage: the protected-mode kernel at 1 MiB, boot_params (zero page) with the
///   setup header, command line, initrd and e820 map; the 64-bit entry at +0x200.
/// Every boot also gets an MP table, so a kernel without ACPI finds CPUs and the IOAPIC,
/// and the ACPI tables (`ACPITables`), which PVH's start info and boot_params point at.
enum KernelLoader {
    enum LoadError: Error, CustomStringConvertible {
        case image(ELFImage.ParseError)
        case bzImage(BzImage.ParseError)
        case unknownFormat
        case doesNotFit(segment: Int, address: UInt64, size: UInt64)
        case belowFloor(segment: Int, address: UInt64)
        case kernelDoesNotFit(end: UInt64, lowRAM: UInt64)
        case initrdDoesNotFit(size: UInt64)
        case commandLineTooLong(Int, limit: Int)

        var description: String {
            switch self {
            case .image(let error): "\(error)"
            case .bzImage(let error): "\(error)"
            case .unknownFormat: "the kernel image is not an ELF file or a bzImage"
            case .doesNotFit(let segment, let address, let size):
                "segment \(segment) (0x\(String(size, radix: 16)) bytes at 0x\(String(address, radix: 16))) does not fit in guest memory"
            case .belowFloor(let segment, let address):
                "segment \(segment) at 0x\(String(address, radix: 16)) is below 1 MiB, where the VMM keeps its boot structures"
            case .kernelDoesNotFit(let end, let lowRAM):
                "the kernel needs memory up to 0x\(String(end, radix: 16)) to start, but RAM below 4 GiB ends at 0x\(String(lowRAM, radix: 16)): give the VM more memory"
            case .initrdDoesNotFit(let size):
                "the initrd (\(size) bytes) does not fit in RAM below 4 GiB above the kernel"
            case .commandLineTooLong(let length, let limit):
                "command line of \(length) bytes exceeds \(limit)"
            }
        }
    }

    /// Loads `image` (ELF or bzImage), the command line and the optional initrd, and
    /// returns how the boot vCPU enters. `vcpuCount` sizes the MP table.
    static func load(image bytes: [UInt8], commandLine: String, initrd: [UInt8]? = nil, vcpuCount: Int = 1,
                     into memory: GuestMemory) throws -> BootEntry {
        let entry: BootEntry
        switch BootImageFormat(head: bytes) {
        case .elf: entry = try loadELF(bytes, commandLine: commandLine, initrd: initrd, into: memory)
        case .bzImage: entry = try loadBzImage(bytes, commandLine: commandLine, initrd: initrd, into: memory)
        case nil: throw LoadError.unknownFormat
        }
        try MPTable(processorCount: vcpuCount).write(into: memory, at: BootLayout.mpTable)
        try ACPITables(processorCount: vcpuCount).write(into: memory)
        try BootGDT.write(into: memory)
        try ResetVector.write(into: memory)
        return entry
    }

    // MARK: ELF

    private static func loadELF(_ bytes: [UInt8], commandLine: String, initrd: [UInt8]?, into memory: GuestMemory) throws -> BootEntry {
        let image: ELFImage
        do { image = try ELFImage(bytes: bytes) } catch let error as ELFImage.ParseError { throw LoadError.image(error) }

        var kernelEnd: UInt64 = 0
        for (index, segment) in image.segments.enumerated() {
            guard segment.physicalAddress >= BootLayout.kernelFloor.value else {
                throw LoadError.belowFloor(segment: index, address: segment.physicalAddress)
            }
            let address = GuestAddress(segment.physicalAddress)
            do {
                // Check the whole segment first so nothing is half-written.
                _ = try memory.slices(at: address, length: segment.memorySize, forWriting: true)
                let start = Int(segment.fileOffset)
                try memory.writeBytes(Array(bytes[start..<(start + Int(segment.fileSize))]), at: address)
                try memory.fill(0, at: GuestAddress(segment.physicalAddress + segment.fileSize), count: segment.memorySize - segment.fileSize)
            } catch is GuestMemoryError {
                throw LoadError.doesNotFit(segment: index, address: segment.physicalAddress, size: segment.memorySize)
            }
            kernelEnd = max(kernelEnd, segment.physicalAddress + segment.memorySize)
        }

        try writeCommandLine(commandLine, limit: BootLayout.commandLineCapacity - 1, into: memory)
        let map = Array(MemoryMapEntry.map(for: memory.slots).prefix(BootLayout.memoryMapCapacity))
        var startInfo = PVHStartInfo(commandLine: BootLayout.commandLine, memoryMap: map)
        if let initrd, !initrd.isEmpty {
            let address = try placeInitrd(initrd, floor: kernelEnd, limit: UInt64(UInt32.max) + 1, into: memory)
            startInfo.modules = [(address, UInt64(initrd.count))]
            startInfo.moduleListAddress = BootLayout.moduleList
        }
        try startInfo.write(into: memory, at: BootLayout.startInfo, memoryMapAt: BootLayout.memoryMap)

        if let pvh = image.pvhEntry { return .pvh32(entry: pvh) }
        let ramBelowHole = lowRAMEnd(memory)
        let mapped = min(BootLayout.identityMappedBytes, ramBelowHole & ~(PageSize.twoMiB.bytes - 1))
        let layout = try IdentityPageTableBuilder(writable: true)
            .build(size: max(mapped, PageSize.twoMiB.bytes), tableBase: BootLayout.pageTables.value, memory: memory)
        return .long64(entry: image.entry, cr3: layout.cr3)
    }

    // MARK: bzImage

    /// The 64-bit boot protocol (boot.rst, "64-bit Boot Protocol"): protected-mode kernel
    /// at 1 MiB, zero page filled in, enter at load address + 0x200 in long mode.
    private static func loadBzImage(_ bytes: [UInt8], commandLine: String, initrd: [UInt8]?, into memory: GuestMemory) throws -> BootEntry {
        let image: BzImage
        do { image = try BzImage(bytes: bytes) } catch let error as BzImage.ParseError { throw LoadError.bzImage(error) }

        let lowRAM = lowRAMEnd(memory)
        let loadAddress = BzImage.loadAddress
        guard image.memoryEnd <= lowRAM, loadAddress + UInt64(image.kernelSize) <= lowRAM else {
            throw LoadError.kernelDoesNotFit(end: max(image.memoryEnd, loadAddress + UInt64(image.kernelSize)), lowRAM: lowRAM)
        }
        try memory.writeBytes(Array(bytes[image.kernelOffset...]), at: GuestAddress(loadAddress))

        // cmdline_size excludes the NUL (boot.rst, 2.06+).
        try writeCommandLine(commandLine, limit: min(Int(image.commandLineSize), BootLayout.commandLineCapacity - 1), into: memory)
        var initrdPlacement: (address: GuestAddress, size: UInt64)?
        if let initrd, !initrd.isEmpty {
            let address = try placeInitrd(initrd, floor: image.memoryEnd, limit: UInt64(image.initrdAddressMax) + 1, into: memory)
            initrdPlacement = (address, UInt64(initrd.count))
        }
        let params = LinuxBootParams(
            image: image, commandLine: BootLayout.commandLine, initrd: initrdPlacement,
            memoryMap: MemoryMapEntry.map(for: memory.slots))
        try params.write(into: memory, at: BootLayout.zeroPage)

        let layout = try IdentityPageTableBuilder(writable: true)
            .build(size: BootLayout.linuxIdentityMappedBytes, tableBase: BootLayout.pageTables.value, memory: memory)
        return .linux64(entry: loadAddress + 0x200, cr3: layout.cr3, bootParams: BootLayout.zeroPage.value)
    }

    // MARK: Shared steps

    private static func writeCommandLine(_ commandLine: String, limit: Int, into memory: GuestMemory) throws {
        let bytes = Array(commandLine.utf8)
        guard bytes.count <= limit else { throw LoadError.commandLineTooLong(bytes.count, limit: limit) }
        try memory.writeBytes(bytes + [0], at: BootLayout.commandLine)
    }

    /// Copies the initrd as high as it may go in low RAM, above the kernel's footprint.
    private static func placeInitrd(_ initrd: [UInt8], floor: UInt64, limit: UInt64, into memory: GuestMemory) throws -> GuestAddress {
        let size = UInt64(initrd.count)
        guard let address = InitrdPlacement.address(size: size, floor: floor, limit: limit, slots: memory.slots) else {
            throw LoadError.initrdDoesNotFit(size: size)
        }
        try memory.writeBytes(initrd, at: address)
        return address
    }

    /// The end of the RAM slot at 0 (below the MMIO hole).
    private static func lowRAMEnd(_ memory: GuestMemory) -> UInt64 {
        memory.slots.first { $0.guestBase.value == 0 }?.size ?? 0
    }
}

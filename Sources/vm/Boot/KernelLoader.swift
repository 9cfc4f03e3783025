import Shared

/// How the boot vCPU starts, decided by what the image offers.
enum BootEntry: Equatable {
    /// PVH: 32-bit protected mode, paging off, EBX = start_info.
    case pvh32(entry: UInt32)
    /// A plain ELF64 entry: long mode with identity-mapped low memory, RDI = RBX = start_info.
    case long64(entry: UInt64, cr3: UInt64)
}

/// Loads an ELF kernel into guest memory and writes what its entry needs:
/// start_info with the memory map and command line, and for the 64-bit entry
/// the identity page tables and boot GDT. PVH is preferred when the note is there.
enum KernelLoader {
    enum LoadError: Error, CustomStringConvertible {
        case image(ELFImage.ParseError)
        case doesNotFit(segment: Int, address: UInt64, size: UInt64)
        case belowFloor(segment: Int, address: UInt64)
        case commandLineTooLong(Int)

        var description: String {
            switch self {
            case .image(let error): "\(error)"
            case .doesNotFit(let segment, let address, let size):
                "segment \(segment) (0x\(String(size, radix: 16)) bytes at 0x\(String(address, radix: 16))) does not fit in guest memory"
            case .belowFloor(let segment, let address):
                "segment \(segment) at 0x\(String(address, radix: 16)) is below 1 MiB, where the VMM keeps its boot structures"
            case .commandLineTooLong(let length):
                "command line of \(length) bytes exceeds \(BootLayout.commandLineCapacity - 1)"
            }
        }
    }

    static func load(image bytes: [UInt8], commandLine: String, into memory: GuestMemory) throws -> BootEntry {
        let image: ELFImage
        do { image = try ELFImage(bytes: bytes) } catch let error as ELFImage.ParseError { throw LoadError.image(error) }

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
        }

        let commandLineBytes = Array(commandLine.utf8)
        guard commandLineBytes.count < BootLayout.commandLineCapacity else { throw LoadError.commandLineTooLong(commandLineBytes.count) }
        try memory.writeBytes(commandLineBytes + [0], at: BootLayout.commandLine)

        let map = Array(MemoryMapEntry.map(for: memory.slots).prefix(BootLayout.memoryMapCapacity))
        try PVHStartInfo(commandLine: BootLayout.commandLine, memoryMap: map)
            .write(into: memory, at: BootLayout.startInfo, memoryMapAt: BootLayout.memoryMap)
        try BootGDT.write(into: memory)

        if let pvh = image.pvhEntry { return .pvh32(entry: pvh) }
        let ramBelowHole = memory.slots.first { $0.guestBase.value == 0 }?.size ?? 0
        let mapped = min(BootLayout.identityMappedBytes, ramBelowHole & ~(PageSize.twoMiB.bytes - 1))
        let layout = try IdentityPageTableBuilder(writable: true)
            .build(size: max(mapped, PageSize.twoMiB.bytes), tableBase: BootLayout.pageTables.value, memory: memory)
        return .long64(entry: image.entry, cr3: layout.cr3)
    }
}

/// A parsed ELF64 x86-64 executable: what a loader needs and nothing more.
/// Parsing is pure (bytes in, image or error out) and checks every offset,
/// since a boot image is user input.
struct ELFImage: Equatable {
    struct Segment: Equatable {
        /// Guest-physical load address (p_paddr: what PVH and the boot protocols use).
        let physicalAddress: UInt64
        let fileOffset: UInt64
        let fileSize: UInt64
        let memorySize: UInt64
    }

    let entry: UInt64
    let segments: [Segment]
    /// The 32-bit entry from the Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY), if present.
    let pvhEntry: UInt32?

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case notELF
        case unsupported(String)
        case malformed(String)

        var description: String {
            switch self {
            case .notELF: "not an ELF file"
            case .unsupported(let what): "unsupported ELF: \(what)"
            case .malformed(let what): "malformed ELF: \(what)"
            }
        }
    }

    private static let machineX86_64: UInt16 = 62
    private static let typeExecutable: UInt16 = 2
    private static let programLoad: UInt32 = 1
    private static let programNote: UInt32 = 4
    private static let xenNoteName = Array("Xen\0".utf8)
    private static let xenPhys32Entry: UInt32 = 18
    private static let maximumProgramHeaders = 64

    init(bytes: [UInt8]) throws {
        let header = ByteReader(bytes)
        guard bytes.count >= 64, Array(bytes[0..<4]) == [0x7F, 0x45, 0x4C, 0x46] else { throw ParseError.notELF }
        guard bytes[4] == 2 else { throw ParseError.unsupported("not 64-bit (class \(bytes[4]))") }
        guard bytes[5] == 1 else { throw ParseError.unsupported("not little-endian") }
        let type = try header.u16(at: 16)
        let machine = try header.u16(at: 18)
        guard machine == ELFImage.machineX86_64 else { throw ParseError.unsupported("machine \(machine), not x86-64") }
        guard type == ELFImage.typeExecutable else { throw ParseError.unsupported("type \(type), not an executable") }
        entry = try header.u64(at: 24)
        let programOffset = try header.u64(at: 32)
        let programEntrySize = UInt64(try header.u16(at: 54))
        let programCount = Int(try header.u16(at: 56))
        guard programCount <= ELFImage.maximumProgramHeaders else { throw ParseError.malformed("\(programCount) program headers") }
        guard programEntrySize >= 56 else { throw ParseError.malformed("program header size \(programEntrySize)") }

        var segments: [Segment] = []
        var pvhEntry: UInt32?
        for index in 0..<programCount {
            let base = try header.checkedOffset(programOffset, plus: UInt64(index) * programEntrySize, length: 56)
            let kind = try header.u32(at: base)
            let offset = try header.u64(at: base + 8)
            let physical = try header.u64(at: base + 24)
            let fileSize = try header.u64(at: base + 32)
            let memorySize = try header.u64(at: base + 40)
            _ = try header.checkedOffset(offset, plus: 0, length: fileSize)
            switch kind {
            case ELFImage.programLoad:
                guard fileSize <= memorySize else { throw ParseError.malformed("segment \(index) file size exceeds memory size") }
                guard physical.addingReportingOverflow(memorySize).overflow == false else {
                    throw ParseError.malformed("segment \(index) wraps the address space")
                }
                segments.append(Segment(physicalAddress: physical, fileOffset: offset, fileSize: fileSize, memorySize: memorySize))
            case ELFImage.programNote:
                if let found = try ELFImage.findPVHEntry(in: header, offset: Int(offset), size: Int(fileSize)) { pvhEntry = found }
            default:
                continue
            }
        }
        guard !segments.isEmpty else { throw ParseError.malformed("no loadable segments") }
        self.segments = segments
        self.pvhEntry = pvhEntry
    }

    /// Walks the notes of one PT_NOTE segment for XEN_ELFNOTE_PHYS32_ENTRY.
    private static func findPVHEntry(in reader: ByteReader, offset: Int, size: Int) throws -> UInt32? {
        var cursor = offset
        let end = offset + size
        while cursor + 12 <= end {
            let nameSize = Int(try reader.u32(at: cursor))
            let descriptionSize = Int(try reader.u32(at: cursor + 4))
            let type = try reader.u32(at: cursor + 8)
            let nameStart = cursor + 12
            let descriptionStart = nameStart + align4(nameSize)
            let next = descriptionStart + align4(descriptionSize)
            guard nameSize <= size, descriptionSize <= size, next <= end else { throw ParseError.malformed("note overruns its segment") }
            if type == xenPhys32Entry, reader.bytes(nameStart, nameSize) == xenNoteName {
                // Linux writes a 64-bit value here, others 32-bit; the entry is below 4 GiB either way.
                guard descriptionSize == 4 || descriptionSize == 8 else { throw ParseError.malformed("PVH note of \(descriptionSize) bytes") }
                let value = descriptionSize == 4 ? UInt64(try reader.u32(at: descriptionStart)) : try reader.u64(at: descriptionStart)
                guard value <= UInt64(UInt32.max) else { throw ParseError.malformed("PVH entry above 4 GiB") }
                return UInt32(value)
            }
            cursor = next
        }
        return nil
    }

    private static func align4(_ value: Int) -> Int { (value + 3) & ~3 }
}

/// Bounds-checked little-endian reads from a byte array.
struct ByteReader {
    let data: [UInt8]

    init(_ data: [UInt8]) { self.data = data }

    func checkedOffset(_ base: UInt64, plus offset: UInt64, length: UInt64) throws -> Int {
        let (start, overflow1) = base.addingReportingOverflow(offset)
        let (end, overflow2) = start.addingReportingOverflow(length)
        guard !overflow1, !overflow2, end <= UInt64(data.count) else {
            throw ELFImage.ParseError.malformed("offset 0x\(String(base &+ offset, radix: 16)) beyond the end of the file")
        }
        return Int(start)
    }

    func bytes(_ offset: Int, _ count: Int) -> [UInt8] {
        guard offset >= 0, count >= 0, offset + count <= data.count else { return [] }
        return Array(data[offset..<(offset + count)])
    }

    private func load<Value: FixedWidthInteger>(_ offset: Int, as type: Value.Type) throws -> Value {
        let size = MemoryLayout<Value>.size
        guard offset >= 0, offset + size <= data.count else { throw ELFImage.ParseError.malformed("read past the end of the file") }
        var value = Value.zero
        for index in (0..<size).reversed() { value = value << 8 | Value(data[offset + index]) }
        return value
    }

    func u16(at offset: Int) throws -> UInt16 { try load(offset, as: UInt16.self) }
    func u32(at offset: Int) throws -> UInt32 { try load(offset, as: UInt32.self) }
    func u64(at offset: Int) throws -> UInt64 { try load(offset, as: UInt64.self) }
}

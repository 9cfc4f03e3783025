/// The commands of fw_cfg's "etc/table-loader" (QEMU's hw/acpi/bios-linker-loader.c
/// describes them; SeaBIOS runs them in romfile_loader.c): the firmware allocates each
/// named file in its memory, adds the address a file landed at to the pointer fields
/// that refer to it, and fixes up checksums. That is how a VMM hands over ACPI tables
/// without knowing where the firmware will put them. Each command is 128 bytes,
/// little-endian.
struct TableLoaderScript {
    enum Zone: UInt8 {
        /// Top of RAM below 4 GiB (reserved in the e820 map by the firmware).
        case high = 1
        /// The F segment below 1 MiB, where an OS scans for the RSDP.
        case fSegment = 2
    }

    static let commandSize = 128
    static let fileNameSize = 56

    private(set) var bytes: [UInt8] = []

    /// COMMAND_ALLOCATE: load `file`, aligned to `alignment` (a power of two), in `zone`.
    mutating func allocate(_ file: String, alignment: UInt32, zone: Zone) {
        append(command: 1, name(file) + little(UInt64(alignment), 4) + [zone.rawValue])
    }

    /// COMMAND_ADD_POINTER: add where `target` was loaded to the `size`-byte field at
    /// `offset` in `file`.
    mutating func addPointer(in file: String, at offset: Int, size: UInt8, to target: String) {
        append(command: 2, name(file) + name(target) + little(UInt64(offset), 4) + [size])
    }

    /// COMMAND_ADD_CHECKSUM: subtract the byte sum of `range` of `file` from the byte at `offset`.
    mutating func addChecksum(in file: String, at offset: Int, over range: Range<Int>) {
        append(command: 3, name(file) + little(UInt64(offset), 4) + little(UInt64(range.lowerBound), 4) + little(UInt64(range.count), 4))
    }

    private mutating func append(command: UInt32, _ body: [UInt8]) {
        var entry = little(UInt64(command), 4) + body
        entry += [UInt8](repeating: 0, count: TableLoaderScript.commandSize - entry.count)
        bytes += entry
    }

    /// A NUL-padded name; callers use the fixed names of `FirmwareACPIFiles`, all short.
    private func name(_ file: String) -> [UInt8] {
        let text = Array(file.utf8.prefix(TableLoaderScript.fileNameSize - 1))
        return text + [UInt8](repeating: 0, count: TableLoaderScript.fileNameSize - text.count)
    }

    private func little(_ value: UInt64, _ count: Int) -> [UInt8] { FirmwareConfigTable.little(value, count) }
}

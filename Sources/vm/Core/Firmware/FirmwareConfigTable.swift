/// The items of QEMU's firmware configuration interface (fw_cfg, QEMU's
/// docs/specs/fw_cfg.rst), which SeaBIOS reads to learn the machine: a few numbered
/// legacy items and named files listed in a directory. Built once per boot and never
/// changed, so the device that serves it needs no lock for the contents.
struct FirmwareConfigTable: Equatable {
    /// The numbered items SeaBIOS reads (fw_cfg.rst, "Selector Register").
    enum Key {
        static let signature: UInt16 = 0x0000
        static let interfaceID: UInt16 = 0x0001
        static let noGraphic: UInt16 = 0x0004
        static let processorCount: UInt16 = 0x0005
        static let bootMenu: UInt16 = 0x000E
        static let maximumProcessors: UInt16 = 0x000F
        static let fileDirectory: UInt16 = 0x0019
        /// Selectors from here on name files.
        static let firstFile: UInt16 = 0x0020
    }

    /// ID bit 0: the traditional port interface; bit 1: the DMA interface.
    static let interfaceFeatures: UInt32 = 0b11
    /// File names are NUL-padded to 56 bytes in the directory.
    static let fileNameCapacity = 56
    /// Ample for our few files; QEMU allows 0x1000 - 0x20 of them.
    static let maximumFiles = 64

    enum BuildError: Error, Equatable, CustomStringConvertible {
        case nameTooLong(String)
        case duplicate(String)
        case tooManyFiles

        var description: String {
            switch self {
            case .nameTooLong(let name): "fw_cfg file name \"\(name)\" is longer than \(FirmwareConfigTable.fileNameCapacity - 1) bytes"
            case .duplicate(let name): "fw_cfg file \"\(name)\" given twice"
            case .tooManyFiles: "more than \(FirmwareConfigTable.maximumFiles) fw_cfg files"
            }
        }
    }

    private(set) var items: [UInt16: [UInt8]] = [:]
    private(set) var files: [(name: String, key: UInt16)] = []

    static func == (a: FirmwareConfigTable, b: FirmwareConfigTable) -> Bool {
        a.items == b.items && a.files.map(\.name) == b.files.map(\.name) && a.files.map(\.key) == b.files.map(\.key)
    }

    /// The signature, the interface ID and an empty directory.
    init() {
        items[Key.signature] = Array("QEMU".utf8)
        items[Key.interfaceID] = FirmwareConfigTable.little(UInt64(FirmwareConfigTable.interfaceFeatures), 4)
        items[Key.fileDirectory] = [0, 0, 0, 0]
    }

    /// The bytes of `key`; an unknown selector reads as empty (then as zeros).
    func item(_ key: UInt16) -> [UInt8] { items[key] ?? [] }

    mutating func set(_ key: UInt16, _ bytes: [UInt8]) {
        items[key] = bytes
    }

    /// Adds a named file at the next free selector and rewrites the directory:
    /// a big-endian count, then per file its big-endian size, selector, a reserved
    /// 16-bit word and its NUL-padded name (fw_cfg.rst, "File Directory").
    mutating func addFile(_ name: String, _ bytes: [UInt8]) throws(BuildError) {
        let nameBytes = Array(name.utf8)
        guard nameBytes.count < FirmwareConfigTable.fileNameCapacity else { throw .nameTooLong(name) }
        guard !files.contains(where: { $0.name == name }) else { throw .duplicate(name) }
        guard files.count < FirmwareConfigTable.maximumFiles else { throw .tooManyFiles }
        let key = Key.firstFile + UInt16(files.count)
        files.append((name, key))
        items[key] = bytes
        var directory = FirmwareConfigTable.big(UInt64(files.count), 4)
        for file in files {
            directory += FirmwareConfigTable.big(UInt64(item(file.key).count), 4) + FirmwareConfigTable.big(UInt64(file.key), 2) + [0, 0]
            let fileName = Array(file.name.utf8)
            directory += fileName + [UInt8](repeating: 0, count: FirmwareConfigTable.fileNameCapacity - fileName.count)
        }
        items[Key.fileDirectory] = directory
    }

    static func little(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    static func big(_ value: UInt64, _ count: Int) -> [UInt8] {
        little(value, count).reversed()
    }
}

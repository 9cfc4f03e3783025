/// A small encoder of ACPI Machine Language (ACPI 6.5 §20.2), enough for the DSDT vm
/// builds: scopes, devices, names with integers, strings, EISA ids, packages and
/// resource templates, and methods that notify a device. Pure: values in, bytes out; iasl disassembles the result in the tests.
indirect enum AML {
    case scope(String, [AML])
    case device(String, [AML])
    case name(String, AML)
    case integer(UInt64)
    case string(String)
    /// EISAID("PNP0A03"): three letters and four hex digits, compressed into a DWord.
    case eisaID(String)
    case buffer([UInt8])
    /// Package(){...}: a fixed list of data objects (at most 255).
    case package([AML])
    /// Method(NAME, ARGS, NotSerialized) { TERMS }.
    case method(String, arguments: Int, [AML])
    /// Notify(PATH, VALUE).
    case notify(String, UInt64)

    var bytes: [UInt8] {
        switch self {
        case .scope(let path, let terms):
            return [0x10] + AML.package(AML.nameString(path) + terms.flatMap(\.bytes))
        case .device(let path, let terms):
            return [0x5B, 0x82] + AML.package(AML.nameString(path) + terms.flatMap(\.bytes))
        case .name(let path, let value):
            return [0x08] + AML.nameString(path) + value.bytes
        case .integer(let value):
            switch value {
            case 0: return [0x00]  // ZeroOp
            case 1: return [0x01]  // OneOp
            case ...0xFF: return [0x0A, UInt8(value)]
            case ...0xFFFF: return [0x0B] + AML.little(value, 2)
            case ...0xFFFF_FFFF: return [0x0C] + AML.little(value, 4)
            default: return [0x0E] + AML.little(value, 8)
            }
        case .string(let text):
            return [0x0D] + Array(text.utf8) + [0]
        case .eisaID(let id):
            return AML.integer(UInt64(AML.compressedEISAID(id))).bytes
        case .buffer(let contents):
            return [0x11] + AML.package(AML.integer(UInt64(contents.count)).bytes + contents)
        case .package(let elements):
            return [0x12] + AML.package([UInt8(truncatingIfNeeded: elements.count)] + elements.flatMap(\.bytes))
        case .method(let name, let arguments, let terms):
            return [0x14] + AML.package(AML.nameString(name) + [UInt8(arguments & 0x7)] + terms.flatMap(\.bytes))
        case .notify(let path, let value):
            return [0x86] + AML.nameString(path) + AML.integer(value).bytes
        }
    }

    static func little(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    /// PkgLength (§20.2.4) followed by the contents; the length counts its own bytes.
    static func package(_ contents: [UInt8]) -> [UInt8] {
        let count = contents.count
        if count + 1 < 0x40 { return [UInt8(count + 1)] + contents }
        for extra in 1...3 {
            let total = count + 1 + extra
            guard total < 1 << (4 + 8 * extra) else { continue }
            let lead = UInt8(extra << 6) | UInt8(total & 0x0F)
            let rest = (0..<extra).map { UInt8(truncatingIfNeeded: total >> (4 + 8 * $0)) }
            return [lead] + rest + contents
        }
        preconditionFailure("AML package of \(count) bytes")  // our own tables are a few hundred bytes
    }

    /// "\_SB_.PCI0" or "_HID": an optional root, then 4-character segments ('_'-padded).
    static func nameString(_ path: String) -> [UInt8] {
        var rest = Substring(path)
        var prefix: [UInt8] = []
        if rest.hasPrefix("\\") {
            prefix = [0x5C]
            rest = rest.dropFirst()
        }
        let segments = rest.split(separator: ".").map { segment -> [UInt8] in
            let bytes = Array(segment.utf8.prefix(4))
            return bytes + [UInt8](repeating: UInt8(ascii: "_"), count: 4 - bytes.count)
        }
        switch segments.count {
        case 0: return prefix + [0x00]  // NullName
        case 1: return prefix + segments[0]
        case 2: return prefix + [0x2E] + segments[0] + segments[1]  // DualNamePrefix
        default: return prefix + [0x2F, UInt8(segments.count)] + segments.flatMap { $0 }  // MultiNamePrefix
        }
    }

    /// ACPI's compressed EISA id: letters as 5-bit codes (A = 1), then the product number.
    static func compressedEISAID(_ id: String) -> UInt32 {
        let chars = Array(id.utf8)
        precondition(chars.count == 7, "EISA ids are 3 letters and 4 hex digits")  // our literals only
        let letter = { (index: Int) in UInt32(chars[index] - 0x40) & 0x1F }
        let product = UInt32(String(decoding: chars[3...], as: UTF8.self), radix: 16) ?? 0
        let b0 = letter(0) << 2 | letter(1) >> 3
        let b1 = (letter(1) & 0x7) << 5 | letter(2)
        return b0 | b1 << 8 | (product >> 8) << 16 | (product & 0xFF) << 24
    }
}

/// Resource descriptors (ACPI 6.5 §6.4) for a `_CRS` buffer.
enum ACPIResource {
    /// A 16-bit decoded I/O port range (small descriptor, type 8).
    static func io(_ base: UInt16, length: UInt8) -> [UInt8] {
        [0x47, 0x01] + AML.little(UInt64(base), 2) + AML.little(UInt64(base), 2) + [0x01, length]
    }

    /// IRQ without flags (small descriptor, type 4): edge, active high.
    static func irq(_ line: UInt8) -> [UInt8] {
        [0x22] + AML.little(1 << UInt64(line), 2)
    }

    /// One interrupt a device consumes (Extended Interrupt descriptor, large type 9):
    /// edge-triggered, active high, exclusive; `gsi` is the global system interrupt.
    static func edgeInterrupt(gsi: UInt32) -> [UInt8] {
        [0x89] + AML.little(6, 2) + [0x03, 1] + AML.little(UInt64(gsi), 4)  // flags: consumer, edge
    }

    enum Space: UInt8 { case memory = 0, io = 1, bus = 2 }

    /// A Word Address Space descriptor a bridge produces: [minimum, maximum], fixed.
    static func word(_ space: Space, _ minimum: UInt16, _ maximum: UInt16) -> [UInt8] {
        let specific: UInt8 = space == .io ? 0x03 : 0x00  // I/O: the whole ISA and non-ISA range
        return [0x88, 13, 0, space.rawValue, 0x0C, specific] + AML.little(0, 2) + AML.little(UInt64(minimum), 2)
            + AML.little(UInt64(maximum), 2) + AML.little(0, 2) + AML.little(UInt64(maximum - minimum) + 1, 2)
    }

    /// A DWord memory range a bridge produces, read-write, not cacheable.
    static func dwordMemory(_ minimum: UInt32, _ maximum: UInt32) -> [UInt8] {
        [0x87, 23, 0, Space.memory.rawValue, 0x0C, 0x01] + AML.little(0, 4) + AML.little(UInt64(minimum), 4)
            + AML.little(UInt64(maximum), 4) + AML.little(0, 4) + AML.little(UInt64(maximum - minimum) + 1, 4)
    }

    /// A template's end tag, with checksum 0 (meaning: none).
    static let end: [UInt8] = [0x79, 0x00]
}

/// Parsers and checks for the values of options: sizes, counts, names.
/// Each takes the token so that its error points at the value, not the keyword.
enum ConfigValues {
    private static let mebibyte: UInt64 = 1 << 20

    /// `memory` value: a size (see `parseSize`) that is a whole number of MiB
    /// (KVM memory slots are page-granular; MiB keeps the e820 map simple) within
    /// `VMConfig.allowedMemoryBytes`.
    static func memorySize(_ token: ConfigToken) throws(ConfigError) -> UInt64 {
        let range = VMConfig.allowedMemoryBytes
        let rangeText = "from \(formatSize(range.lowerBound)) to \(formatSize(range.upperBound))"
        guard let text = token.text, let size = parseSize(text) else {
            throw ConfigError(location: token.location, message: "expected a size such as 64M after 'memory', found \(token.description)")
        }
        guard let bytes = size else {
            throw ConfigError(location: token.location, message: "memory size '\(text)' is too large; memory must be \(rangeText)")
        }
        guard range.contains(bytes) else {
            throw ConfigError(location: token.location, message: "memory must be \(rangeText), found '\(text)'")
        }
        guard bytes % mebibyte == 0 else {
            throw ConfigError(location: token.location, message: "memory must be a multiple of 1M, found '\(text)'")
        }
        return bytes
    }

    /// A size: decimal digits with an optional K, M or G suffix (any case,
    /// powers of 1024); a bare number is bytes. Returns nil if the text is not a
    /// size at all, and `.some(nil)` if it is one but does not fit in 64 bits.
    static func parseSize(_ text: String) -> UInt64?? {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        switch digits.last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        guard let count = UInt64(digits) else { return .some(nil) }  // more than 64 bits of digits
        let (bytes, overflow) = count.multipliedReportingOverflow(by: multiplier)
        return overflow ? .some(nil) : .some(bytes)
    }

    /// `cpus` value: a decimal integer in `VMConfig.allowedCPUs`.
    static func cpuCount(_ token: ConfigToken) throws(ConfigError) -> Int {
        let range = VMConfig.allowedCPUs
        let expected = "an integer from \(range.lowerBound) to \(range.upperBound)"
        guard let text = token.text, !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ConfigError(location: token.location, message: "expected \(expected) after 'cpus', found \(token.description)")
        }
        // Too many digits for Int is out of range too, not a different error.
        guard let count = Int(text), range.contains(count) else {
            throw ConfigError(location: token.location, message: "cpus must be \(expected), found '\(text)'")
        }
        return count
    }

    /// vmd's rule: 1-64 characters of ASCII letters, digits, '-', '_' and '.',
    /// starting with a letter or digit (so a name is never an option or a path), and
    /// not digits only (so it is never an id).
    static func checkVMName(_ name: String, at token: ConfigToken) throws(ConfigError) {
        let scalars = name.unicodeScalars
        let allowed = scalars.allSatisfy { isASCIIAlphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." }
        let validStart = scalars.first.map(isASCIIAlphanumeric) ?? false
        guard allowed, validStart, scalars.count <= VMConfig.maxNameLength else {
            throw ConfigError(
                location: token.location,
                message: "invalid vm name \"\(name)\": use 1-\(VMConfig.maxNameLength) letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        // vmctl takes a number for an id: a VM named "42" could never be addressed by its name.
        guard !scalars.allSatisfy({ "0"..."9" ~= $0 }) else {
            throw ConfigError(location: token.location,
                              message: "invalid vm name \"\(name)\": a name of digits only reads as a VM id; add a letter")
        }
    }

    private static func isASCIIAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9": return true
        default: return false
        }
    }

    /// The largest whole unit, for messages: 2097152 -> "2M".
    static func formatSize(_ bytes: UInt64) -> String {
        for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)"
    }
}

/// A byte size as vm.conf writes it (`64M`, `2G`, `4096`), for command-line tools;
/// nil if it is not one or does not fit in 64 bits.
public func parseByteSize(_ text: String) -> UInt64? {
    ConfigValues.parseSize(text) ?? nil
}

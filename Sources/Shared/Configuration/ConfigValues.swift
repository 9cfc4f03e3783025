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

    /// A size as scan_scaled(3) reads one, as OpenBSD's vm.conf and vmctl do: a decimal
    /// number, perhaps with a fraction ("1.5G"), and an optional B, K, M, G, T, P or E suffix
    /// (any case, powers of 1024); a bare number is bytes. A fraction of a byte is dropped.
    /// Returns nil if the text is not a size at all, and `.some(nil)` if it is one but does
    /// not fit in 64 bits.
    static func parseSize(_ text: String) -> UInt64?? {
        var number = Substring(text)
        let units: [Character: UInt64] = ["b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60]
        var multiplier: UInt64 = 1
        if let last = number.last, let unit = units[Character(last.lowercased())] {
            multiplier = unit
            number = number.dropLast()
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0], fraction = parts.count > 1 ? parts[1] : ""
        func isDigits(_ part: Substring) -> Bool { part.allSatisfy { $0.isASCII && $0.isNumber } }
        guard !whole.isEmpty, isDigits(whole), isDigits(fraction), parts.count == 1 || !fraction.isEmpty else { return nil }
        guard let count = UInt64(whole) else { return .some(nil) }  // more than 64 bits of digits
        let (bytes, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return .some(nil) }
        // The fraction's share of one unit, truncated. Digits past the 18th are dropped (a
        // byte at most, in exbibytes), so the product stays within 128 bits.
        let digits = fraction.prefix(18)
        guard let numerator = UInt64(digits.isEmpty ? "0" : String(digits)) else { return nil }
        let scale = (0..<digits.count).reduce(UInt64(1)) { product, _ in product * 10 }
        let (part, _) = scale.dividingFullWidth(multiplier.multipliedFullWidth(by: numerator))
        let (total, carried) = bytes.addingReportingOverflow(part)
        return carried ? .some(nil) : .some(total)
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

/// A byte size as vm.conf writes it (`64M`, `1.5G`, `2T`, `4096`), for command-line tools;
/// nil if it is not one or does not fit in 64 bits.
public func parseByteSize(_ text: String) -> UInt64? {
    ConfigValues.parseSize(text) ?? nil
}

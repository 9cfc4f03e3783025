/// An IPv4 network such as 100.64.0.0/10: the global `local prefix` from which
/// vmd carves the host and guest addresses of `local interface`s.
public struct IPv4Prefix: Equatable, Sendable, CustomStringConvertible {
    /// The network address, host byte order (100.64.0.0 is 0x6440_0000).
    /// Its host bits are zero.
    public var address: UInt32
    /// 0...32.
    public var prefixLength: Int

    public init(address: UInt32, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    /// vmd's default, the shared address space of RFC 6598.
    public static let defaultLocal = IPv4Prefix(address: 0x6440_0000, prefixLength: 10)

    /// `100.64.0.0/10`.
    public var description: String {
        let octets = (0..<4).map { String((address >> (24 - 8 * $0)) & 0xFF) }
        return octets.joined(separator: ".") + "/\(prefixLength)"
    }

    /// Parses `a.b.c.d/n`: four decimal octets without leading zeros (which
    /// inet_aton would read as octal) and a length from 0 to 32. Host bits must
    /// be zero, so that `100.64.0.1/10` is caught rather than silently masked.
    static func parse(_ token: ConfigToken, after keyword: String) throws(ConfigError) -> IPv4Prefix {
        let expected = "expected an IPv4 prefix such as 100.64.0.0/10 after '\(keyword)', found \(token.description)"
        guard let text = token.text else {
            throw ConfigError(location: token.location, message: expected)
        }
        let halves = text.split(separator: "/", omittingEmptySubsequences: false)
        let octets = halves[0].split(separator: ".", omittingEmptySubsequences: false)
        guard halves.count == 2, octets.count == 4 else {
            throw ConfigError(location: token.location, message: expected)
        }
        var address: UInt32 = 0
        for octet in octets {
            guard let value = decimal(octet), value <= 255 else {
                throw ConfigError(location: token.location, message: "invalid IPv4 address '\(halves[0])' in prefix '\(text)': each of the four parts must be 0-255 without leading zeros")
            }
            address = address << 8 | UInt32(value)
        }
        guard let length = decimal(halves[1]), length <= 32 else {
            throw ConfigError(location: token.location, message: "invalid prefix length '\(halves[1])' in '\(text)': expected 0 to 32")
        }
        let mask: UInt32 = length == 0 ? 0 : ~0 << (32 - length)
        guard address & ~mask == 0 else {
            let network = IPv4Prefix(address: address & mask, prefixLength: length)
            throw ConfigError(location: token.location, message: "prefix '\(text)' has host bits set; did you mean \(network)?")
        }
        return IPv4Prefix(address: address, prefixLength: length)
    }

    /// A decimal number of at most three digits without a leading zero.
    private static func decimal(_ digits: Substring) -> Int? {
        guard (1...3).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        guard digits == "0" || digits.first != "0" else { return nil }
        return Int(digits)
    }
}

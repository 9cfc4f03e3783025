/// Parsers of `interface` and `local interface` in a vm block (vm.conf(5)):
///
///     [local] interface [name] [{ { interface-option } }]
///     interface-option := "lladdr" xx:xx:xx:xx:xx:xx | "switch" name
///                       | "bandwidth" size ["burst" size] | "packets" count ["burst" count]
///
/// The limits hold for each direction on its own (`RateLimitOption`).
///
/// vmd's `locked lladdr`, `group`, `rdomain` and `up`/`down` are not supported.
extension VMOption {
    @Sendable static func parseInterface(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        try parseInterfaceStatement(&tokens, &block, start: keyword, local: false)
    }

    /// `local interface ...`; `keyword` is `local`.
    @Sendable static func parseLocalInterface(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let next = try tokens.next()
        guard case .word("interface") = next.kind else {
            throw ConfigError(location: next.location, message: "expected 'interface' after 'local' in vm block, found \(next.description)")
        }
        try parseInterfaceStatement(&tokens, &block, start: keyword, local: true)
    }

    private static func parseInterfaceStatement(
        _ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, start: ConfigToken, local: Bool
    ) throws(ConfigError) {
        guard block.interfaces.count < InterfaceConfig.maximumPerVM else {
            throw ConfigError(location: start.location, message: "too many interfaces; at most \(InterfaceConfig.maximumPerVM) per vm")
        }
        var interface = InterfaceConfig(local: local, location: start.location)
        let afterKeyword = try tokens.peek()
        if case .word(let word) = afterKeyword.kind, ["lladdr", "switch", "bandwidth", "packets"].contains(word) {
            throw ConfigError(location: afterKeyword.location, message: "'\(word)' goes inside the interface's block: interface [name] { \(word) ... }")
        }
        if let name = afterKeyword.text {
            _ = try tokens.next()
            try checkInterfaceName(name, at: afterKeyword)
            if let other = block.interfaces.first(where: { $0.name == name }) {
                throw ConfigError(location: afterKeyword.location, message: "interface \"\(name)\" used twice in this vm; first at line \(other.location.line)")
            }
            interface.name = name
        }
        if try tokens.peek().kind == .openBrace {
            try parseInterfaceBlock(&tokens, &interface, open: try tokens.next())
        }
        block.interfaces.append(interface)
    }

    /// Linux's rule for interface names (dev_valid_name): 1-15 bytes, not "."
    /// or "..", no '/', ':' or whitespace. Kept to printable ASCII here.
    private static func checkInterfaceName(_ name: String, at token: ConfigToken) throws(ConfigError) {
        let printable = name.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "/" && $0 != ":" }
        guard printable, !name.isEmpty, name != ".", name != "..", name.utf8.count <= InterfaceConfig.maxNameLength else {
            throw ConfigError(
                location: token.location,
                message: "invalid interface name \"\(name)\": use 1-\(InterfaceConfig.maxNameLength) printable ASCII characters other than '/' and ':', such as tap3")
        }
    }

    private static func parseInterfaceBlock(
        _ tokens: inout ConfigTokenStream, _ interface: inout InterfaceConfig, open: ConfigToken
    ) throws(ConfigError) {
        try ConfigBraceBlock.parse(&tokens, open: open, of: "interface", keywords: ["lladdr", "switch", "bandwidth", "packets"]) {
            (keyword, word, tokens) throws(ConfigError) in
            switch word {
            case "lladdr":
                interface.lladdr = try parseLLAddr(try tokens.next())
            case "switch":
                let value = try tokens.next()
                guard let name = value.text, !name.isEmpty else {
                    throw ConfigError(location: value.location, message: "expected a switch name after 'switch', found \(value.description)")
                }
                interface.switchName = name
            default:
                try RateLimitOption.parse(keyword, operations: "packets", &tokens, into: &interface.rateLimit)
            }
        }
    }

    /// Six octets of one or two hex digits separated by ':' (as ether_aton(3)),
    /// unicast (bit 0 of the first octet clear) and not all zero.
    static func parseLLAddr(_ token: ConfigToken) throws(ConfigError) -> [UInt8] {
        guard let text = token.text else {
            throw ConfigError(location: token.location, message: "expected a MAC address such as fe:e1:ba:d0:00:01 after 'lladdr', found \(token.description)")
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...2).contains(part.count), part.allSatisfy(\.isHexDigit), let byte = UInt8(part, radix: 16) else { break }
            bytes.append(byte)
        }
        guard parts.count == 6, bytes.count == 6 else {
            throw ConfigError(location: token.location, message: "invalid MAC address '\(text)': expected six hex octets such as fe:e1:ba:d0:00:01")
        }
        guard bytes[0] & 1 == 0 else {
            throw ConfigError(location: token.location, message: "MAC address '\(text)' is a multicast address (first octet odd); a NIC needs a unicast one")
        }
        guard bytes.contains(where: { $0 != 0 }) else {
            throw ConfigError(location: token.location, message: "MAC address '\(text)' is all zero; leave lladdr out to have one generated")
        }
        return bytes
    }
}

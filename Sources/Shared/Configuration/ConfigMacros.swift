/// The macros of a configuration: `name = value` lines at top level, used as
/// `$name` (vm.conf(5) "MACROS").
///
/// As in vmd (`symset` replaces an existing symbol), a later definition of the
/// same name overrides the earlier one from that point on; uses above it keep
/// the earlier value because expansion happens as the file is read.
struct ConfigMacros: Equatable, Sendable {
    private var values: [String: String] = [:]

    func value(of name: String) -> String? { values[name] }

    mutating func define(_ name: String, as value: String) { values[name] = value }

    /// Parses the rest of `name = value` after the name (the `=` has been
    /// peeked, not consumed) and defines the macro in the stream's table.
    /// The value may itself be `$other`, expanded now.
    static func parseDefinition(nameToken: ConfigToken, name: String, _ tokens: inout ConfigTokenStream) throws(ConfigError) {
        try checkName(name, at: nameToken)
        _ = try tokens.next()  // '='
        let value = try tokens.next()
        guard let text = value.text else {
            throw ConfigError(location: value.location, message: "expected a value after '\(name) =', found \(value.description)")
        }
        tokens.macros.define(name, as: text)
        try tokens.expectEndOfStatement(after: "the value of macro '\(name)'")
    }

    /// Letters, digits and '_' (vm.conf(5)), and not a keyword: vmd's lexer
    /// would read a keyword as the keyword, so it refuses such names, and so do we.
    static func checkName(_ name: String, at token: ConfigToken) throws(ConfigError) {
        guard !name.isEmpty, name.unicodeScalars.allSatisfy(ConfigLexer.isMacroNameScalar) else {
            throw ConfigError(location: token.location, message: "invalid macro name '\(name)': use letters, digits and '_'")
        }
        guard !reservedWords.contains(name) else {
            throw ConfigError(location: token.location, message: "'\(name)' is a keyword and cannot be a macro name")
        }
    }

    /// Every keyword of the grammar.
    static let reservedWords: Set<String> = Set(VMOption.all.map(\.name)).union([
        "vm", "include", "local", "prefix", "format", "readonly", "lladdr", "switch", "locked", "metrics", "listen", "on",
        // The words that follow a keyword: `boot device disk`, `cache none|writeback`, `format raw|qcow2`.
        "device", "cache", "none", "writeback", "raw", "qcow2",
    ]).union(RateLimitOption.words).union(["limit", "io"])
}

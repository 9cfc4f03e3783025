/// The lexer plus one token of lookahead, macro expansion, and the helpers
/// every grammar rule shares. Option parsers receive it `inout` so that
/// multi-word options (`disk "x" format qcow2`, `interface { ... }`) can read
/// as far as they need.
struct ConfigTokenStream {
    private var lexer: ConfigLexer
    private var lookahead: ConfigToken?
    /// Macros defined so far. The parser moves this table into the stream of an
    /// included file and back, so definitions are global and in file order.
    var macros = ConfigMacros()

    init(text: String, file: String) {
        lexer = ConfigLexer(text: text, file: file)
    }

    /// The file this stream reads, for resolving `include` paths.
    var file: String { lexer.file }

    mutating func next() throws(ConfigError) -> ConfigToken {
        if let token = lookahead {
            lookahead = nil
            return token
        }
        return try expanded(lexer.next())
    }

    mutating func peek() throws(ConfigError) -> ConfigToken {
        if let token = lookahead { return token }
        let token = try expanded(lexer.next())
        lookahead = token
        return token
    }

    /// `$name` becomes a string token with the macro's value at the `$`, so a
    /// macro can stand wherever a word or string value can, and never for a
    /// keyword or a brace. Expanded when read, so only earlier definitions count.
    private func expanded(_ token: ConfigToken) throws(ConfigError) -> ConfigToken {
        guard case .macro(let name) = token.kind else { return token }
        guard let value = macros.value(of: name) else {
            throw ConfigError(location: token.location, message: "undefined macro '$\(name)'; define it above with \(name) = value")
        }
        return ConfigToken(kind: .string(value), location: token.location, macro: name)
    }

    /// A statement ends at a newline or `;` (consumed), or just before a `}` or
    /// end of file (left for the caller, which closes the block or reports it
    /// unclosed). Anything else means extra words, e.g. `memory 64M 32M`.
    mutating func expectEndOfStatement(after what: String) throws(ConfigError) {
        let token = try peek()
        switch token.kind {
        case .newline, .semicolon:
            _ = try next()
        case .closeBrace, .endOfFile:
            break
        default:
            throw ConfigError(location: token.location, message: "expected end of line or ';' after \(what), found \(token.description)")
        }
    }
}

/// The lexer plus one token of lookahead, and the helpers every grammar rule
/// shares. Option parsers receive it `inout` so that multi-word options
/// (`disk "x" format qcow2`, `interface { ... }`) can read as far as they need.
struct ConfigTokenStream {
    private var lexer: ConfigLexer
    private var lookahead: ConfigToken?

    init(text: String, file: String) {
        lexer = ConfigLexer(text: text, file: file)
    }

    mutating func next() throws(ConfigError) -> ConfigToken {
        if let token = lookahead {
            lookahead = nil
            return token
        }
        return try lexer.next()
    }

    mutating func peek() throws(ConfigError) -> ConfigToken {
        if let token = lookahead { return token }
        let token = try lexer.next()
        lookahead = token
        return token
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

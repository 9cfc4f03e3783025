/// The `{ ... }` of a disk or an interface in a vm block: statements separated by newlines
/// or `;`, each keyword at most once, up to the closing brace.
enum ConfigBraceBlock {
    /// Parses from after `open` to its `}`. `statement` reads the arguments of one
    /// keyword of `keywords` (the keyword itself is read here, the statement end after it).
    static func parse(
        _ tokens: inout ConfigTokenStream, open: ConfigToken, of owner: String, keywords: [String],
        _ statement: (_ keyword: ConfigToken, _ word: String, _ tokens: inout ConfigTokenStream) throws(ConfigError) -> Void
    ) throws(ConfigError) {
        var seen: [String: ConfigLocation] = [:]
        while true {
            let token = try tokens.next()
            switch token.kind {
            case .newline, .semicolon:
                continue
            case .closeBrace:
                return
            case .endOfFile:
                throw ConfigError(location: open.location, message: "'{' of \(owner) is never closed: expected '}' before end of file")
            case .word(let word) where keywords.contains(word):
                if let first = seen[word] {
                    throw ConfigError(location: token.location, message: "'\(word)' given twice for this \(owner); first at line \(first.line)")
                }
                seen[word] = token.location
                try statement(token, word, &tokens)
                try tokens.expectEndOfStatement(after: "'\(word)'")
            default:
                let expected = keywords.map { "'\($0)'" }.joined(separator: ", ")
                var message = "expected \(expected) or '}' in \(owner) block, found \(token.description)"
                // A vm option here usually means the block's '}' is missing.
                if case .word(let word) = token.kind, VMOption.byName[word] != nil {
                    message += " (missing '}' for the \(owner) block opened at line \(open.location.line)?)"
                }
                throw ConfigError(location: token.location, message: message)
            }
        }
    }
}

/// One lexical token of vm.conf together with where it starts.
struct ConfigToken: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        /// A bare word: keywords, numbers, sizes, unquoted names and paths.
        case word(String)
        /// A double-quoted string, escapes already removed.
        case string(String)
        case openBrace
        case closeBrace
        case semicolon
        /// `=` of a macro definition `name = value`.
        case equals
        /// `$name` as the lexer sees it; `ConfigTokenStream` replaces it by the
        /// macro's value, so the grammar rules never meet this kind.
        case macro(String)
        /// Newlines end statements, so the lexer reports them instead of skipping them.
        case newline
        case endOfFile
    }

    var kind: Kind
    var location: ConfigLocation
    /// The macro this token was expanded from (`$name` at `location`), for messages.
    var macro: String? = nil

    /// The text of a word or string: the places where vmd takes either form
    /// (names, paths, sizes) use this.
    var text: String? {
        switch kind {
        case .word(let s), .string(let s): return s
        default: return nil
        }
    }

    /// How the token is named in "found ..." parts of error messages.
    var description: String {
        if let macro, let value = text {
            return "$\(macro) (\"\(Self.abbreviated(value))\")"
        }
        switch kind {
        case .word(let s): return "'\(Self.abbreviated(s))'"
        case .string(let s): return "string \"\(Self.abbreviated(s))\""
        case .openBrace: return "'{'"
        case .closeBrace: return "'}'"
        case .semicolon: return "';'"
        case .equals: return "'='"
        case .macro(let name): return "'$\(name)'"
        case .newline: return "end of line"
        case .endOfFile: return "end of file"
        }
    }

    /// Keeps one-line error messages one line long even for a long cmdline.
    private static func abbreviated(_ s: String) -> String {
        s.unicodeScalars.count <= 40 ? s : String(s.prefix(37)) + "..."
    }
}

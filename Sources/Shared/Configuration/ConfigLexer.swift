/// Splits vm.conf text into `ConfigToken`s on demand.
///
/// Lazy on purpose: the parser pulls one token at a time, so errors come out in
/// file order. `$name` comes out as a `.macro` token that `ConfigTokenStream`
/// expands; an `include` gets a lexer of its own (see `ConfigParser`).
///
/// Columns count Unicode scalars, 1-based; a tab is one column (see `ConfigLocation`).
struct ConfigLexer {
    let file: String
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var line = 1
    private var column = 1

    init(text: String, file: String) {
        self.file = file
        self.scalars = Array(text.unicodeScalars)
    }

    mutating func next() throws(ConfigError) -> ConfigToken {
        skipBlanksAndComments()
        let start = here
        guard let c = peek() else { return ConfigToken(kind: .endOfFile, location: start) }
        switch c {
        case "\n":
            advance()
            return ConfigToken(kind: .newline, location: start)
        case "{":
            advance()
            return ConfigToken(kind: .openBrace, location: start)
        case "}":
            advance()
            return ConfigToken(kind: .closeBrace, location: start)
        case ";":
            advance()
            return ConfigToken(kind: .semicolon, location: start)
        case "=":
            advance()
            return ConfigToken(kind: .equals, location: start)
        case "\"":
            return try lexString()
        case "$":
            return try lexMacroReference()
        default:
            guard Self.isWordScalar(c) else {
                throw ConfigError(location: start, message: "unexpected character \(Self.show(c)); put text with it in double quotes")
            }
            var word = ""
            while let w = peek(), Self.isWordScalar(w) {
                word.unicodeScalars.append(w)
                advance()
            }
            return ConfigToken(kind: .word(word), location: start)
        }
    }

    // MARK: - Pieces

    private var here: ConfigLocation { ConfigLocation(file: file, line: line, column: column) }

    private func peek() -> Unicode.Scalar? {
        index < scalars.count ? scalars[index] : nil
    }

    private mutating func advance() {
        guard index < scalars.count else { return }
        if scalars[index] == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
        index += 1
    }

    /// Spaces, tabs, carriage returns (so CRLF files work) and `#` comments.
    /// The newline ending a comment is left for `next()` because it ends a statement.
    private mutating func skipBlanksAndComments() {
        while let c = peek() {
            if c == " " || c == "\t" || c == "\r" {
                advance()
            } else if c == "#" {
                while let d = peek(), d != "\n" { advance() }
            } else {
                return
            }
        }
    }

    /// A double-quoted string. Only `\"` and `\\` are escapes; anything else
    /// after a backslash is an error rather than a silent literal, so that a
    /// cmdline never differs from what its author meant.
    private mutating func lexString() throws(ConfigError) -> ConfigToken {
        let open = here
        advance()  // the opening quote
        var value = ""
        while true {
            guard let c = peek() else {
                throw ConfigError(location: open, message: "unterminated string: no closing '\"' before end of file")
            }
            if c == "\n" {
                throw ConfigError(location: open, message: "unterminated string: no closing '\"' before end of line")
            }
            if c == "\"" {
                advance()
                return ConfigToken(kind: .string(value), location: open)
            }
            if c == "\\" {
                let backslash = here
                advance()
                guard let escaped = peek() else {
                    throw ConfigError(location: open, message: "unterminated string: no closing '\"' before end of file")
                }
                if escaped == "\n" {
                    throw ConfigError(location: open, message: "unterminated string: no closing '\"' before end of line")
                }
                guard escaped == "\"" || escaped == "\\" else {
                    throw ConfigError(location: backslash, message: "unknown escape '\\\(escaped)' in string; only \\\" and \\\\ are allowed")
                }
                value.unicodeScalars.append(escaped)
                advance()
                continue
            }
            // A NUL would cut a path short where it is opened (the file opened would not be
            // the file written); other control characters have no place in a path or cmdline.
            if c.value < 0x20 && c != "\t" || c.value == 0x7F {
                throw ConfigError(location: here, message: "control character \(Self.show(c)) in string")
            }
            value.unicodeScalars.append(c)
            advance()
        }
    }

    /// `$name`. Unlike vmd, which splices the text back into its input, a
    /// reference here is a whole value: `$dir/k.elf` is an error rather than a
    /// concatenation, so a macro can never turn into keywords or braces.
    private mutating func lexMacroReference() throws(ConfigError) -> ConfigToken {
        let dollar = here
        advance()
        var name = ""
        while let c = peek(), Self.isMacroNameScalar(c) {
            name.unicodeScalars.append(c)
            advance()
        }
        guard !name.isEmpty else {
            throw ConfigError(location: dollar, message: "expected a macro name (letters, digits, '_') after '$'")
        }
        if let c = peek(), Self.isWordScalar(c) || c == "$" || c == "\"" {
            throw ConfigError(
                location: here,
                message: "unexpected \(Self.show(c)) right after '$\(name)'; a macro must be a whole value (define the whole text as a macro)")
        }
        return ConfigToken(kind: .macro(name), location: dollar)
    }

    /// Macro names: ASCII letters, digits and '_' (vm.conf(5)).
    static func isMacroNameScalar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "_": return true
        default: return false
        }
    }

    /// ASCII letters, digits and the punctuation that appears in sizes, paths and
    /// names. `$` and `=` are left out: they are macro syntax.
    static func isWordScalar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".", "/", ":", "+", ",", "@", "%":
            return true
        default:
            return false
        }
    }

    /// Shows a character in a message; invisible ones by code point.
    private static func show(_ c: Unicode.Scalar) -> String {
        if c.properties.generalCategory == .control || c.properties.isWhitespace {
            let hex = String(c.value, radix: 16, uppercase: true)
            return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        return "'\(c)'"
    }
}

/// Parses vm.conf-style text into a `ConfigFile`.
///
/// Grammar (statements end at a newline or `;`; `#` starts a comment):
///
///     file     := { vm-block | <empty statement> }
///     vm-block := "vm" name "{" { option } "}"        name: word or "string"
///     option   := see `VMOption.all`
///
/// Parsing is pure: no file system access, no defaults from the environment.
/// The first error stops parsing; it is reported at the offending token.
public enum ConfigParser {
    public static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigFile {
        var tokens = ConfigTokenStream(text: text, file: file)
        var vms: [VMConfig] = []
        var namesSeen: [String: ConfigLocation] = [:]
        while true {
            let token = try tokens.next()
            switch token.kind {
            case .endOfFile:
                return ConfigFile(vms: vms)
            case .newline, .semicolon:
                continue
            case .word("vm"):
                vms.append(try parseVM(keyword: token, &tokens, namesSeen: &namesSeen))
            default:
                throw ConfigError(location: token.location, message: "expected 'vm', found \(token.description)")
            }
        }
    }

    /// Reads and parses a file. Throws `ConfigFileReadError` if it cannot be
    /// read and `ConfigError` if it is not valid UTF-8 or not a valid config.
    public static func load(path: String) throws -> ConfigFile {
        let bytes = try ConfigFileReader.readAll(path: path)
        let text = try ConfigFileReader.decodeUTF8(bytes, file: path)
        return try parse(text, file: path)
    }

    // MARK: - vm blocks

    private static func parseVM(
        keyword: ConfigToken,
        _ tokens: inout ConfigTokenStream,
        namesSeen: inout [String: ConfigLocation]
    ) throws(ConfigError) -> VMConfig {
        let nameToken = try tokens.next()
        guard let name = nameToken.text else {
            throw ConfigError(location: nameToken.location, message: "expected a vm name after 'vm', found \(nameToken.description)")
        }
        try ConfigValues.checkVMName(name, at: nameToken)
        // Checked here rather than after the block so errors stay in file order.
        if let first = namesSeen[name] {
            throw ConfigError(location: nameToken.location, message: "vm \"\(name)\" defined twice; first at line \(first.line)")
        }
        namesSeen[name] = nameToken.location

        // As in vmd, the brace must be on the same line as the name.
        let open = try tokens.next()
        guard open.kind == .openBrace else {
            throw ConfigError(location: open.location, message: "expected '{' after vm name \"\(name)\", found \(open.description)")
        }

        var block = VMBlockBuilder(name: name, location: keyword.location)
        blockLoop: while true {
            let token = try tokens.next()
            switch token.kind {
            case .newline, .semicolon:
                continue
            case .closeBrace:
                break blockLoop
            case .endOfFile:
                throw ConfigError(location: open.location, message: "'{' of vm \"\(name)\" is never closed: expected '}' before end of file")
            case .word(let word):
                try parseOption(word, keyword: token, &tokens, &block, blockOpen: open)
            default:
                throw ConfigError(location: token.location, message: "expected an option name in vm block, found \(token.description)")
            }
        }
        try tokens.expectEndOfStatement(after: "'}'")
        return try block.build()
    }

    private static func parseOption(
        _ word: String,
        keyword: ConfigToken,
        _ tokens: inout ConfigTokenStream,
        _ block: inout VMBlockBuilder,
        blockOpen: ConfigToken
    ) throws(ConfigError) {
        guard let option = VMOption.byName[word] else {
            var message = "unknown option '\(word)' in vm block; expected one of \(VMOption.namesForMessages)"
            // The usual cause of a `vm` inside a block is a forgotten `}` above it.
            if word == "vm" {
                message += " (missing '}' for the block opened at line \(blockOpen.location.line)?)"
            }
            throw ConfigError(location: keyword.location, message: message)
        }
        if !option.repeatable, let first = block.optionsSeen[word] {
            throw ConfigError(location: keyword.location, message: "'\(word)' given twice; first at line \(first.line)")
        }
        if block.optionsSeen[word] == nil {
            block.optionsSeen[word] = keyword.location
        }
        try option.parse(&tokens, &block, keyword)
        try tokens.expectEndOfStatement(after: "'\(word)' option")
    }
}

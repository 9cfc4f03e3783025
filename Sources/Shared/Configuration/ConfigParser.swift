/// Parses vm.conf-style text into a `ConfigFile`.
///
/// Grammar (statements end at a newline or `;`; `#` starts a comment):
///
///     file      := { statement }
///     statement := macro-def | include | local-prefix | vm-block | <empty>
///     macro-def := name "=" value                     then $name is value
///     include   := "include" path                     path: word or "string"
///     local-prefix := "local" "prefix" a.b.c.d/n      default 100.64.0.0/10
///     metrics   := "metrics" "listen" "on" address    "HOST:PORT" or "/socket/path"
///     vm-block  := "vm" name "{" { option } "}"       name: word or "string"
///     option    := see `VMOption.all`
///
/// Parsing does no file system access except through the reader given for
/// `include`. The first error stops parsing; it is reported at the offending
/// token, in the file that contains it.
public enum ConfigParser {
    /// Reads the file an `include` names (the path already resolved against
    /// the including file's directory). Tests pass a dictionary lookup.
    public typealias FileReader = (_ path: String) throws(ConfigFileReadError) -> [UInt8]

    /// Parses text that has no `include` (an `include` is an error at its
    /// path, since there is nothing to read it with).
    public static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigFile {
        try parse(text, file: file, reader: nil)
    }

    /// Parses text, reading included files with `readFile`. A file that cannot
    /// be read is a `ConfigError` at the path of its `include`.
    public static func parse(_ text: String, file: String, readingIncludesWith readFile: @escaping FileReader) throws(ConfigError) -> ConfigFile {
        try parse(text, file: file, reader: readFile)
    }

    /// Reads and parses a file, and the files it includes, from the file
    /// system. Throws `ConfigFileReadError` if `path` itself cannot be read and
    /// `ConfigError` if it or an included file is not valid UTF-8, cannot be
    /// read, or is not a valid config.
    public static func load(path: String) throws -> ConfigFile {
        let bytes = try ConfigFileReader.readAll(path: path)
        let text = try ConfigFileReader.decodeUTF8(bytes, file: path)
        return try parse(text, file: path, reader: { (path) throws(ConfigFileReadError) in try ConfigFileReader.readAll(path: path) })
    }

    // MARK: - Top level

    /// What the statements of all files add up to, and the chain of includes.
    private struct State {
        let reader: FileReader?
        var vms: [VMConfig] = []
        var namesSeen: [String: ConfigLocation] = [:]
        var localPrefix: (prefix: IPv4Prefix, location: ConfigLocation)?
        var metrics: (address: String, location: ConfigLocation)?
        /// The files being read, outermost first: (loop key, name as shown).
        var includeStack: [(key: String, file: String)]
    }

    private static func parse(_ text: String, file: String, reader: FileReader?) throws(ConfigError) -> ConfigFile {
        var tokens = ConfigTokenStream(text: text, file: file)
        var state = State(reader: reader, includeStack: [(ConfigIncludePath.loopKey(file), file)])
        try parseStatements(&tokens, &state)
        return ConfigFile(vms: state.vms, localPrefix: state.localPrefix?.prefix ?? .defaultLocal, metricsAddress: state.metrics?.address)
    }

    /// The statements of one file, to its end.
    private static func parseStatements(_ tokens: inout ConfigTokenStream, _ state: inout State) throws(ConfigError) {
        while true {
            let token = try tokens.next()
            switch token.kind {
            case .endOfFile:
                return
            case .newline, .semicolon:
                continue
            case .word(let word) where try tokens.peek().kind == .equals:
                try ConfigMacros.parseDefinition(nameToken: token, name: word, &tokens)
            case .word("vm"):
                state.vms.append(try parseVM(keyword: token, &tokens, namesSeen: &state.namesSeen))
            case .word("include"):
                try parseInclude(&tokens, &state)
            case .word("local"):
                try parseLocalPrefix(keyword: token, &tokens, &state)
            case .word("metrics"):
                try parseMetrics(keyword: token, &tokens, &state)
            default:
                throw ConfigError(location: token.location, message: "expected 'vm', 'include', 'local prefix', 'metrics listen on' or a macro definition (name = value), found \(token.description)")
            }
        }
    }

    /// `include path`: the statements of another file, here. Its macros stay
    /// defined afterwards, as in vmd; a block cannot span files.
    private static func parseInclude(_ tokens: inout ConfigTokenStream, _ state: inout State) throws(ConfigError) {
        let pathToken = try tokens.next()
        guard let path = pathToken.text, !path.isEmpty else {
            throw ConfigError(location: pathToken.location, message: "expected a file path after 'include', found \(pathToken.description)")
        }
        try tokens.expectEndOfStatement(after: "the include path")
        let file = ConfigIncludePath.resolve(path, relativeTo: tokens.file)
        let key = ConfigIncludePath.loopKey(file)
        if state.includeStack.contains(where: { $0.key == key }) {
            let chain = (state.includeStack.map(\.file) + [file]).joined(separator: " -> ")
            throw ConfigError(location: pathToken.location, message: "include loop: \"\(file)\" is already being read (\(chain))")
        }
        guard state.includeStack.count < ConfigIncludePath.maximumDepth else {
            throw ConfigError(location: pathToken.location, message: "includes nested more than \(ConfigIncludePath.maximumDepth) deep; is there a loop through a link?")
        }
        guard let reader = state.reader else {
            throw ConfigError(location: pathToken.location, message: "cannot include \"\(file)\": this text is parsed without a file reader")
        }
        let bytes: [UInt8]
        do {
            bytes = try reader(file)
        } catch {
            throw ConfigError(location: pathToken.location, message: error.description)  // "cannot read <path>: <strerror>"
        }
        let text = try ConfigFileReader.decodeUTF8(bytes, file: file)
        var included = ConfigTokenStream(text: text, file: file)
        included.macros = tokens.macros
        state.includeStack.append((key, file))
        try parseStatements(&included, &state)
        state.includeStack.removeLast()
        tokens.macros = included.macros
    }

    /// `local prefix a.b.c.d/n` (global). vmd's `local inet6 prefix` is not supported.
    private static func parseLocalPrefix(keyword: ConfigToken, _ tokens: inout ConfigTokenStream, _ state: inout State) throws(ConfigError) {
        let next = try tokens.next()
        guard case .word("prefix") = next.kind else {
            var message = "expected 'prefix' after 'local' at top level, found \(next.description)"
            if case .word("inet6") = next.kind { message += " (IPv6 local prefixes are not supported)" }
            if case .word("interface") = next.kind { message += " ('local interface' goes inside a vm block)" }
            throw ConfigError(location: next.location, message: message)
        }
        if let first = state.localPrefix?.location {
            throw ConfigError(location: keyword.location, message: "'local prefix' given twice; first at \(reference(to: first, from: keyword.location))")
        }
        let prefix = try IPv4Prefix.parse(try tokens.next(), after: "local prefix")
        state.localPrefix = (prefix, keyword.location)
        try tokens.expectEndOfStatement(after: "'local prefix'")
    }

    /// `metrics listen on "ADDR"` (global): `HOST:PORT` (a numeric IPv4 address, `[IPv6]`, or a
    /// name) or the absolute path of a unix socket.
    private static func parseMetrics(keyword: ConfigToken, _ tokens: inout ConfigTokenStream, _ state: inout State) throws(ConfigError) {
        for word in ["listen", "on"] {
            let next = try tokens.next()
            guard case .word(word) = next.kind else {
                throw ConfigError(location: next.location, message: "expected '\(word)' in 'metrics listen on ADDRESS', found \(next.description)")
            }
        }
        if let first = state.metrics?.location {
            throw ConfigError(location: keyword.location, message: "'metrics listen on' given twice; first at \(reference(to: first, from: keyword.location))")
        }
        let token = try tokens.next()
        guard let address = token.text, Self.isListenAddress(address) else {
            throw ConfigError(location: token.location, message: "expected \"HOST:PORT\" or an absolute socket path after 'metrics listen on', found \(token.description)")
        }
        state.metrics = (address, keyword.location)
        try tokens.expectEndOfStatement(after: "the metrics address")
    }

    /// `HOST:PORT` with a port from 1 to 65535, or an absolute path that fits a sun_path.
    static func isListenAddress(_ text: String) -> Bool {
        if text.hasPrefix("/") { return text.utf8.count < 108 }
        guard !text.contains("/"), let colon = text.lastIndex(of: ":"),
              let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return false }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return !host.isEmpty && host.utf8.count < 256 && !host.contains(where: { $0 == "[" || $0 == "]" || $0.isWhitespace })
    }

    /// "line 3", or "other.conf:3" when the earlier place is in another file.
    private static func reference(to first: ConfigLocation, from here: ConfigLocation) -> String {
        first.file == here.file ? "line \(first.line)" : "\(first.file):\(first.line)"
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
            throw ConfigError(location: nameToken.location, message: "vm \"\(name)\" defined twice; first at \(reference(to: first, from: nameToken.location))")
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
        // `memory limit` is an option of its own beside `memory` (`cpu limit` is the only `cpu`).
        var key = word
        if word == "memory" || word == "cpu", try tokens.peek().kind == .word("limit") { key = "\(word) limit" }
        if !option.repeatable, let first = block.optionsSeen[key] {
            throw ConfigError(location: keyword.location, message: "'\(key)' given twice; first at line \(first.line)")
        }
        if block.optionsSeen[key] == nil {
            block.optionsSeen[key] = keyword.location
        }
        try option.parse(&tokens, &block, keyword)
        try tokens.expectEndOfStatement(after: "'\(word)' option")
    }
}

import Glibc

/// Reads a configuration file for `ConfigParser.load`, keeping errno on failure
/// (Foundation's errors lose or reword it).
enum ConfigFileReader {
    static func readAll(path: String) throws(ConfigFileReadError) -> [UInt8] {
        do {
            return try FileDescriptor.open(path, flags: O_RDONLY).readToEnd()
        } catch let error as SystemError {
            throw ConfigFileReadError(path: path, errno: error.errno)  // e.g. ENOENT, EISDIR
        } catch {
            preconditionFailure("FileDescriptor throws SystemError only")
        }
    }

    /// Decodes UTF-8, reporting the first invalid byte at its line and column
    /// (columns in Unicode scalars, like the lexer) instead of silently
    /// replacing it, which could change a path or cmdline unnoticed.
    static func decodeUTF8(_ bytes: [UInt8], file: String) throws(ConfigError) -> String {
        var line = 1
        var column = 1
        var text = ""
        text.unicodeScalars.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                text.unicodeScalars.append(scalar)
                if scalar == "\n" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            case .error:
                throw ConfigError(location: ConfigLocation(file: file, line: line, column: column), message: "file is not valid UTF-8")
            case .emptyInput:
                return text
            }
        }
    }
}

import Glibc
import LinuxSystem

/// Reads a configuration file for `ConfigParser.load`, keeping errno on failure
/// (Foundation's errors lose or reword it).
enum ConfigFileReader {
    /// Far more than any vm.conf, far less than memory.
    public static let maximumBytes = 1 << 20

    /// A regular file of at most `maximumBytes`: a FIFO, a device or a huge file is an error, not a hang.
    static func readAll(path: String) throws(ConfigFileReadError) -> [UInt8] {
        do {
            return try RegularFile.read(path, limit: maximumBytes)
        } catch {
            switch error {
            case .system(let failure): throw ConfigFileReadError(path: path, errno: failure.errno)  // e.g. ENOENT
            case .notRegular(let kind): throw ConfigFileReadError(path: path, errno: kind == "a directory" ? EISDIR : EINVAL, problem: "\(error)")
            case .tooLarge: throw ConfigFileReadError(path: path, errno: EFBIG, problem: "\(error)")
            }
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

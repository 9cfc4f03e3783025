#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a configuration file for `ConfigParser.load`. Plain POSIX calls so a
/// failure keeps its errno (Foundation's errors lose or reword it).
enum ConfigFileReader {
    static func readAll(path: String) throws(ConfigFileReadError) -> [UInt8] {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw ConfigFileReadError(path: path, errno: errno) }
        defer { _ = close(fd) }

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                retryingEINTR { read(fd, buffer.baseAddress, buffer.count) }
            }
            if count < 0 { throw ConfigFileReadError(path: path, errno: errno) }  // e.g. EISDIR
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
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

    private static func retryingEINTR<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A configuration file that could not be read at all (as opposed to one that
/// was read and is malformed, which is a `ConfigError`). Carries errno so the
/// caller can tell ENOENT from EACCES without parsing text.
public struct ConfigFileReadError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var errno: Int32

    public init(path: String, errno: Int32) {
        self.path = path
        self.errno = errno
    }

    /// For example `cannot read /etc/vm.conf: No such file or directory`.
    public var description: String {
        "cannot read \(path): \(String(cString: strerror(errno)))"
    }
}

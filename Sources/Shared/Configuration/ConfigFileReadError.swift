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
    /// Said instead of errno's text where it is not a failed call ("is a FIFO, ...").
    public var problem: String?

    public init(path: String, errno: Int32, problem: String? = nil) {
        self.path = path
        self.errno = errno
        self.problem = problem
    }

    /// For example `cannot read /etc/vm.conf: No such file or directory`.
    public var description: String {
        "cannot read \(path): \(problem ?? String(cString: strerror(errno)))"
    }
}

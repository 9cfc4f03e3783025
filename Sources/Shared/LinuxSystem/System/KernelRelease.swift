import Glibc

/// The running kernel's release (uname -r), for what depends on its version.
public struct KernelRelease: Sendable, CustomStringConvertible {
    public let description: String
    /// The first two numbers of the release ("6.18.44-fc" is 6, 18); nil if it has none.
    public let version: (major: Int, minor: Int)?

    public init(_ release: String) {
        description = release
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        version = numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    public static var current: KernelRelease {
        var name = utsname()
        uname(&name)
        // SAFETY: release is a NUL-terminated array inside `name`, read up to its NUL.
        return KernelRelease(withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
    }

    /// Whether this is major.minor or later (false when the release has no version).
    public func isAtLeast(_ major: Int, _ minor: Int) -> Bool {
        guard let version else { return false }
        return (version.major, version.minor) >= (major, minor)
    }
}

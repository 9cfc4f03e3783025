import Glibc

/// What of the sandbox this process got (issue 13). Every hardening step a kernel may
/// lack degrades to the best it offers and is noted here; the VM runs all the same,
/// and the child's "sandboxed:" log line says how it is sealed, with one warning line
/// naming what is missing.
public enum Hardening {
    public struct Shortfall: Equatable, CustomStringConvertible {
        public let step: String
        public let errno: Int32
        /// What a user gets instead, and what would give the step.
        public let consequence: String

        public var description: String { "\(step) (\(String(cString: strerror(errno)))): \(consequence)" }
    }

    /// The errors by which a kernel (or a container's seccomp policy) says it lacks a
    /// call or an option of it; any other error is a real failure and is thrown.
    public static func isMissing(_ errno: Int32) -> Bool {
        [ENOSYS, EINVAL, EOPNOTSUPP, EPERM].contains(errno)
    }

    /// Main thread only, before the sandbox is entered (no lock needed then).
    public nonisolated(unsafe) private(set) static var shortfalls: [Shortfall] = []
    /// What was applied, in order, for the log line.
    public nonisolated(unsafe) private(set) static var applied: [String] = []

    package static func note(_ step: String, errno: Int32, consequence: String) {
        shortfalls.append(Shortfall(step: step, errno: errno, consequence: consequence))
    }

    package static func noteApplied(_ what: String) {
        if !applied.contains(what) { applied.append(what) }
    }

    /// For tests, which run several sandboxes' worth of steps in one process.
    public static func reset() {
        shortfalls = []
        applied = []
    }
}

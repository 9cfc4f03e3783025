import Glibc
import CLinux

/// A failed system call: which call, and the errno it left. Host errors are thrown
/// as this; errno is never dropped (design §7).
public struct SystemError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The error of the call that just failed, from the thread's errno.
    public static func last(_ call: String) -> SystemError {
        SystemError(call, errno: vmd_errno())
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a system call, retrying on EINTR, and throws its errno on failure (-1).
@discardableResult
public func retryingInterrupts<Result: BinaryInteger>(_ call: String, _ body: () -> Result) throws -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = vmd_errno()
        if error == EINTR { continue }
        throw SystemError(call, errno: error)
    }
}

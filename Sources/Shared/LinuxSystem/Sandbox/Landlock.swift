import CLinux
import Glibc

/// Landlock with no rights at all (design §5): after `restrictSelf()` this
/// process can open no file, bind or connect no TCP port, and (ABI 6) neither
/// signal nor reach abstract unix sockets outside its domain. Rights it already
/// holds as open descriptors (disk, tap, eventfds) stay usable.
enum Landlock {
    /// All filesystem access rights by the ABI version that introduced them.
    private static func handledFilesystemAccess(abi: Int32) -> UInt64 {
        var rights: UInt64 = (1 << 13) - 1   // ABI 1: execute ... make_sym
        if abi >= 2 { rights |= 1 << 13 }     // refer
        if abi >= 3 { rights |= 1 << 14 }     // truncate
        if abi >= 5 { rights |= 1 << 15 }     // ioctl_dev
        return rights
    }

    enum LandlockError: Error, CustomStringConvertible {
        case failed(SystemError)

        var description: String {
            switch self {
            case .failed(let error): "Landlock: \(error)"
            }
        }
    }

    /// The kernel's Landlock ABI version, or nil without Landlock.
    static var abiVersion: Int32? {
        let version = KernelCalls.current.landlockABI()
        return version > 0 ? version : nil
    }

    /// Restricts this process to no rights; without Landlock (a kernel before 5.13, or
    /// one booted without it in `lsm=`) the step is noted in `Hardening` and skipped.
    static func restrictSelf() throws {
        let version = KernelCalls.current.landlockABI()
        guard version > 0 else {
            let errno = version < 0 ? -version : ENOSYS
            guard Hardening.isMissing(errno) else { throw LandlockError.failed(SystemError("landlock_create_ruleset", errno: errno)) }
            Hardening.note("Landlock", errno: errno, consequence: "no filesystem or network restriction beyond seccomp and the empty root (Linux 5.13+)")
            return
        }
        let result = KernelCalls.current.landlockRestrict(
            handledFilesystemAccess(abi: version),
            version >= 4 ? 0b11 : 0,   // bind_tcp | connect_tcp
            version >= 6 ? 0b11 : 0)   // abstract unix socket | signal
        guard result == 0 else { throw LandlockError.failed(SystemError("landlock_restrict_self", errno: -result)) }
        Hardening.noteApplied("Landlock ABI \(version)")
    }
}

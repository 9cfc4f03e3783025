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
        case unsupported
        case failed(SystemError)

        var description: String {
            switch self {
            case .unsupported: "Landlock is not available on this kernel"
            case .failed(let error): "Landlock: \(error)"
            }
        }
    }

    /// The kernel's Landlock ABI version, or nil without Landlock.
    static var abiVersion: Int32? {
        let version = vmd_landlock_create_ruleset(nil, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */)
        return version > 0 ? version : nil
    }

    static func restrictSelf() throws {
        guard let abi = abiVersion else { throw LandlockError.unsupported }
        // struct landlock_ruleset_attr: handled_access_fs, handled_access_net (ABI 4), scoped (ABI 6).
        var attributes: (UInt64, UInt64, UInt64) = (
            handledFilesystemAccess(abi: abi),
            abi >= 4 ? 0b11 : 0,   // bind_tcp | connect_tcp
            abi >= 6 ? 0b11 : 0    // abstract unix socket | signal
        )
        let size = MemoryLayout.size(ofValue: attributes)
        let ruleset = withUnsafePointer(to: &attributes) { vmd_landlock_create_ruleset($0, size, 0) }
        guard ruleset >= 0 else { throw LandlockError.failed(SystemError.last("landlock_create_ruleset")) }
        defer { close(ruleset) }
        guard vmd_landlock_restrict_self(ruleset, 0) == 0 else { throw LandlockError.failed(SystemError.last("landlock_restrict_self")) }
    }
}

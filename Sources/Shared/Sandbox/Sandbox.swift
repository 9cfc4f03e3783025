import CLinux
import Glibc
import Logging

/// Locks a child down once its descriptors are in hand (design §5, issue 6):
/// leave namespaces, drop to the unprivileged user, no_new_privs, Landlock with
/// no rights, then the seccomp allowlist. Irreversible; done before any thread
/// but the main one exists, so every later thread inherits all of it.
public enum Sandbox {
    public enum SandboxError: Error, CustomStringConvertible {
        case step(String, Error)
        case stillPrivileged(uid_t)

        public var description: String {
            switch self {
            case .step(let what, let error): "sandbox: \(what): \(error)"
            case .stillPrivileged(let uid): "sandbox: still uid \(uid) after dropping privileges"
            }
        }
    }

    /// The user children run as: VMD_SANDBOX_UID/GID, which vmd sets (see `SandboxUser`).
    static var targetUser: (uid: uid_t, gid: gid_t)? {
        guard let uid = getenv("VMD_SANDBOX_UID").flatMap({ uid_t(String(cString: $0)) }),
              let gid = getenv("VMD_SANDBOX_GID").flatMap({ gid_t(String(cString: $0)) }) else { return nil }
        return (uid, gid)
    }

    public static func enter(_ profile: SandboxProfile, logger: Logger) throws {
        if profile.unshareFlags != 0 {
            try step("unshare") { try retryingInterrupts("unshare") { vmd_unshare(profile.unshareFlags) } }
        }
        if let (uid, gid) = targetUser, getuid() == 0 {
            try step("drop privileges") {
                try retryingInterrupts("setgroups") { setgroups(0, nil) }
                try retryingInterrupts("setresgid") { vmd_setresgid(gid) }
                try retryingInterrupts("setresuid") { vmd_setresuid(uid) }
            }
            guard getuid() == uid, geteuid() == uid, setuid(0) != 0 else { throw SandboxError.stillPrivileged(getuid()) }
        }
        // A change of credentials clears the parent-death signal: set it again.
        try step("parent death signal") { try ChildSetup.dieWithParent() }
        try step("no_new_privs") { try ChildSetup.forbidNewPrivileges() }
        let summary = "uid \(getuid()), Landlock ABI \(Landlock.abiVersion ?? 0), seccomp \(SeccompFilter.logOnly ? "log" : "kill") with \(profile.rules.count) rules"
        try step("Landlock") { try Landlock.restrictSelf() }
        try step("seccomp") { try SeccompFilter(rules: profile.rules).install() }
        logger.info("sandboxed: \(summary)")
        runTestProbes(logger: logger)
    }

    private static func step(_ what: String, _ body: () throws -> Void) throws {
        do { try body() } catch { throw SandboxError.step(what, error) }
    }

    /// Test-only triggers, set in the environment by the test suite (never by a
    /// guest, which cannot reach a process's environment): VMD_TEST_OPEN_PROBE
    /// tries to open a file and logs the result; VMD_TEST_FORBIDDEN_SYSCALL makes
    /// a call no profile allows (socket), which seccomp answers by killing us.
    private static func runTestProbes(logger: Logger) {
        if let path = getenv("VMD_TEST_OPEN_PROBE").map({ String(cString: $0) }) {
            let fd = Glibc.open(path, O_RDONLY)
            let error = errno
            logger.notice("sandbox probe: open(\(path)) = \(fd) errno \(error) (\(String(cString: strerror(error))))")
            if fd >= 0 { Glibc.close(fd) }
        }
        if let role = getenv("VMD_TEST_FORBIDDEN_SYSCALL").map({ String(cString: $0) }), role == ProcessRole.current {
            logger.notice("sandbox probe: calling socket(), which is not allowed")
            _ = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        }
    }
}

/// Which kind of child this process is, for the test probes.
public enum ProcessRole {
    public nonisolated(unsafe) static var current = ""
}

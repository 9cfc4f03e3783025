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

    /// Namespaces of its own and an empty read-only root (design §5, issue 13). Needs root
    /// and a single thread; `enter` does it first unless the process did it earlier
    /// (vm does, before its VM's threads exist).
    public static func isolate(_ profile: SandboxProfile) throws {
        guard !isolated else { return }
        isolated = true
        try leaveHost(profile.unshareFlags)
    }

    /// `isolate`'s steps, each degrading where the kernel lacks it. The network and mount
    /// namespaces are the ones vmd made for its children where it gave them (`SharedNamespace`).
    static func leaveHost(_ flags: Int32) throws {
        var flags = flags
        var joined: Int32 = 0
        for namespace in SharedNamespace.all where flags & namespace.flag != 0 && namespace.joinInherited() {
            flags &= ~namespace.flag
            joined |= namespace.flag
        }
        SharedNamespace.closeAllInherited()
        let unshared = try step("unshare") { try unshare(flags, alongWith: joined) }
        if joined & VMD_CLONE_NEWNS != 0 {
            Hardening.noteApplied("empty read-only root")  // vmd's, which joinInherited checked
        } else if unshared & VMD_CLONE_NEWNS != 0 {
            let result = KernelCalls.current.enterEmptyRoot()
            if result == 0 {
                Hardening.noteApplied("empty read-only root")
            } else if Hardening.isMissing(-result) {
                Hardening.note("empty root", errno: -result, consequence: "the host's files stay visible (Landlock and seccomp still refuse opens)")
            } else {
                throw SandboxError.step("empty root", SystemError("pivot_root", errno: -result))
            }
        }
    }

    private nonisolated(unsafe) static var isolated = false

    /// Leaves the namespaces in `flags`, all at once or, where the kernel or a container
    /// refuses that, each it allows; returns those left. `joined`: namespaces already left
    /// by joining another (named with these in the summary).
    static func unshare(_ flags: Int32, alongWith joined: Int32 = 0) throws -> Int32 {
        guard flags != 0 else {
            noteNamespaces(joined)
            return 0
        }
        let all = KernelCalls.current.unshare(flags)
        if all == 0 {
            noteNamespaces(flags | joined)
            return flags
        }
        guard Hardening.isMissing(-all) else { throw SystemError("unshare", errno: -all) }
        var left: Int32 = 0
        for (flag, name) in namespaceNames where flags & flag != 0 {
            let result = KernelCalls.current.unshare(flag)
            if result == 0 {
                left |= flag
            } else if Hardening.isMissing(-result) {
                Hardening.note("\(name) namespace", errno: -result, consequence: "shares the host's \(name) namespace")
            } else {
                throw SystemError("unshare(\(name))", errno: -result)
            }
        }
        noteNamespaces(left | joined)
        return left
    }

    static let namespaceNames: [(Int32, String)] = [
        (VMD_CLONE_NEWNS, "mount"), (VMD_CLONE_NEWIPC, "ipc"), (VMD_CLONE_NEWUTS, "uts"), (VMD_CLONE_NEWNET, "network"),
    ]

    private static func noteNamespaces(_ flags: Int32) {
        let names = namespaceNames.filter { flags & $0.0 != 0 }.map(\.1)
        if !names.isEmpty { Hardening.noteApplied("namespaces \(names.joined(separator: " "))") }
    }

    public static func enter(_ profile: SandboxProfile, logger: Logger) throws {
        try isolate(profile)
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
        Hardening.noteApplied("uid \(getuid())")  // read now: seccomp does not allow getuid
        try step("Landlock") { try Landlock.restrictSelf() }
        try step("seccomp") { try SeccompFilter(rules: profile.rules).install() }
        logger.info("sandboxed: \(summary)")
        if !Hardening.shortfalls.isEmpty {
            logger.warning("hardening degraded, this kernel lacks: \(Hardening.shortfalls.map(\.description).joined(separator: "; "))")
        }
        runTestProbes(logger: logger)
    }

    /// How this process is sealed: "RAM sealed, namespaces mount ipc uts, empty read-only root, uid 999, ...".
    public static var summary: String { Hardening.applied.joined(separator: ", ") }

    private static func step<Result>(_ what: String, _ body: () throws -> Result) throws -> Result {
        do { return try body() } catch { throw SandboxError.step(what, error) }
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

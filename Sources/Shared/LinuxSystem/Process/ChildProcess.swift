import Glibc
import CLinux

/// A child process started with posix_spawn (fork+exec; never a bare fork of a
/// multi-threaded Swift process, design §1). Its stdin is /dev/null, its stdout and
/// stderr are its log pipe to vmd, its control channel is fd 3, the children's network
/// and mount namespaces are fds 5 and 6 once vmd made them (`SharedNamespace`), and every
/// other descriptor is closed in the child before exec: not only vmd's own (all
/// close-on-exec) but any vmd inherited from whoever started it.
public final class ChildProcess {
    public static let channelDescriptor: Int32 = 3

    public let pid: pid_t
    public let executable: String
    /// Started inside the cgroup it was given (else the caller must move it there).
    public let startedInCgroup: Bool
    private var reaped = false
    /// Until `confirmExec`, of a child started without waiting for its execve.
    private var execReport: Int32?

    /// The first descriptor closed in the child: 0-2 and the channel stay.
    static let firstClosedDescriptor = channelDescriptor + 1

    /// Starts `executable` with `log` as its stdout and stderr. With `cgroup` (a cgroup v2
    /// directory) the child starts inside it (`startedInCgroup`), where the kernel can
    /// (clone3 with CLONE_INTO_CGROUP, Linux 5.7+): moving it there afterwards through
    /// cgroup.procs waits for an RCU grace period, 6-13 ms per VM start here.
    /// `waitForExec` false: started in the cgroup, it returns before the child has called
    /// execve, and `confirmExec` says whether it did (a VM's processes exec side by side).
    /// `namespaces`, in `SharedNamespace.all`'s order, go to the child each as its
    /// `childDescriptor`: vmd's `SharedNamespace.forChildren` unless a test gives others.
    public init(executable: String, arguments: [String], channel: FileDescriptor, log: FileDescriptor,
                cgroup: FileDescriptor? = nil, waitForExec: Bool = true,
                namespaces: [FileDescriptor?] = SharedNamespace.forChildren) throws {
        precondition(namespaces.count == SharedNamespace.all.count, "one entry per SharedNamespace.all")
        self.executable = executable
        // dup2 onto the same number would keep FD_CLOEXEC, so first move the channel above 3.
        let lifted = try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") {
            vmd_fcntl_int(channel.rawValue, F_DUPFD_CLOEXEC, 10)
        }
        defer { Glibc.close(lifted) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // Above the child's fixed numbers too (vmd_spawn_into_cgroup), or -1 for none.
        var given: [Int32] = []
        defer { given.filter { $0 >= 0 }.forEach { Glibc.close($0) } }
        for namespace in namespaces {
            given.append(try namespace.map { shared in
                try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") { vmd_fcntl_int(shared.rawValue, F_DUPFD_CLOEXEC, 10) }
            } ?? -1)
        }
        if let cgroup, let (pid, report) = try ChildProcess.spawnIntoCgroup(executable, argv: argv, cgroup: cgroup,
                                                                             channel: lifted, log: log, namespaces: given) {
            self.pid = pid
            startedInCgroup = true
            execReport = report
            if waitForExec { try confirmExec() }
            return
        }
        startedInCgroup = false

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, lifted, ChildProcess.channelDescriptor)
        posix_spawn_file_actions_adddup2(&actions, log.rawValue, STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, log.rawValue, STDERR_FILENO)
        var firstClosed = ChildProcess.firstClosedDescriptor
        if given.contains(where: { $0 >= 0 }) {
            // 4 and any number no namespace was given for are none of the child's (EBADF is not an error here).
            posix_spawn_file_actions_addclose(&actions, firstClosed)
            for (namespace, source) in zip(SharedNamespace.all, given) {
                if source >= 0 {
                    posix_spawn_file_actions_adddup2(&actions, source, namespace.childDescriptor)
                } else {
                    posix_spawn_file_actions_addclose(&actions, namespace.childDescriptor)
                }
            }
            firstClosed = SharedNamespace.all.map(\.childDescriptor).max()! + 1
        }
        // Descriptors vmd inherited without close-on-exec (from a shell, a service manager)
        // would otherwise reach every sandboxed child. glibc does this with close_range(2),
        // or by walking /proc/self/fd on kernels before 5.9.
        let closing = vmd_spawn_closefrom(&actions, firstClosed)
        guard closing == 0 else { throw SystemError("posix_spawn_file_actions_addclosefrom_np", errno: closing) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // A session of its own: no controlling terminal (a ^C at vmd's terminal reaches vmd,
        // which stops the VMs itself, rather than killing every child at once), and on a host without the
        // cgroup cpu controller, a scheduler autogroup of its own (sched_autogroup), so a
        // device is not squeezed into one CPU share with its own VM's vCPUs and vmd.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | VMD_POSIX_SPAWN_SETSID)

        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, vmd_environ())
        guard result == 0 else { throw SystemError("posix_spawn(\(executable))", errno: result) }
        self.pid = pid
    }

    /// Returns once the child runs its program, or throws why it could not (the child then
    /// reaped). Nothing to wait for where `init` waited, or after the first call.
    public func confirmExec() throws {
        guard let report = execReport else { return }
        execReport = nil
        let result = vmd_spawn_exec_result(report, pid)
        if result < 0 {
            reaped = true
            throw SystemError("execve(\(executable))", errno: -result)
        }
    }

    deinit {
        if let execReport { Glibc.close(execReport) }
    }

    /// The child, started inside `cgroup`, and the descriptor that tells whether its execve
    /// worked (`confirmExec`); nil where the kernel cannot (no clone3 or no CLONE_INTO_CGROUP),
    /// for posix_spawn to start it instead.
    private static func spawnIntoCgroup(_ executable: String, argv: [UnsafeMutablePointer<CChar>?], cgroup: FileDescriptor,
                                        channel: Int32, log: FileDescriptor, namespaces: [Int32]) throws -> (pid_t, Int32)? {
        // Every source descriptor above the child's fixed numbers 0-4 (vmd_spawn_into_cgroup).
        let stdin = try FileDescriptor.open("/dev/null", flags: O_RDONLY)
        let lifted = try [stdin.rawValue, log.rawValue].map { fd in
            try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") { vmd_fcntl_int(fd, F_DUPFD_CLOEXEC, 10) }
        }
        stdin.close()
        defer { lifted.forEach { Glibc.close($0) } }
        var report: Int32 = -1
        let result = vmd_spawn_into_cgroup(executable, argv, vmd_environ(), cgroup.rawValue, lifted[0], channel, lifted[1],
                                           namespaces, &report)
        if result >= 0 { return (result, report) }
        if [ENOSYS, EINVAL, E2BIG].contains(-result) { return nil }
        throw SystemError("clone3(\(executable), CLONE_INTO_CGROUP)", errno: -result)
    }

    /// How a child ended, from waitpid's status.
    public enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            }
        }
    }

    /// Reaps the child if it has ended; nil while it runs.
    public func poll() throws -> Termination? {
        try wait(options: WNOHANG)
    }

    /// Blocks until the child ends and reaps it.
    public func waitForExit() throws -> Termination {
        try wait(options: 0)!
    }

    private func wait(options: Int32) throws -> Termination? {
        precondition(!reaped, "child \(pid) reaped twice")
        var status: Int32 = 0
        let result = try retryingInterrupts("waitpid(\(pid))") { waitpid(pid, &status, options) }
        if result == 0 { return nil }
        reaped = true
        // WIFEXITED/WEXITSTATUS are macros: decode the status word as glibc does.
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(status & 0x7f)
    }

    public func kill(_ signal: Int32 = SIGKILL) {
        if !reaped { Glibc.kill(pid, signal) }
    }

    /// Kills and reaps, so no process of a VM outlives it.
    public func terminate() {
        guard !reaped else { return }
        kill(SIGKILL)
        _ = try? waitForExit()
    }

    public var hasBeenReaped: Bool { reaped }
}

/// Things every child does first.
public enum ChildSetup {
    /// Dies with the parent: a VM's processes must never outlive vmd (design §1).
    public static func dieWithParent() throws {
        try retryingInterrupts("prctl(PR_SET_PDEATHSIG)") { vmd_prctl(PR_SET_PDEATHSIG, UInt(SIGKILL), 0, 0, 0) }
        // The parent may have died before the prctl took effect; then init adopted us.
        if getppid() == 1 { exit(1) }
    }

    /// no_new_privs is always set (design §5); the rest of the sandbox comes later.
    public static func forbidNewPrivileges() throws {
        try retryingInterrupts("prctl(PR_SET_NO_NEW_PRIVS)") { vmd_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }
    }
}

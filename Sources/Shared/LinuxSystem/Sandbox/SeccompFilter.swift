import CSeccomp
import Glibc

/// A seccomp allowlist built with libseccomp (design §5): kill the process on
/// anything not listed, or with VMD_SECCOMP=log only log it (to develop lists:
/// the kernel reports `audit: type=1326 ... syscall=N` in dmesg).
struct SeccompFilter {
    /// An allowed system call and who needs it; `only` restricts one argument.
    struct Rule {
        let name: String
        let reason: String
        var argument: (index: UInt32, value: UInt64, mask: UInt64)?
        /// Not allowed but failed with this errno (open* → ENOENT, clone3 → ENOSYS).
        var failWith: Int32?
    }

    enum FilterError: Error, CustomStringConvertible {
        case libseccomp(String, Int32)

        var description: String {
            switch self {
            case .libseccomp(let call, let result): "seccomp: \(call) failed (\(String(cString: strerror(-result))))"
            }
        }
    }

    let rules: [Rule]

    static var logOnly: Bool { getenv("VMD_SECCOMP").map { String(cString: $0) == "log" } ?? false }

    /// Loads the filter into this process (all threads). A kernel without
    /// SECCOMP_RET_KILL_PROCESS (before 4.14) gets the filter with kill-thread instead;
    /// one without seccomp filters at all runs without, both noted in `Hardening`.
    func install() throws {
        if SeccompFilter.logOnly {
            let result = try load(defaultAction: SCMP_ACT_LOG)
            if result != 0 { throw FilterError.libseccomp("seccomp_load", result) }
            return Hardening.noteApplied("seccomp log-only with \(rules.count) rules")
        }
        let result = try load(defaultAction: SCMP_ACT_KILL_PROCESS)
        if result == 0 { return Hardening.noteApplied("seccomp kill-process with \(rules.count) rules") }
        guard Hardening.isMissing(-result) else { throw FilterError.libseccomp("seccomp_load", result) }
        let threadOnly = try load(defaultAction: SCMP_ACT_KILL_THREAD)
        if threadOnly == 0 {
            Hardening.note("seccomp kill-process", errno: -result,
                           consequence: "a forbidden call kills only the thread that made it (Linux 4.14+ kills the process)")
            return Hardening.noteApplied("seccomp kill-thread with \(rules.count) rules")
        }
        guard Hardening.isMissing(-threadOnly) else { throw FilterError.libseccomp("seccomp_load", threadOnly) }
        Hardening.note("seccomp", errno: -threadOnly, consequence: "no system call filter (a kernel with CONFIG_SECCOMP_FILTER has one)")
    }

    /// Builds the filter with `defaultAction` and loads it: 0, or -errno from the kernel.
    private func load(defaultAction: UInt32) throws -> Int32 {
        // libseccomp refuses an action the kernel lacks already here.
        guard let context = seccomp_init(defaultAction) else { return -EINVAL }
        defer { seccomp_release(context) }
        try check(seccomp_attr_set(context, SCMP_FLTATR_CTL_TSYNC, 1), "TSYNC")
        for rule in rules {
            let number = seccomp_syscall_resolve_name(rule.name)
            guard number != __NR_SCMP_ERROR else { throw FilterError.libseccomp("resolve \(rule.name)", -EINVAL) }
            let action = rule.failWith.map { 0x0005_0000 | (UInt32($0) & 0xFFFF) } ?? SCMP_ACT_ALLOW  // SCMP_ACT_ERRNO
            if let argument = rule.argument {
                var comparison = scmp_arg_cmp(arg: argument.index, op: SCMP_CMP_MASKED_EQ, datum_a: argument.mask, datum_b: argument.value)
                try check(seccomp_rule_add_array(context, action, number, 1, &comparison), "rule \(rule.name)")
            } else {
                try check(seccomp_rule_add_array(context, action, number, 0, nil), "rule \(rule.name)")
            }
        }
        return KernelCalls.current.seccompLoad(context)
    }

    private func check(_ result: Int32, _ what: String) throws {
        if result < 0 { throw FilterError.libseccomp(what, result) }
    }
}

extension SeccompFilter.Rule {
    static func allow(_ name: String, _ reason: String) -> Self {
        Self(name: name, reason: reason)
    }

    /// ioctl with exactly this request number.
    static func ioctl(_ request: UInt, _ reason: String) -> Self {
        Self(name: "ioctl", reason: reason, argument: (1, UInt64(request), 0xFFFF_FFFF))
    }

    static func fail(_ name: String, errno: Int32, _ reason: String) -> Self {
        Self(name: name, reason: reason, failWith: errno)
    }
}

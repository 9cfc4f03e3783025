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

    /// Loads the filter into this process (all threads).
    func install() throws {
        let defaultAction = SeccompFilter.logOnly ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS
        guard let context = seccomp_init(defaultAction) else { throw FilterError.libseccomp("seccomp_init", -ENOMEM) }
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
        try check(seccomp_load(context), "seccomp_load")
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

import CLinux
import CSeccomp
import Glibc

/// The system calls of the hardening steps that a user's kernel may lack (issue 13:
/// mseal is Linux 6.10+, Landlock 5.13+ and often disabled, namespaces may be refused
/// inside containers), behind one seam so that tests can answer each with ENOSYS or
/// EINVAL. Each returns 0 (or a Landlock ABI version) on success, else -errno.
public struct KernelCalls {
    public var mseal: (UnsafeMutableRawPointer, Int) -> Int32
    /// The Landlock ABI version (landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION).
    public var landlockABI: () -> Int32
    /// Creates a ruleset handling these rights and restricts this process with it.
    public var landlockRestrict: (_ filesystem: UInt64, _ network: UInt64, _ scoped: UInt64) -> Int32
    public var unshare: (Int32) -> Int32
    /// setns(fd, flag): joins the namespace `fd` holds (CLONE_NEWNET, CLONE_NEWNS).
    public var joinNamespace: (_ fd: Int32, _ flag: Int32) -> Int32
    /// Whether this process's root is an empty tmpfs mounted read-only, as `EmptyRoot` makes it.
    public var rootIsEmptyReadOnlyTmpfs: () -> Bool
    /// Makes this process's root an empty read-only tmpfs (in its own mount namespace).
    public var enterEmptyRoot: () -> Int32
    /// seccomp_load of a built libseccomp context.
    public var seccompLoad: (scmp_filter_ctx) -> Int32

    /// What this process calls. Tests replace it; nothing else does.
    public nonisolated(unsafe) static var current = KernelCalls.system

    public static let system = KernelCalls(
        mseal: { base, size in vmd_mseal(base, size) == 0 ? 0 : -vmd_errno() },
        landlockABI: {
            let version = vmd_landlock_create_ruleset(nil, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */)
            return version >= 0 ? version : -vmd_errno()
        },
        landlockRestrict: { filesystem, network, scoped in
            var attributes = vmd_landlock_ruleset_attr(handled_access_fs: filesystem, handled_access_net: network, scoped: scoped)
            // Only the fields the caller's ABI knows: an older kernel refuses a larger struct (E2BIG).
            let size = scoped != 0 ? MemoryLayout<vmd_landlock_ruleset_attr>.size
                : network != 0 ? MemoryLayout.offset(of: \vmd_landlock_ruleset_attr.scoped)!
                : MemoryLayout.offset(of: \vmd_landlock_ruleset_attr.handled_access_net)!
            // SAFETY: the kernel reads `size` bytes of `attributes`, which lives for the call.
            let ruleset = withUnsafePointer(to: &attributes) { vmd_landlock_create_ruleset($0, size, 0) }
            guard ruleset >= 0 else { return -vmd_errno() }
            defer { close(ruleset) }
            return vmd_landlock_restrict_self(ruleset, 0) == 0 ? 0 : -vmd_errno()
        },
        unshare: { flags in vmd_unshare(flags) == 0 ? 0 : -vmd_errno() },
        joinNamespace: { fd, flag in vmd_setns(fd, flag) == 0 ? 0 : -vmd_errno() },
        rootIsEmptyReadOnlyTmpfs: { EmptyRoot.isCurrentRoot() },
        enterEmptyRoot: { EmptyRoot.enter() },
        seccompLoad: { context in seccomp_load(context) }
    )
}

/// pivot_root into an empty tmpfs, then read-only: after it the process sees no host
/// file at all, whatever Landlock and seccomp allow. Needs a mount namespace of its own
/// and CAP_SYS_ADMIN (done before privileges are dropped).
enum EmptyRoot {
    /// Any directory every system has will do as the mount point: the mount is the
    /// namespace's own and the host never sees it.
    static let mountPoint = "/tmp"

    static func enter() -> Int32 {
        let hidden = VMD_MS_NOSUID | VMD_MS_NODEV | VMD_MS_NOEXEC
        // Nothing we mount may propagate back to the host's namespace.
        guard vmd_mount(nil, "/", nil, VMD_MS_REC | VMD_MS_PRIVATE, nil) == 0,
              vmd_mount("none", mountPoint, "tmpfs", hidden, "size=4k,nr_inodes=2,mode=0555") == 0,
              chdir(mountPoint) == 0,
              // pivot_root(".", "."): the old root is stacked under the new one, then detached.
              vmd_pivot_root(".", ".") == 0,
              vmd_umount2(".", VMD_MNT_DETACH) == 0,
              chdir("/") == 0,
              vmd_mount(nil, "/", nil, VMD_MS_REMOUNT | VMD_MS_RDONLY | hidden, nil) == 0
        else { return -vmd_errno() }
        return 0
    }

    static let tmpfsMagic = 0x0102_1994

    /// Whether "/" is a read-only tmpfs with nothing in it (statfs: its type and flags; its
    /// inodes: the root's own and none other).
    static func isCurrentRoot() -> Bool {
        var info = statfs()
        guard statfs("/", &info) == 0 else { return false }
        return info.f_type == tmpfsMagic && info.f_flags & Int(ST_RDONLY) != 0 && info.f_ffree + 1 >= info.f_files
    }
}

import CLinux
import Glibc

/// A namespace with nothing in it that vmd makes once and every child leaving the host's
/// namespace of that kind joins, instead of each making one of its own:
///
/// - network (vm, the pager, virtio-blk, virtio-rng): unshare(CLONE_NEWNET) took 0.8-1.1 ms
///   per process here, and the kernel tore each namespace down again when its process ended;
/// - mount (every child), whose root is an empty read-only tmpfs: each child's own pivot_root
///   into one ended with a umount that waits for an expedited RCU grace period, 0.7-1.7 ms
///   per process here, the three of a lazy restore queueing on one another's. Joining takes
///   none. A lazy restore by hand, 25 each, builds alternating: median 20.4 -> 18.1 ms.
///
/// Sharing gives nothing away. None of these processes may make a socket (seccomp), so none
/// can use a network namespace at all. None holds a capability once sandboxed, so none can
/// mount anything in the shared root, which is read-only, empty and has room for no file.
/// What each is kept from, the host's network and files, is the same. A child that finds
/// no namespace to join, or one that is not what vmd makes, makes its own, as before.
public struct SharedNamespace: Sendable {
    public let name: String
    let flag: Int32
    /// Its name under /proc/PID/ns.
    let procName: String
    /// Where a child finds it (ChildProcess puts it there), and the variable that says so.
    public let childDescriptor: Int32
    let variable: String

    public static let network = SharedNamespace(name: "network", flag: VMD_CLONE_NEWNET, procName: "net",
                                                childDescriptor: 5, variable: "VMD_SANDBOX_NETNS")
    public static let mount = SharedNamespace(name: "mount", flag: VMD_CLONE_NEWNS, procName: "mnt",
                                              childDescriptor: 6, variable: "VMD_SANDBOX_MNTNS")
    /// In the order of `forChildren`; their child descriptors follow each other from 5.
    public static let all = [network, mount]

    /// vmd's: the namespaces its children get, in `all`'s order; nil until `prepareAll`, or
    /// where making one failed.
    public private(set) nonisolated(unsafe) static var forChildren: [FileDescriptor?] = all.map { _ in nil }

    /// Makes every namespace (vmd, once, as root) and tells the children it starts from now
    /// on where to find each. Returns why each it could not make failed, where the kernel or
    /// a container refused it; the children then make their own or do without, as `Sandbox`
    /// allows.
    public static func prepareAll() -> [SystemError] {
        var failures: [SystemError] = []
        for (index, namespace) in all.enumerated() where forChildren[index] == nil {
            let made = namespace.make()
            guard made >= 0 else {
                failures.append(SystemError("unshare(\(namespace.name) namespace) for the children", errno: -made))
                continue
            }
            forChildren[index] = FileDescriptor(adopting: made)
            setenv(namespace.variable, String(namespace.childDescriptor), 1)
        }
        return failures
    }

    /// A new namespace of this kind, readied (the mount namespace's root made empty and
    /// read-only), while the caller's threads stay where they are: a descriptor that holds
    /// it (close-on-exec), or -errno.
    public func make() -> Int32 {
        vmd_call_on_new_thread({ flag in
            guard let namespace = SharedNamespace.all.first(where: { $0.flag == flag }) else { return -EINVAL }
            guard vmd_unshare(flag) == 0 else { return -vmd_errno() }
            let descriptor = open("/proc/thread-self/ns/\(namespace.procName)", O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return -vmd_errno() }
            if flag == VMD_CLONE_NEWNS {
                let entered = EmptyRoot.enter()
                guard entered == 0 else {
                    close(descriptor)
                    return entered
                }
            }
            return descriptor
        }, flag)
    }

    /// A child: the descriptor of this namespace it was given, if its environment names one
    /// (`childDescriptor` from vmd; tests name others), never stdio or the channel.
    var inherited: Int32? {
        guard let value = getenv(variable).flatMap({ Int32(String(cString: $0)) }),
              value > ChildProcess.channelDescriptor else { return nil }
        return value
    }

    /// A child: joins the namespace it was given, if it was given one. The mount namespace
    /// counts as joined only if its root is what vmd makes (empty, read-only): where a
    /// container stacks mounts otherwise, the child makes its own.
    func joinInherited() -> Bool {
        guard let descriptor = inherited, KernelCalls.current.joinNamespace(descriptor, flag) == 0 else { return false }
        return flag != VMD_CLONE_NEWNS || KernelCalls.current.rootIsEmptyReadOnlyTmpfs()
    }

    /// A child: lets go of every descriptor it was given (joined or not), so that nothing
    /// after the sandbox holds one.
    static func closeAllInherited() {
        for namespace in all {
            guard let descriptor = namespace.inherited else { continue }
            close(descriptor)
            unsetenv(namespace.variable)
        }
    }
}

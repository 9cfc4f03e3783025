import CLinux
import Glibc

/// One network namespace with nothing in it, which vmd makes once and every child that
/// leaves the host's network (vm, the pager, virtio-blk, virtio-rng) joins, instead of each
/// making one of its own: unshare(CLONE_NEWNET) took 0.8-1.1 ms per process here, on every
/// start, restore and migration, against 0.2 ms for the other namespaces together, and the
/// kernel tore each namespace down again when its process ended.
///
/// Sharing gives nothing away: none of these processes may make a socket (seccomp), so
/// none can use a network namespace at all, and what each is kept from, the host's
/// network, is the same. A child that finds no namespace to join makes its own, as before.
public enum SharedNetworkNamespace {
    /// Where a child finds it (ChildProcess puts it there) and the variable that says so.
    public static let childDescriptor: Int32 = 5
    static let variable = "VMD_SANDBOX_NETNS"

    /// vmd's: the namespace its children get; nil until `prepare`, or where it failed.
    public private(set) nonisolated(unsafe) static var forChildren: FileDescriptor?

    /// Makes the namespace (vmd, once, as root) and tells the children it started from now
    /// on where to find it. Throws where the kernel or a container refuses a namespace; the
    /// children then make their own or do without, as `Sandbox` allows.
    public static func prepare() throws {
        guard forChildren == nil else { return }
        let result = vmd_make_network_namespace()
        guard result >= 0 else { throw SystemError("unshare(CLONE_NEWNET) for the children's network namespace", errno: -result) }
        forChildren = FileDescriptor(adopting: result)
        setenv(variable, String(childDescriptor), 1)
    }

    /// A child: the descriptor of the namespace it was given, if its environment names one
    /// (`childDescriptor` from vmd; tests name others), never stdio or the channel.
    static var inherited: Int32? {
        guard let value = getenv(variable).flatMap({ Int32(String(cString: $0)) }),
              value > ChildProcess.channelDescriptor else { return nil }
        return value
    }

    /// A child: lets go of the descriptor (joined or not), so that nothing after the
    /// sandbox holds it.
    static func closeInherited() {
        guard let descriptor = inherited else { return }
        close(descriptor)
        unsetenv(variable)
    }
}

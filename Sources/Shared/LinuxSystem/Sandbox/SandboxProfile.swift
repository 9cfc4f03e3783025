import CKVM
import CLinux
import Glibc

/// What each child may still do once sandboxed (design §5). Every rule says who needs it.
public struct SandboxProfile {
    public enum Role: String {
        case vm, block, network, entropy, pager
    }

    let role: Role
    let rules: [SeccompFilter.Rule]
    /// The namespaces the child leaves: mount, IPC and UTS always, the network where it
    /// needs none (vm, virtio-blk; virtio-net keeps it only for its tap's sake).
    let unshareFlags: Int32

    static let ownNamespaces = VMD_CLONE_NEWNS | VMD_CLONE_NEWIPC | VMD_CLONE_NEWUTS

    /// Shared by every child: the Swift runtime, malloc, libevent, the IPC channels, logging.
    static let common: [SeccompFilter.Rule] = [
        .allow("read", "eventfds, channels, the console"),
        .allow("write", "eventfds, logging to stderr, the console"),
        .allow("close", "descriptors received and dropped"),
        .allow("recvmsg", "IPC channels (SCM_RIGHTS)"),
        .allow("sendmsg", "IPC channels"),
        .allow("epoll_wait", "libevent"),
        .allow("epoll_pwait", "libevent"),
        .allow("epoll_ctl", "libevent: watches added after the sandbox (kick eventfds at DRIVER_OK)"),
        .allow("fcntl", "setting O_NONBLOCK on received descriptors"),
        .allow("mmap", "malloc"),
        .allow("munmap", "malloc"),
        .allow("mprotect", "malloc, thread stacks"),
        .allow("madvise", "malloc"),
        .allow("mremap", "malloc (large realloc)"),
        .allow("brk", "malloc"),
        .allow("futex", "Swift runtime locks, pthreads"),
        .allow("rt_sigaction", "Swift runtime, libevent"),
        .allow("rt_sigprocmask", "Swift runtime, libevent"),
        .allow("rt_sigreturn", "return from signal handlers (vCPU kicks)"),
        .allow("sigaltstack", "Swift runtime"),
        .allow("getrandom", "Swift hashing seed, random MACs"),
        .allow("getpid", "logging"),
        .allow("gettid", "logging, Swift runtime"),
        .allow("getppid", "parent-death checks"),
        .allow("clock_gettime", "libevent timers (vDSO fallback)"),
        .allow("clock_nanosleep", "sleeps"),
        .allow("nanosleep", "sleeps"),
        .allow("sched_yield", "Swift runtime locks"),
        .allow("sched_getaffinity", "Swift runtime, new threads"),
        .allow("restart_syscall", "interrupted sleeps"),
        .allow("exit", "thread exit"),
        .allow("exit_group", "process exit"),
        .allow("tgkill", "abort() on a precondition failure"),
        .allow("newfstatat", "libc on descriptors it already has"),
        .allow("fstat", "libc on descriptors it already has"),
        .allow("lseek", "libc stdio"),
        // Nothing may be opened: fail cleanly, as if the file did not exist.
        .fail("open", errno: ENOENT, "no filesystem access"),
        .fail("openat", errno: ENOENT, "no filesystem access"),
        .fail("openat2", errno: ENOENT, "no filesystem access"),
        .fail("creat", errno: ENOENT, "no filesystem access"),
    ]

    /// vm: KVM on descriptors it holds, vCPU threads, the poller.
    public static let vm = SandboxProfile(
        role: .vm, rules: common + kvmRuntimeRequests.map { SeccompFilter.Rule.ioctl($0.request, $0.reason) } + vmThreads,
        unshareFlags: SandboxProfile.ownNamespaces | VMD_CLONE_NEWNET)

    /// The KVM ioctls the vm process still makes once sandboxed (everything else
    /// was done while building the VM), with who needs each.
    static let kvmRuntimeRequests: [(request: UInt, reason: String)] = [
        (VMD_KVM_IOCTL_RUN, "vCPU threads: KVM_RUN"),
        (VMD_KVM_IOCTL_IRQ_LINE, "UART interrupt line: KVM_IRQ_LINE"),
        (VMD_KVM_IOCTL_SET_GSI_ROUTING, "MSI-X routes as the guest programs vectors: KVM_SET_GSI_ROUTING"),
        (VMD_KVM_IOCTL_IRQFD, "binding queue interrupts to routes: KVM_IRQFD"),
        (VMD_KVM_IOCTL_IOEVENTFD, "moving queue notifies with the BAR: KVM_IOEVENTFD"),
        (VMD_KVM_IOCTL_SIGNAL_MSI, "pending vectors on unmask, config changes: KVM_SIGNAL_MSI"),
        (VMD_KVM_IOCTL_GET_REGS, "a failed vCPU reports its rip: KVM_GET_REGS (VcpuThread)"),
        (VMD_KVM_IOCTL_GET_SREGS, "a failed vCPU reports its cs and cr3: KVM_GET_SREGS (VcpuThread)"),
        (VMD_KVM_IOCTL_GET_PIT2, "pause freezes the PIT: KVM_GET_PIT2"),
        (VMD_KVM_IOCTL_SET_PIT2, "resume restores the PIT: KVM_SET_PIT2"),
        (VMD_KVM_IOCTL_REINJECT_CONTROL, "a VM about to end drops the PIT's tick reinjection: KVM_REINJECT_CONTROL (VirtualMachine.prepareToEnd)"),
        (VMD_KVM_IOCTL_GET_CLOCK, "pause saves the KVM clock: KVM_GET_CLOCK"),
        (VMD_KVM_IOCTL_SET_CLOCK, "resume restores the KVM clock: KVM_SET_CLOCK"),
        // vmctl send: the whole VM is read while paused (its own vCPUs and irqchip only).
        (VMD_KVM_IOCTL_GET_FPU, "a snapshot: KVM_GET_FPU (hosts without XSAVE)"),
        (VMD_KVM_IOCTL_GET_XSAVE, "a snapshot: KVM_GET_XSAVE"),
        (VMD_KVM_IOCTL_GET_XCRS, "a snapshot: KVM_GET_XCRS"),
        (VMD_KVM_IOCTL_GET_MSRS, "a snapshot: KVM_GET_MSRS (TSC, kvmclock, syscall MSRs)"),
        (VMD_KVM_IOCTL_GET_LAPIC, "a snapshot: KVM_GET_LAPIC"),
        (VMD_KVM_IOCTL_GET_VCPU_EVENTS, "a snapshot: KVM_GET_VCPU_EVENTS"),
        (VMD_KVM_IOCTL_GET_DEBUGREGS, "a snapshot: KVM_GET_DEBUGREGS"),
        (VMD_KVM_IOCTL_GET_MP_STATE, "a snapshot: KVM_GET_MP_STATE"),
        (VMD_KVM_IOCTL_GET_IRQCHIP, "a snapshot: KVM_GET_IRQCHIP (PICs, IOAPIC)"),
        // vmctl receive: the snapshot is read once sandboxed (it is a user's file), so the
        // state goes back after Sandbox.enter; each call sets this VM's own vCPUs or irqchip.
        (VMD_KVM_IOCTL_SET_REGS, "a restore: KVM_SET_REGS"),
        (VMD_KVM_IOCTL_SET_SREGS, "a restore: KVM_SET_SREGS"),
        (VMD_KVM_IOCTL_SET_FPU, "a restore: KVM_SET_FPU (hosts without XSAVE)"),
        (VMD_KVM_IOCTL_SET_XSAVE, "a restore: KVM_SET_XSAVE"),
        (VMD_KVM_IOCTL_SET_XCRS, "a restore: KVM_SET_XCRS"),
        (VMD_KVM_IOCTL_SET_MSRS, "a restore: KVM_SET_MSRS"),
        (VMD_KVM_IOCTL_SET_LAPIC, "a restore: KVM_SET_LAPIC"),
        (VMD_KVM_IOCTL_SET_VCPU_EVENTS, "a restore: KVM_SET_VCPU_EVENTS"),
        (VMD_KVM_IOCTL_SET_DEBUGREGS, "a restore: KVM_SET_DEBUGREGS"),
        (VMD_KVM_IOCTL_SET_MP_STATE, "a restore: KVM_SET_MP_STATE"),
        (VMD_KVM_IOCTL_SET_IRQCHIP, "a restore: KVM_SET_IRQCHIP"),
        // vmctl migrate: the guest's writes are logged while its RAM is copied in rounds.
        (VMD_KVM_IOCTL_SET_USER_MEMORY_REGION, "a live migration: the dirty-log flag on the RAM slots, set and cleared"),
        (VMD_KVM_IOCTL_GET_DIRTY_LOG, "a live migration: the pages the guest wrote since the last round"),
    ]


    /// Starting threads after the sandbox is entered (so they inherit it).
    private static func threadCreation(_ who: String) -> [SeccompFilter.Rule] {
        [
            // Only threads: fork and vfork-like clones stay forbidden.
            SeccompFilter.Rule(name: "clone", reason: "\(who) (CLONE_THREAD only)",
                               argument: (0, UInt64(VMD_CLONE_THREAD), UInt64(VMD_CLONE_THREAD))),
            .fail("clone3", errno: ENOSYS, "glibc falls back to clone, whose flags seccomp can check"),
            .allow("set_robust_list", "new threads"),
            .allow("rseq", "new threads"),
        ]
    }

    private static let vmThreads: [SeccompFilter.Rule] = threadCreation("vCPU and poller threads") + [
        .allow("poll", "masked-interrupt poller"),
        .allow("ppoll", "masked-interrupt poller"),
        .allow("setsockopt", "device reply timeouts"),
        .allow("eventfd2", "the end-of-guest and poller wakeup eventfds"),
        .ioctl(UInt(VMD_UFFDIO_UNREGISTER), "a lazy restore: RAM faults stop going to the pager once every page is in"),
    ]

    /// virtio-blk: its disk descriptor only.
    public static let block = SandboxProfile(role: .block, rules: common + [
        .allow("preadv", "reads straight into guest memory"),
        .allow("pwritev", "writes straight from guest memory"),
        .allow("pread64", "reads, and qcow2 tables"),
        .allow("pwrite64", "writes of zeros when the filesystem cannot zero a range, qcow2 metadata and merged clusters"),
        .allow("fdatasync", "FLUSH"),
        .allow("fsync", "FLUSH"),
        .allow("fallocate", "DISCARD (punch hole) and WRITE_ZEROES (zero range)"),
        // The ring was set up and locked down before the sandbox (RestrictedIOUring): readv,
        // writev and fsync of the disk's registered file only, and no io_uring_register.
        .allow("io_uring_enter", "submitting and reaping reads, writes and flushes in flight together"),
    ] + threadCreation("request workers (the fallback when io_uring is unavailable)"), unshareFlags: SandboxProfile.ownNamespaces | VMD_CLONE_NEWNET)

    /// virtio-rng: nothing beyond the common set, whose getrandom is all it serves from.
    public static let entropy = SandboxProfile(role: .entropy, rules: common,
                                               unshareFlags: SandboxProfile.ownNamespaces | VMD_CLONE_NEWNET)

    /// virtio-net: its tap queues only, and the two tap ioctls it needs.
    public static let network = SandboxProfile(role: .network, rules: common + [
        .allow("readv", "receive straight into guest buffers"),
        .allow("writev", "transmit straight from guest buffers"),
        .ioctl(UInt(VMD_TUNSETOFFLOAD), "offloads for what the guest negotiated: TUNSETOFFLOAD"),
        .ioctl(UInt(VMD_TUNSETQUEUE), "the tap queues of the queue pairs the driver uses (VQ_PAIRS_SET): TUNSETQUEUE"),
    ], unshareFlags: SandboxProfile.ownNamespaces)

    /// The pager of a lazy restore: the snapshot file and the userfaultfd it fills, nothing
    /// else (no guest RAM mapped, no KVM): a hostile snapshot that subverted its parser could
    /// only put bytes into guest pages, which the snapshot decides anyway.
    public static let pager = SandboxProfile(role: .pager, rules: common + [
        .allow("pread64", "pages from the snapshot file"),
        .allow("ppoll", "waiting for faults and for vmd"),
        .allow("poll", "waiting for faults and for vmd"),
        .ioctl(UInt(VMD_UFFDIO_COPY), "copying a page into the faulting process: UFFDIO_COPY"),
        .ioctl(UInt(VMD_UFFDIO_ZEROPAGE), "a page the snapshot left out: UFFDIO_ZEROPAGE"),
        .ioctl(UInt(VMD_UFFDIO_WAKE), "waking a fault another copy resolved: UFFDIO_WAKE"),
    ], unshareFlags: SandboxProfile.ownNamespaces | VMD_CLONE_NEWNET)
}

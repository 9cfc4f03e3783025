import CURing
import Glibc
import CLinux
import LinuxSystem

/// An io_uring that can do three things: readv, writev and fsync (of the disk image).
///
/// The operations of a ring run in the kernel without passing seccomp, so the ring is
/// created disabled and locked down before it is enabled (IORING_REGISTER_RESTRICTIONS):
/// only those three opcodes, no SQE flag (no links, no forced async, no buffer selection),
/// and no io_uring_register operation at all once enabled. The sandbox then needs
/// io_uring_enter only. What the ring may do is what the device's own seccomp list
/// already lets it do to its descriptors (preadv, pwritev, fdatasync).
///
/// The image is named by its descriptor, not registered as a fixed file: a registered
/// file is let go by the kernel's asynchronous ring teardown, some 10-25 ms after the
/// process is gone (measured), so the image's lock outlived its VM and starting the VM
/// again at once failed with "in use by another VM". A plain descriptor closes with the
/// process. Completions signal `completionEvent`, which the device's event loop watches.
///
/// Not thread-safe: the event loop owns it.
final class RestrictedIOUring {
    private var ring = io_uring()
    private let file: Int32
    /// Completions are run only when we ask (IORING_SETUP_DEFER_TASKRUN): the kernel does
    /// not interrupt the event loop's epoll_wait to post them, it signals the eventfd and
    /// waits for `drainCompletions`. Measured 0.81 -> 0.72 of the preadv time per O_DIRECT
    /// 4 KiB read here. Kernels before 6.1 lack it; the ring then works without.
    private(set) var deferred = true
    /// Signalled by the kernel when completions are posted.
    let completionEvent: FileDescriptor
    /// Submissions prepared but not yet handed to the kernel.
    private(set) var unsubmitted = 0

    /// `entries`: how many operations may be prepared before a submit (rounded up to a
    /// power of two by the kernel); the completion ring is twice that, so it cannot
    /// overflow while no more than `entries` are in flight.
    init(file: FileDescriptor, entries: UInt32) throws {
        self.file = file.rawValue
        completionEvent = try FileDescriptor.eventFD()
        var params = io_uring_params()
        params.flags = UInt32(IORING_SETUP_R_DISABLED) | Self.deferredFlags
        if io_uring_queue_init_params(entries, &ring, &params) == -EINVAL {
            deferred = false
            params = io_uring_params()
            params.flags = UInt32(IORING_SETUP_R_DISABLED)
            try Self.check("io_uring_setup", io_uring_queue_init_params(entries, &ring, &params))
        }
        do {
            try Self.check("io_uring_register(EVENTFD)", io_uring_register_eventfd(&ring, completionEvent.rawValue))
            // No SQE_FLAGS rule: then no flag is allowed.
            var rules = [Self.operation(IORING_OP_READV), Self.operation(IORING_OP_WRITEV), Self.operation(IORING_OP_FSYNC)]
            // Debian's liburing 2.3 leaves io_uring_register_restrictions and io_uring_enable_rings
            // out of its symbol map, so these two go through its plain io_uring_register.
            try Self.check("io_uring_register(RESTRICTIONS)",
                           io_uring_register(UInt32(ring.ring_fd), UInt32(IORING_REGISTER_RESTRICTIONS),
                                             &rules, UInt32(rules.count)))
            try Self.check("io_uring_register(ENABLE_RINGS)",
                           io_uring_register(UInt32(ring.ring_fd), UInt32(IORING_REGISTER_ENABLE_RINGS), nil, 0))
        } catch {
            io_uring_queue_exit(&ring)
            throw error
        }
    }

    deinit { io_uring_queue_exit(&ring) }

    /// The ring's own descriptor (for the tests of its restrictions).
    var descriptor: Int32 { ring.ring_fd }

    /// Prepares a readv into `vectors` at `offset`; false if the submission queue is full.
    /// The vectors must stay valid until `submit` returns (the kernel copies them there);
    /// the memory they name until the completion.
    func prepareRead(_ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        prepare(tag: tag) { io_uring_prep_readv($0, file, vectors, UInt32(count), offset) }
    }

    /// Prepares a writev from `vectors` at `offset`, as `prepareRead`.
    func prepareWrite(_ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        prepare(tag: tag) { io_uring_prep_writev($0, file, vectors, UInt32(count), offset) }
    }

    /// Prepares an fdatasync of the file.
    func prepareDataSync(tag: UInt64) -> Bool {
        prepare(tag: tag) { io_uring_prep_fsync($0, file, UInt32(IORING_FSYNC_DATASYNC)) }
    }

    /// Hands what was prepared to the kernel. What the kernel could do at once (a page-cache
    /// hit) is complete when this returns: the caller takes it with `drainCompletions` right
    /// away. Those completions do not signal `completionEvent` (it is muted meanwhile), which
    /// would only wake the loop for nothing; so after this the caller must drain once more,
    /// for whatever completed between its first drain and the unmuting:
    /// `try submit(); drain; unmute(); drain`.
    func submit() throws {
        guard unsubmitted > 0 else { return }
        _ = io_uring_cq_eventfd_toggle(&ring, false)
        var submitted: Int32
        // With deferred completions the same call also runs those already due.
        repeat {
            submitted = deferred ? io_uring_submit_and_get_events(&ring) : io_uring_submit(&ring)
        } while submitted == -EINTR
        try Self.check("io_uring_enter", submitted)
        unsubmitted -= Int(submitted)
    }

    /// Lets completions signal `completionEvent` again, after `submit`.
    func unmute() {
        _ = io_uring_cq_eventfd_toggle(&ring, true)
    }

    /// Runs the completions the kernel deferred, so that `drainCompletions` sees them: after
    /// `completionEvent` fired, or after `unmute`. The kernel signals the eventfd only for
    /// the first completion it defers, so one deferred while muted would otherwise wait
    /// forever; IORING_SQ_TASKRUN says whether any is waiting.
    func runDeferredCompletions() {
        guard deferred else { return }
        vmd_memory_fence()
        // SAFETY: kflags points into the ring's shared mapping, alive while the ring is.
        guard ring.sq.kflags.pointee & UInt32(IORING_SQ_TASKRUN) != 0 else { return }
        while io_uring_get_events(&ring) == -EINTR {}
    }

    /// Whether a completion is posted, running the deferred ones the kernel has flagged:
    /// cheap enough to spin on (a load of two shared words, a syscall only when flagged).
    func hasCompletion() -> Bool {
        runDeferredCompletions()
        return io_uring_cq_ready(&ring) > 0
    }

    /// Calls `body` with the tag and result (bytes, or -errno) of each posted completion.
    func drainCompletions(_ body: (_ tag: UInt64, _ result: Int32) -> Void) {
        var completion: UnsafeMutablePointer<io_uring_cqe>?
        while io_uring_peek_cqe(&ring, &completion) == 0, let entry = completion {
            let (tag, result) = (entry.pointee.user_data, entry.pointee.res)
            io_uring_cqe_seen(&ring, entry)
            body(tag, result)
        }
    }

    /// Blocks until at least one completion is posted (for waiting out what is in flight).
    func waitForCompletion() throws {
        var completion: UnsafeMutablePointer<io_uring_cqe>?
        var result: Int32
        repeat { result = io_uring_wait_cqe(&ring, &completion) } while result == -EINTR
        try Self.check("io_uring_wait_cqe", result)
    }

    // MARK: Helpers

    /// Internal, not private, so that the tests can try what the restrictions refuse.
    func prepare(tag: UInt64, _ fill: (UnsafeMutablePointer<io_uring_sqe>) -> Void) -> Bool {
        guard let entry = io_uring_get_sqe(&ring) else { return false }
        fill(entry)
        entry.pointee.user_data = tag
        unsubmitted += 1
        return true
    }

    private static let deferredFlags = UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN)
        | UInt32(IORING_SETUP_TASKRUN_FLAG)

    private static func operation(_ opcode: io_uring_op) -> io_uring_restriction {
        var rule = io_uring_restriction()
        rule.opcode = UInt16(IORING_RESTRICTION_SQE_OP)
        rule.sqe_op = UInt8(opcode.rawValue)
        return rule
    }

    /// liburing returns -errno.
    private static func check(_ call: String, _ result: Int32) throws {
        if result < 0 { throw SystemError(call, errno: -result) }
    }
}

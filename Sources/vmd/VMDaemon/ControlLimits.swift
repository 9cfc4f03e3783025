import Glibc

/// How much of vmd one user may hold through the control socket (issue 13): without
/// limits an unprivileged user's idle connections used up vmd's descriptors and root
/// could no longer run `vmctl status`.
struct ControlLimits {
    /// Connections of one non-root user at a time.
    var perUser = 16
    /// Connections of all non-root users together; root has `rootReserve` more of its own.
    var allUsers = 128
    var rootReserve = 32
    /// A connection with no request in progress is closed after this long.
    var idleSeconds: Double = 60
    /// Replies queued for a client that does not read, before vmd gives up on it.
    var queuedReplies = 8
    /// While accept(2) fails for want of descriptors, vmd waits this long before trying again
    /// (the listener stays readable, so retrying at once would spin).
    var acceptBackoffSeconds: Double = 0.2

    /// Limits that fit in `descriptors` (RLIMIT_NOFILE): users together get at most a
    /// quarter of them, root its reserve besides, and the rest is left for the VMs.
    init(descriptorLimit descriptors: Int) {
        allUsers = max(4, min(allUsers, descriptors / 4))
        perUser = min(perUser, allUsers)
        rootReserve = max(4, min(rootReserve, descriptors / 8))
    }

    init() {}

    /// Whether one more connection of `uid` is allowed, given the open ones per uid.
    func admits(uid: uid_t, open: [uid_t: Int]) -> Bool {
        let users = open.filter { $0.key != 0 }.values.reduce(0, +)
        if uid == 0 { return (open[0] ?? 0) < rootReserve + max(0, allUsers - users) }
        return (open[uid] ?? 0) < perUser && users < allUsers
    }
}

import CLinux
import Glibc
import Configuration
import LinuxSystem

/// Who is on the other end of a control connection (SO_PEERCRED), and what
/// groups that user is in, for `owner user:group` checks.
struct PeerCredentials {
    let pid: pid_t
    let uid: uid_t
    let gid: gid_t

    init(socket: FileDescriptor) throws {
        var (pid, uid, gid): (pid_t, uid_t, gid_t) = (0, 0, 0)
        try retryingInterrupts("getsockopt(SO_PEERCRED)") { vmd_peer_credentials(socket.rawValue, &pid, &uid, &gid) }
        (self.pid, self.uid, self.gid) = (pid, uid, gid)
    }

    var isRoot: Bool { uid == 0 }

    /// The peer's groups: its primary group and the supplementary ones of its user.
    var groups: [gid_t] {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return [gid] }
        var count: Int32 = 64
        var list = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &list, &count) < 0 {
            list = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, gid, &list, &count)
        }
        return Array(list.prefix(Int(max(count, 0)))) + [gid]
    }
}

/// A VM's `owner` resolved to ids once, when the VM is defined.
struct ResolvedOwner: Equatable {
    var uid: uid_t?
    var gid: gid_t?
    /// As `vmctl status` shows it.
    var display: String

    static let root = ResolvedOwner(uid: 0, gid: nil, display: "root")

    enum ResolutionError: Error, CustomStringConvertible {
        case unknownUser(String, ConfigLocation)
        case unknownGroup(String, ConfigLocation)

        var description: String {
            switch self {
            case .unknownUser(let name, let location): "\(location): owner: no user named \(name)"
            case .unknownGroup(let name, let location): "\(location): owner: no group named \(name)"
            }
        }
    }

    /// `owner user[:group]`, `owner :group`; names or numeric ids.
    static func resolve(_ owner: OwnerConfig?, at location: ConfigLocation) throws -> ResolvedOwner {
        guard let owner else { return .root }
        var resolved = ResolvedOwner(uid: nil, gid: nil, display: "")
        if let user = owner.user {
            if let id = uid_t(user) { resolved.uid = id } else if let entry = getpwnam(user) { resolved.uid = entry.pointee.pw_uid } else {
                throw ResolutionError.unknownUser(user, location)
            }
        }
        if let group = owner.group {
            if let id = gid_t(group) { resolved.gid = id } else if let entry = getgrnam(group) { resolved.gid = entry.pointee.gr_gid } else {
                throw ResolutionError.unknownGroup(group, location)
            }
        }
        resolved.display = (owner.user ?? "") + (owner.group.map { ":" + $0 } ?? "")
        return resolved
    }

    /// Root may do everything; the owning user, or a member of the owning group, may use the VM.
    func permits(_ peer: PeerCredentials) -> Bool {
        if peer.isRoot { return true }
        if let uid, uid == peer.uid { return true }
        if let gid, peer.groups.contains(gid) { return true }
        return false
    }
}

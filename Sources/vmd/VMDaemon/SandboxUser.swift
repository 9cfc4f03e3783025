import Glibc

/// The unprivileged user every child of vmd runs as once sandboxed (design §5):
/// `$VMD_USER` if set, else `_vmd` (made by scripts/setup), else `nobody`.
/// Children learn it through VMD_SANDBOX_UID/GID in their environment.
enum SandboxUser {
    static let preferred = "_vmd"
    static let fallback = "nobody"

    struct UnknownUser: Error, CustomStringConvertible {
        let name: String
        var description: String { "no user named \(name) to run VM processes as" }
    }

    @discardableResult
    static func configure() throws -> (name: String, uid: uid_t, gid: gid_t) {
        let requested = getenv("VMD_USER").map { String(cString: $0) }
        let candidates = requested.map { [$0] } ?? [preferred, fallback]
        for name in candidates {
            guard let entry = getpwnam(name) else { continue }
            let (uid, gid) = (entry.pointee.pw_uid, entry.pointee.pw_gid)
            setenv("VMD_SANDBOX_UID", String(uid), 1)
            setenv("VMD_SANDBOX_GID", String(gid), 1)
            return (name, uid, gid)
        }
        throw UnknownUser(name: candidates.joined(separator: " or "))
    }
}

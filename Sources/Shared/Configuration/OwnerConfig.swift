/// `owner user[:group]` or `owner :group` of a vm block: who may control the
/// VM with vmctl besides root. Names or numeric ids, kept as written; the
/// daemon resolves them (the parser never reads the user database).
public struct OwnerConfig: Equatable, Sendable {
    /// At least one of `user` and `group` is set.
    public var user: String?
    public var group: String?

    public init(user: String?, group: String? = nil) {
        self.user = user
        self.group = group
    }

    /// Longest user or group name accepted (useradd's limit on Linux).
    static let maxNameLength = 32

    /// Parses the value token of `owner`.
    static func parse(_ token: ConfigToken) throws(ConfigError) -> OwnerConfig {
        let expected = "expected user, user:group or :group after 'owner', found \(token.description)"
        guard let text = token.text, !text.isEmpty else {
            throw ConfigError(location: token.location, message: expected)
        }
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let user = parts[0]
        let group = parts.count > 1 ? parts[1] : nil
        if group != nil, user.isEmpty, group!.isEmpty {
            throw ConfigError(location: token.location, message: expected)
        }
        if let group, group.isEmpty {
            throw ConfigError(location: token.location, message: "missing group after ':' in owner '\(text)'; write \(user) or \(user):group")
        }
        if !user.isEmpty { try checkName(user, kind: "user", in: text, at: token) }
        if let group { try checkName(group, kind: "group", in: text, at: token) }
        return OwnerConfig(user: user.isEmpty ? nil : user, group: group)
    }

    /// Portable names (letters, digits, '.', '_', '-', not starting with '-')
    /// or a numeric id other than (uid_t)-1, which chown(2) reads as "no change".
    private static func checkName(_ name: String, kind: String, in text: String, at token: ConfigToken) throws(ConfigError) {
        let scalars = name.unicodeScalars
        if scalars.allSatisfy({ ("0"..."9").contains($0) }) {
            guard let id = UInt32(name), id != UInt32.max else {
                throw ConfigError(location: token.location, message: "\(kind) id \(name) in owner '\(text)' is out of range (0 to \(UInt32.max - 1))")
            }
            return
        }
        let allowed = scalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-"
        }
        guard allowed, scalars.first != "-", scalars.count <= maxNameLength else {
            throw ConfigError(
                location: token.location,
                message: "invalid \(kind) name '\(name)' in owner '\(text)': use 1-\(maxNameLength) letters, digits, '.', '_' or '-', not starting with '-', or a numeric id")
        }
    }
}

/// Path handling of `include "path"`.
enum ConfigIncludePath {
    /// `include` nests at most this deep. Loops are caught by path before
    /// this; the limit catches the ones a lexical path comparison cannot see
    /// (through symlinks or hard links).
    static let maximumDepth = 16

    /// A relative path is taken relative to the directory of the including
    /// file, as the `file` of its locations names it. `.` components and
    /// repeated slashes are dropped, so messages show `vm.d/a.conf`, not
    /// `./vm.d//a.conf`; `..` is kept because only the kernel knows what it
    /// means past a symlink.
    static func resolve(_ path: String, relativeTo includingFile: String) -> String {
        var joined = path
        if !path.hasPrefix("/"), let slash = includingFile.lastIndex(of: "/") {
            joined = String(includingFile[...slash]) + path
        }
        let components = joined.split(separator: "/").filter { $0 != "." }
        let cleaned = (joined.hasPrefix("/") ? "/" : "") + components.joined(separator: "/")
        return cleaned.isEmpty ? "." : cleaned
    }

    /// The key by which include loops are found: `resolve`'s result with `..`
    /// also folded lexically (`vm.d/../a.conf` is `a.conf`).
    static func loopKey(_ resolved: String) -> String {
        var components: [Substring] = []
        for component in resolved.split(separator: "/") {
            if component == "..", let last = components.last, last != ".." {
                components.removeLast()
            } else if component == "..", resolved.hasPrefix("/") {
                continue  // "/.." is "/"
            } else {
                components.append(component)
            }
        }
        return (resolved.hasPrefix("/") ? "/" : "") + components.joined(separator: "/")
    }
}

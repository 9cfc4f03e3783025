import Glibc
import LinuxSystem

/// Where vmd puts its VMs' cgroups (cgroup v2), set up before each VM's cgroup is made.
///
/// vmd's subtree is its own cgroup when systemd delegated one (vmd.service has
/// `Delegate=yes`): vmd moves itself into the leaf `vmd-daemon` of it, since a cgroup with
/// controllers enabled for its children may hold no process itself. When vmd runs in the
/// root cgroup (an init without systemd, a shell), the subtree is `vmd-PID` under the
/// root, made here and removed with its last VM. Each VM's cgroup is `vm-NAME` in it.
struct CgroupHierarchy {
    /// The controllers vmd enables for its VMs where the kernel has them.
    static let wanted = ["cpu", "memory", "io", "pids"]
    static let daemonLeaf = "vmd-daemon"

    /// Absolute path of the subtree.
    let subtree: String
    /// True when the subtree is `vmd-PID` under the root, vmd's to remove.
    let ownsSubtree: Bool
    /// What the VM cgroups may use (the subtree's cgroup.subtree_control).
    let controllers: Set<String>

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    /// The cgroup2 mount point in /proc/self/mountinfo text: /sys/fs/cgroup if it is one,
    /// else the first (a hybrid host mounts it at /sys/fs/cgroup/unified).
    static func cgroup2Mount(mountinfo: String) -> String? {
        var mounts: [String] = []
        for line in mountinfo.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields[dash + 1] == "cgroup2",
                  fields.count > 4, fields[3] == "/" else { continue }
            mounts.append(String(fields[4]))
        }
        return mounts.first { $0 == "/sys/fs/cgroup" } ?? mounts.first
    }

    /// The process's cgroup v2 path in /proc/self/cgroup text (the "0::PATH" line).
    static func ownPath(procCgroup: String) -> String? {
        for line in procCgroup.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }

    /// The controllers VM cgroups could have here, without changing anything (`vmd -n`): those
    /// of the root, or of vmd's own cgroup when it is not the root; or why there are none.
    static func probe() -> Result<Set<String>, Unavailable> {
        locate().map { mount, own in
            CgroupFiles.words((own == "/" ? mount : mount + own) + "/cgroup.controllers").intersection(wanted)
        }
    }

    /// The cgroup2 mount and this process's path in it.
    private static func locate() -> Result<(mount: String, own: String), Unavailable> {
        guard let mountinfo = CgroupFiles.read("/proc/self/mountinfo"), let mount = cgroup2Mount(mountinfo: mountinfo) else {
            return .failure(Unavailable(description: "this host has no cgroup v2 hierarchy mounted"))
        }
        guard let own = CgroupFiles.read("/proc/self/cgroup").flatMap(ownPath) else {
            return .failure(Unavailable(description: "/proc/self/cgroup names no cgroup v2 path"))
        }
        return .success((mount, own))
    }

    /// Finds the hierarchy and makes the subtree ready, controllers enabled; or says why
    /// there is none.
    static func prepare() -> Result<CgroupHierarchy, Unavailable> {
        let mount: String, own: String
        switch locate() {
        case .success(let found): (mount, own) = found
        case .failure(let unavailable): return .failure(unavailable)
        }
        do {
            if own == "/" {
                removeStaleSubtrees(in: mount)
                let subtree = mount + "/vmd-\(getpid())"
                try makeDirectory(subtree)
                enableControllers(in: mount)
                return .success(CgroupHierarchy(subtree: subtree, ownsSubtree: true, controllers: enableControllers(in: subtree)))
            }
            // Delegated: the subtree is vmd's own cgroup, or its parent once vmd moved into the leaf.
            let ownPath = mount + own
            let subtree = own.hasSuffix("/" + daemonLeaf) ? String(ownPath.dropLast(daemonLeaf.count + 1)) : ownPath
            if !own.hasSuffix("/" + daemonLeaf) {
                try makeDirectory(subtree + "/" + daemonLeaf)
                try CgroupFiles.write("0", to: subtree + "/" + daemonLeaf + "/cgroup.procs")
            }
            return .success(CgroupHierarchy(subtree: subtree, ownsSubtree: false, controllers: enableControllers(in: subtree)))
        } catch {
            return .failure(Unavailable(description: "cgroup v2 at \(mount) cannot be used: \(error)"))
        }
    }

    /// Enables each wanted controller the cgroup has for its children, one at a time (one
    /// refused does not stop the others); returns those enabled.
    @discardableResult
    private static func enableControllers(in path: String) -> Set<String> {
        let available = CgroupFiles.words(path + "/cgroup.controllers")
        for controller in wanted where available.contains(controller) {
            try? CgroupFiles.write("+\(controller)", to: path + "/cgroup.subtree_control")
        }
        return CgroupFiles.words(path + "/cgroup.subtree_control")
    }

    static func makeDirectory(_ path: String) throws(SystemError) {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw SystemError("mkdir \(path)", errno: errno) }
    }

    /// `vmd-PID` subtrees of vmds that are gone (killed before they removed them): their
    /// cgroups are empty, since a VM's processes die with their vmd.
    private static func removeStaleSubtrees(in mount: String) {
        guard let directory = opendir(mount) else { return }
        var stale: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("vmd-"), let pid = pid_t(name.dropFirst(4)), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            stale.append(mount + "/" + name)
        }
        closedir(directory)
        for path in stale {
            for child in subdirectories(of: path) { rmdir(path + "/" + child) }
            rmdir(path)
        }
    }

    static func subdirectories(of path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if entry.pointee.d_type == UInt8(DT_DIR), name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// After a VM's cgroup went: the subtree too, if vmd made it and no VM is left in it.
    func removeSubtreeIfEmpty() {
        if ownsSubtree, Self.subdirectories(of: subtree).isEmpty { rmdir(subtree) }
    }
}

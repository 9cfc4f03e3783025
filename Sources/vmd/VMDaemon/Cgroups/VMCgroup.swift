import Configuration
import Glibc
import LinuxSystem

/// The cgroup of one VM's processes (`CgroupHierarchy`): made before they start, each
/// process moved in right after it is spawned (before it is sent anything, so before it
/// touches guest RAM, whose pages are charged to the cgroup that first touches them), the
/// limits written, and removed once they are all reaped.
final class VMCgroup {
    let path: String
    let hierarchy: CgroupHierarchy
    let limits: CgroupLimits
    /// The cgroup's directory, for starting processes right inside it (ChildProcess).
    let directory: FileDescriptor?

    enum Failure: Error, CustomStringConvertible {
        /// A limit needs a controller this host cannot give.
        case unavailable(statement: String, reason: String)
        case failed(String)

        var description: String {
            switch self {
            case .unavailable(let statement, let reason): "\(statement) cannot be enforced: \(reason)"
            case .failed(let what): what
            }
        }
    }

    /// The VM's cgroup, with `limits` written; nil when there is no usable hierarchy and the
    /// VM has no limit (it then runs without a cgroup of its own, as before cgroups).
    static func make(vmName: String, limits: CgroupLimits) throws(Failure) -> VMCgroup? {
        let hierarchy: CgroupHierarchy
        switch CgroupHierarchy.prepare() {
        case .success(let prepared):
            hierarchy = prepared
        case .failure(let unavailable):
            if let first = limits.controllers.first {
                throw .unavailable(statement: first.statement, reason: unavailable.description)
            }
            return nil
        }
        for (controller, statement) in limits.controllers where !hierarchy.controllers.contains(controller) {
            hierarchy.removeSubtreeIfEmpty()
            throw .unavailable(statement: statement, reason: "the \(controller) controller is not available to vmd's cgroups at "
                               + "\(hierarchy.subtree) (it is bound to a cgroup v1 hierarchy, or not delegated)")
        }
        let path = hierarchy.subtree + "/vm-" + vmName
        // A cgroup left by a run of this VM whose processes are all gone is empty: remove it.
        rmdir(path)
        do {
            try CgroupHierarchy.makeDirectory(path)
            for (file, contents) in limits.files { try CgroupFiles.write(contents, to: path + "/" + file) }
        } catch {
            rmdir(path)
            hierarchy.removeSubtreeIfEmpty()
            throw .failed("cgroup \(path): \(error)")
        }
        return VMCgroup(path: path, hierarchy: hierarchy, limits: limits)
    }

    private init(path: String, hierarchy: CgroupHierarchy, limits: CgroupLimits) {
        self.path = path
        self.hierarchy = hierarchy
        self.limits = limits
        // Without it, processes are moved in through cgroup.procs (`add`), as on old kernels.
        directory = try? FileDescriptor.open(path, flags: O_RDONLY | O_DIRECTORY)
    }

    func add(_ pid: pid_t) throws(Failure) {
        do {
            try CgroupFiles.write("\(pid)", to: path + "/cgroup.procs")
        } catch {
            throw .failed("moving pid \(pid) into cgroup \(path): \(error)")
        }
    }

    /// Processes the kernel killed because the VM went over its memory limit.
    var outOfMemoryKills: UInt64 {
        CgroupFiles.read(path + "/memory.events").flatMap { CgroupFiles.value(of: "oom_kill", in: $0) } ?? 0
    }

    /// Once every process is reaped. A cgroup may stay busy for a moment after its last
    /// process is reaped (the kernel frees it asynchronously): a few tries, then left.
    func remove() {
        for attempt in 0..<20 {
            if rmdir(path) == 0 || errno == ENOENT { break }
            if attempt < 19 { usleep(5_000) }
        }
        hierarchy.removeSubtreeIfEmpty()
    }
}

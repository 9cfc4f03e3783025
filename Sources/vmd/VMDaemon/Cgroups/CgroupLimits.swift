import Configuration

/// What vm.conf's `cpu limit`, `memory limit` and the disks' `io limit` become in a VM's
/// cgroup (cgroup v2): each file with what is written into it. Pure: vmd writes them
/// (`VMCgroup.apply`).
struct CgroupLimits: Equatable {
    /// cpu.max's period: 100 ms, the kernel's default.
    static let cpuPeriodMicroseconds = 100_000

    var cpuPercent: Int?
    var memoryBytes: UInt64?
    /// io.max per device. Disks on one device share its line: the smallest of each value.
    var io: [BlockDeviceNumber: DiskIOLimit] = [:]

    init(cpuPercent: Int? = nil, memoryBytes: UInt64? = nil) {
        self.cpuPercent = cpuPercent
        self.memoryBytes = memoryBytes
    }

    init(config: VMConfig) {
        self.init(cpuPercent: config.cpuLimitPercent, memoryBytes: config.memoryLimitBytes)
    }

    var isEmpty: Bool { cpuPercent == nil && memoryBytes == nil && io.isEmpty }

    mutating func addIO(_ limit: DiskIOLimit, device: BlockDeviceNumber) {
        guard !limit.isUnlimited else { return }
        let old = io[device] ?? DiskIOLimit()
        func smaller(_ a: UInt64?, _ b: UInt64?) -> UInt64? { [a, b].compactMap { $0 }.min() }
        io[device] = DiskIOLimit(bytesPerSecond: smaller(old.bytesPerSecond, limit.bytesPerSecond),
                                 operationsPerSecond: smaller(old.operationsPerSecond, limit.operationsPerSecond))
    }

    /// The controllers these limits need, each with the statement that needs it.
    var controllers: [(controller: String, statement: String)] {
        var needed: [(String, String)] = []
        if cpuPercent != nil { needed.append(("cpu", "cpu limit")) }
        if memoryBytes != nil { needed.append(("memory", "memory limit")) }
        if !io.isEmpty { needed.append(("io", "io limit")) }
        return needed
    }

    /// The files to write, in order. A memory limit kills the whole VM at once when it is
    /// hit (memory.oom.group): a VM missing one of its processes is no use.
    var files: [(file: String, contents: String)] {
        var files: [(String, String)] = []
        if let cpuPercent {
            files.append(("cpu.max", "\(cpuPercent * Self.cpuPeriodMicroseconds / 100) \(Self.cpuPeriodMicroseconds)"))
        }
        if let memoryBytes {
            files.append(("memory.max", "\(memoryBytes)"))
            files.append(("memory.oom.group", "1"))
        }
        for (device, limit) in io.sorted(by: { ($0.key.major, $0.key.minor) < ($1.key.major, $1.key.minor) }) {
            var line = "\(device)"
            if let bytes = limit.bytesPerSecond { line += " rbps=\(bytes) wbps=\(bytes)" }
            if let operations = limit.operationsPerSecond { line += " riops=\(operations) wiops=\(operations)" }
            files.append(("io.max", line))
        }
        return files
    }
}

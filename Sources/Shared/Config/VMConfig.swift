/// One `vm "name" { ... }` block after parsing and validation.
public struct VMConfig: Equatable, Sendable {
    public var name: String
    /// Guest RAM in bytes; a whole number of MiB within `allowedMemoryBytes`.
    public var memoryBytes: UInt64
    public var cpus: Int
    /// The kernel path exactly as written; the caller resolves relative paths
    /// (against the config file's directory or the working directory, its choice).
    public var boot: String?
    public var cmdline: String
    public var disks: [DiskConfig]
    /// Where the `vm` keyword of this block is.
    public var location: ConfigLocation

    public init(
        name: String,
        memoryBytes: UInt64 = VMConfig.defaultMemoryBytes,
        cpus: Int = VMConfig.defaultCPUs,
        boot: String?,
        cmdline: String = "",
        disks: [DiskConfig] = [],
        location: ConfigLocation
    ) {
        self.name = name
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.boot = boot
        self.cmdline = cmdline
        self.disks = disks
        self.location = location
    }

    /// 512 MiB, vmd's default when `memory` is absent.
    public static let defaultMemoryBytes: UInt64 = 512 << 20
    public static let defaultCPUs = 1
    /// 2 MiB is the least that holds our boot structures and a small kernel;
    /// 64 GiB bounds a typo such as 640G before vmd tries to allocate it.
    public static let allowedMemoryBytes: ClosedRange<UInt64> = (2 << 20)...(64 << 30)
    public static let allowedCPUs: ClosedRange<Int> = 1...64
    /// Names appear in vmctl output, log lines and file names, hence the charset.
    public static let maxNameLength = 64
}

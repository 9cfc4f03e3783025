/// One `vm "name" { ... }` block after parsing and validation.
public struct VMConfig: Equatable, Sendable {
    public var name: String
    /// Guest RAM in bytes; a whole number of MiB within `allowedMemoryBytes`.
    public var memoryBytes: UInt64
    public var cpus: Int
    /// The kernel path exactly as written; the caller resolves relative paths
    /// (against the config file's directory or the working directory, its choice).
    public var boot: String?
    /// `boot device disk`: boot through the BIOS from the first disk instead of a kernel.
    public var bootDevice: BootDevice?
    /// `firmware "path"`: the BIOS image for `boot device`; nil is SeaBIOS from Debian's package.
    public var firmware: String?
    public var cmdline: String
    public var disks: [DiskConfig]
    /// `owner`: the user and/or group allowed to control this VM; nil is root only.
    public var owner: OwnerConfig?
    /// False after `disable`: vmd does not boot this VM at startup (nor does a
    /// `vmctl start` that names no VM); it can still be started by name.
    public var enabled: Bool
    /// `initrd`: an initial ramdisk loaded with the kernel, path as written.
    public var initrd: String?
    /// `interface` and `local interface` statements in file order, at most
    /// `InterfaceConfig.maximumPerVM`.
    public var interfaces: [InterfaceConfig]
    /// `entropy`: a virtio-rng device, so the guest has entropy from its first boot.
    public var entropy: Bool = false
    /// `cpu limit N%`: the CPU time the VM's processes may use, in percent of one core
    /// (cgroup v2 cpu.max); nil for no limit.
    public var cpuLimitPercent: Int?
    /// `memory limit SIZE`: what the VM's processes may use, guest RAM included (cgroup v2
    /// memory.max); nil for no limit.
    public var memoryLimitBytes: UInt64?
    /// Where the `vm` keyword of this block is.
    public var location: ConfigLocation
    /// Where each option's keyword was first written ("owner", "boot", ...), so that an
    /// error about a value found later (an unknown user, a missing kernel) names its line.
    /// Not part of the VM's value: equality ignores it.
    public var optionLocations: [String: ConfigLocation] = [:]

    /// Where `option` was written, else the `vm` keyword.
    public func location(of option: String) -> ConfigLocation { optionLocations[option] ?? location }

    public init(
        name: String,
        memoryBytes: UInt64 = VMConfig.defaultMemoryBytes,
        cpus: Int = VMConfig.defaultCPUs,
        boot: String?,
        cmdline: String = "",
        disks: [DiskConfig] = [],
        owner: OwnerConfig? = nil,
        enabled: Bool = true,
        initrd: String? = nil,
        interfaces: [InterfaceConfig] = [],
        location: ConfigLocation
    ) {
        self.name = name
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.boot = boot
        self.cmdline = cmdline
        self.disks = disks
        self.owner = owner
        self.enabled = enabled
        self.initrd = initrd
        self.interfaces = interfaces
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
    /// The kernel command line, NUL excluded: Linux's COMMAND_LINE_SIZE on x86 is 2048
    /// with the NUL (and a bzImage's own cmdline_size may be lower; vm checks that too).
    public static let maximumCommandLineBytes = 2047

    public static func == (a: VMConfig, b: VMConfig) -> Bool {
        a.name == b.name && a.memoryBytes == b.memoryBytes && a.cpus == b.cpus && a.boot == b.boot && a.cmdline == b.cmdline
            && a.disks == b.disks && a.owner == b.owner && a.enabled == b.enabled && a.initrd == b.initrd
            && a.interfaces == b.interfaces && a.entropy == b.entropy && a.location == b.location
            && a.bootDevice == b.bootDevice && a.firmware == b.firmware
    }
}

/// What `boot device` names (vm.conf(5)). OpenBSD's vmd also has cdrom and net;
/// swift-vmd has neither a CD-ROM drive nor a network boot ROM.
public enum BootDevice: String, Equatable, Sendable {
    case disk
}

/// The options of one vm block as they are read, before defaults and the
/// whole-block checks (`boot` present) are applied.
struct VMBlockBuilder {
    let name: String
    /// The `vm` keyword; whole-block errors point here.
    let location: ConfigLocation
    var memoryBytes: UInt64?
    var cpus: Int?
    var boot: String?
    var bootDevice: BootDevice?
    var firmware: String?
    var cmdline: String?
    var disks: [DiskConfig] = []
    var owner: OwnerConfig?
    var enabled: Bool?
    var initrd: String?
    var interfaces: [InterfaceConfig] = []
    var entropy = false
    var cpuLimitPercent: Int?
    var memoryLimitBytes: UInt64?
    /// Where each option was first given, for "given twice" messages.
    var optionsSeen: [String: ConfigLocation] = [:]

    init(name: String, location: ConfigLocation) {
        self.name = name
        self.location = location
    }

    func build() throws(ConfigError) -> VMConfig {
        guard boot != nil || bootDevice != nil else {
            throw ConfigError(location: location,
                              message: "vm \"\(name)\" has no 'boot' option; add boot \"path/to/kernel\" or boot device disk")
        }
        if bootDevice != nil {
            let bootLocation = optionsSeen["boot"] ?? location
            guard !disks.isEmpty else {
                throw ConfigError(location: bootLocation, message: "boot device disk needs a disk; add disk \"path/to/image\"")
            }
            // The boot loader on the disk picks the kernel, its command line and initrd.
            for option in ["cmdline", "initrd"] {
                if let given = optionsSeen[option] {
                    throw ConfigError(location: given,
                                      message: "'\(option)' needs a kernel to boot; with boot device disk the disk's boot loader chooses it")
                }
            }
        } else if let given = optionsSeen["firmware"] {
            throw ConfigError(location: given, message: "'firmware' is for boot device disk; a kernel given by 'boot' starts without one")
        }
        let vcpus = cpus ?? VMConfig.defaultCPUs
        if let percent = cpuLimitPercent, percent > vcpus * 100 {
            throw ConfigError(location: optionsSeen["cpu limit"] ?? location,
                              message: "cpu limit \(percent)% is more than \(vcpus) vCPU\(vcpus == 1 ? "" : "s") can use (\(vcpus * 100)%)")
        }
        var config = VMConfig(
            name: name,
            memoryBytes: memoryBytes ?? VMConfig.defaultMemoryBytes,
            cpus: cpus ?? VMConfig.defaultCPUs,
            boot: boot,
            cmdline: cmdline ?? "",
            disks: disks,
            owner: owner,
            enabled: enabled ?? true,
            initrd: initrd,
            interfaces: interfaces,
            location: location
        )
        config.entropy = entropy
        config.cpuLimitPercent = cpuLimitPercent
        config.memoryLimitBytes = memoryLimitBytes
        config.bootDevice = bootDevice
        config.firmware = firmware
        config.optionLocations = optionsSeen
        return config
    }
}

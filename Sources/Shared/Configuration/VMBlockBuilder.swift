/// The options of one vm block as they are read, before defaults and the
/// whole-block checks (`boot` present) are applied.
struct VMBlockBuilder {
    let name: String
    /// The `vm` keyword; whole-block errors point here.
    let location: ConfigLocation
    var memoryBytes: UInt64?
    var cpus: Int?
    var boot: String?
    var cmdline: String?
    var disks: [DiskConfig] = []
    var owner: OwnerConfig?
    var enabled: Bool?
    var initrd: String?
    var interfaces: [InterfaceConfig] = []
    var entropy = false
    /// Where each option was first given, for "given twice" messages.
    var optionsSeen: [String: ConfigLocation] = [:]

    init(name: String, location: ConfigLocation) {
        self.name = name
        self.location = location
    }

    func build() throws(ConfigError) -> VMConfig {
        // vmd can start a vm without a kernel (it boots from disk); we have no
        // BIOS, so a kernel is required until disks can be booted.
        guard let boot else {
            throw ConfigError(location: location, message: "vm \"\(name)\" has no 'boot' option; add boot \"path/to/kernel\"")
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
        config.optionLocations = optionsSeen
        return config
    }
}

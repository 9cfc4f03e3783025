import LinuxSystem

/// The table of options allowed inside a `vm { }` block. Adding an option
/// (disk, interface, owner, initrd, enable/disable) is one entry here plus a
/// field in `VMBlockBuilder`; the block loop, duplicate detection, statement
/// ends and the "expected one of" list follow from the table.
struct VMOption: Sendable {
    typealias Parse = @Sendable (
        _ tokens: inout ConfigTokenStream,
        _ block: inout VMBlockBuilder,
        _ keyword: ConfigToken
    ) throws(ConfigError) -> Void

    let name: String
    /// `disk`, `interface` and `local` (interface) are repeatable; scalar options are not.
    let repeatable: Bool
    /// Reads the option's arguments (not the keyword, not the statement end).
    let parse: Parse

    static let all: [VMOption] = [
        VMOption(name: "memory", repeatable: false, parse: parseMemory),
        VMOption(name: "cpus", repeatable: false, parse: parseCPUs),
        VMOption(name: "cpu", repeatable: false, parse: ResourceLimitOption.parseCPULimit),
        VMOption(name: "boot", repeatable: false, parse: parseBoot),
        VMOption(name: "cmdline", repeatable: false, parse: parseCmdline),
        VMOption(name: "disk", repeatable: true, parse: parseDisk),
        VMOption(name: "initrd", repeatable: false, parse: parseInitrd),
        VMOption(name: "owner", repeatable: false, parse: parseOwner),
        VMOption(name: "enable", repeatable: false, parse: parseEnable),
        VMOption(name: "disable", repeatable: false, parse: parseDisable),
        VMOption(name: "interface", repeatable: true, parse: parseInterface),
        VMOption(name: "local", repeatable: true, parse: parseLocalInterface),
        VMOption(name: "entropy", repeatable: false, parse: parseEntropy),
        VMOption(name: "firmware", repeatable: false, parse: parseFirmware),
    ]

    static let byName: [String: VMOption] = Dictionary(
        all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

    /// "boot, cmdline, cpu limit, cpus, ..."; `local` and `cpu` show as what they start.
    static let namesForMessages: String = all.map { ["local": "local interface", "cpu": "cpu limit"][$0.name] ?? $0.name }
        .sorted().joined(separator: ", ")

    // MARK: - Option parsers

    /// `memory SIZE` (guest RAM) or `memory limit SIZE` (`ResourceLimitOption`).
    @Sendable private static func parseMemory(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        if try tokens.peek().kind == .word("limit") {
            _ = try tokens.next()
            block.memoryLimitBytes = try ResourceLimitOption.memoryLimit(try tokens.next())
            return
        }
        let value = try tokens.next()
        block.memoryBytes = try ConfigValues.memorySize(value)
    }

    @Sendable private static func parseCPUs(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let value = try tokens.next()
        block.cpus = try ConfigValues.cpuCount(value)
    }

    /// `boot "path"` (a kernel) or `boot device disk` (the BIOS, then the disk's boot loader).
    /// A kernel file named device is written quoted: `boot "device"`.
    @Sendable private static func parseBoot(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let value = try tokens.next()
        if value.kind == .word("device") {
            let device = try tokens.next()
            guard let name = device.text else {
                throw ConfigError(location: device.location, message: "expected 'disk' after 'boot device', found \(device.description)")
            }
            guard let bootDevice = BootDevice(rawValue: name) else {
                let why = ["cdrom", "net"].contains(name) ? "swift-vmd has no \(name == "net" ? "network boot ROM" : "CD-ROM drive")" : "not a boot device"
                throw ConfigError(location: device.location, message: "boot device \(name): \(why); the one supported is 'disk'")
            }
            block.bootDevice = bootDevice
            return
        }
        guard let path = value.text else {
            throw ConfigError(location: value.location, message: "expected a kernel path after 'boot', found \(value.description)")
        }
        guard !path.isEmpty else {
            throw ConfigError(location: value.location, message: "boot path must not be empty")
        }
        block.boot = path
    }

    @Sendable private static func parseCmdline(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let value = try tokens.next()
        guard let cmdline = value.text else {
            throw ConfigError(location: value.location, message: "expected a kernel command line after 'cmdline', found \(value.description)")
        }
        let length = cmdline.utf8.count
        guard length <= VMConfig.maximumCommandLineBytes else {
            throw ConfigError(location: value.location,
                              message: "kernel command line of \(length) bytes is longer than the boot protocol's \(VMConfig.maximumCommandLineBytes)")
        }
        block.cmdline = cmdline
    }

    /// `disk "path" [format raw|qcow2] [readonly] [cache none|writeback] [{ limits }]`
    /// (vm.conf(5)); at most four per vm.
    @Sendable private static func parseDisk(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let value = try tokens.next()
        guard let path = value.text, !path.isEmpty else {
            throw ConfigError(location: value.location, message: "expected a disk image path after 'disk', found \(value.description)")
        }
        guard block.disks.count < DiskConfig.maximumPerVM else {
            throw ConfigError(location: keyword.location, message: "too many disks; at most \(DiskConfig.maximumPerVM) per vm")
        }
        var disk = DiskConfig(path: path, location: keyword.location)
        var seen: Set<String> = []
        while case .word(let word) = try tokens.peek().kind {
            let token = try tokens.next()
            guard seen.insert(word).inserted else {
                throw ConfigError(location: token.location, message: "'\(word)' given twice for this disk")
            }
            switch word {
            case "readonly":
                disk.readOnly = true
            case "format":
                let formatToken = try tokens.next()
                guard let name = formatToken.text, let format = DiskConfig.Format(rawValue: name) else {
                    throw ConfigError(location: formatToken.location, message: "expected a disk format after 'format' (supported: raw, qcow2), found \(formatToken.description)")
                }
                disk.format = format
            case "cache":
                let cacheToken = try tokens.next()
                guard let name = cacheToken.text, let cache = DiskConfig.Cache(rawValue: name) else {
                    throw ConfigError(location: cacheToken.location, message: "expected a cache mode after 'cache' (none or writeback), found \(cacheToken.description)")
                }
                disk.cache = cache
            default:
                var message = "expected 'format', 'readonly', 'cache', '{' or end of line after the disk path, found '\(word)'"
                if word == "bandwidth" || word == "ops" { message += " (limits go in a block: disk \"path\" { \(word) ... })" }
                throw ConfigError(location: token.location, message: message)
            }
        }
        if try tokens.peek().kind == .openBrace {
            // `{ bandwidth ...; ops ... }`, each at most once (`RateLimitOption`),
            // and `io limit ...` (`ResourceLimitOption`).
            try ConfigBraceBlock.parse(&tokens, open: try tokens.next(), of: "disk", keywords: ["bandwidth", "ops", "io"]) {
                (keyword, word, tokens) throws(ConfigError) in
                if word == "io" {
                    disk.ioLimit = try ResourceLimitOption.parseIOLimit(keyword, &tokens)
                } else {
                    try RateLimitOption.parse(keyword, operations: "ops", &tokens, into: &disk.rateLimit)
                }
            }
        }
        block.disks.append(disk)
    }

    @Sendable private static func parseFirmware(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let value = try tokens.next()
        guard let path = value.text, !path.isEmpty else {
            throw ConfigError(location: value.location, message: "expected a BIOS image path after 'firmware', found \(value.description)")
        }
        block.firmware = path
    }

    @Sendable private static func parseInitrd(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let value = try tokens.next()
        guard let path = value.text, !path.isEmpty else {
            throw ConfigError(location: value.location, message: "expected an initrd path after 'initrd', found \(value.description)")
        }
        block.initrd = path
    }

    @Sendable private static func parseOwner(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        block.owner = try OwnerConfig.parse(try tokens.next())
    }

    /// `enable` / `disable`: whether vmd boots the vm at startup (vm.conf(5):
    /// enabled unless `disable` is given). The two exclude each other.
    /// `entropy`: no arguments; a virtio-rng device for the guest.
    @Sendable private static func parseEntropy(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        block.entropy = true
    }

    @Sendable private static func parseEnable(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        try setEnabled(true, &block, keyword)
    }

    @Sendable private static func parseDisable(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        try setEnabled(false, &block, keyword)
    }

    private static func setEnabled(_ enabled: Bool, _ block: inout VMBlockBuilder, _ keyword: ConfigToken) throws(ConfigError) {
        let other = enabled ? "disable" : "enable"
        if let first = block.optionsSeen[other] {
            throw ConfigError(location: keyword.location, message: "'\(enabled ? "enable" : "disable")' contradicts '\(other)' at line \(first.line); give one of them")
        }
        block.enabled = enabled
    }
}

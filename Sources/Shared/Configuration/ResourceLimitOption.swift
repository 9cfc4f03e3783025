/// The cgroup limits of a vm block (vm.conf(5)), which vmd applies to the cgroup of the
/// VM's processes:
///
///     "cpu" "limit" N%                      cpu.max: N% of one core, 1% to 100% per vCPU
///     "memory" "limit" size                 memory.max: guest RAM and the processes
///     disk ... { "io" "limit" [size] ["ops" count] }   io.max on the image's device
enum ResourceLimitOption {
    /// The smallest `memory limit`: below it the processes cannot even start.
    static let minimumMemoryLimit: UInt64 = 16 << 20

    @Sendable static func parseCPULimit(_ tokens: inout ConfigTokenStream, _ block: inout VMBlockBuilder,
                                        _ keyword: ConfigToken) throws(ConfigError) {
        let limit = try tokens.next()
        guard limit.kind == .word("limit") else {
            throw ConfigError(location: limit.location, message: "expected 'limit' after 'cpu' (cpu limit 150%), found \(limit.description)")
        }
        let value = try tokens.next()
        guard let text = value.text, text.hasSuffix("%"), let percent = Int(text.dropLast()), percent >= 1 else {
            throw ConfigError(location: value.location,
                              message: "expected a percentage of one core such as 150% after 'cpu limit', found \(value.description)")
        }
        guard percent <= 100 * VMConfig.allowedCPUs.upperBound else {
            throw ConfigError(location: value.location, message: "cpu limit \(text) is more than \(VMConfig.allowedCPUs.upperBound) vCPUs can use")
        }
        block.cpuLimitPercent = percent
    }

    /// The size after `memory limit`.
    static func memoryLimit(_ value: ConfigToken) throws(ConfigError) -> UInt64 {
        guard let text = value.text, let parsed = ConfigValues.parseSize(text) else {
            throw ConfigError(location: value.location, message: "expected a size such as 1G after 'memory limit', found \(value.description)")
        }
        guard let bytes = parsed, bytes >= minimumMemoryLimit else {
            throw ConfigError(location: value.location,
                              message: parsed == nil ? "memory limit '\(text)' is too large"
                                  : "memory limit must be at least \(ConfigValues.formatSize(minimumMemoryLimit)), found '\(text)'")
        }
        return bytes
    }

    /// `io limit [SIZE] [ops N]` in a disk's block, after `io`.
    static func parseIOLimit(_ keyword: ConfigToken, _ tokens: inout ConfigTokenStream) throws(ConfigError) -> DiskIOLimit {
        let limit = try tokens.next()
        guard limit.kind == .word("limit") else {
            throw ConfigError(location: limit.location, message: "expected 'limit' after 'io' (io limit 50M ops 1000), found \(limit.description)")
        }
        var result = DiskIOLimit()
        if let text = try tokens.peek().text, text != "ops" {
            let value = try tokens.next()
            guard let parsed = ConfigValues.parseSize(text), let bytes = parsed, bytes > 0 else {
                throw ConfigError(location: value.location,
                                  message: "expected a size such as 50M (bytes per second) after 'io limit', found \(value.description)")
            }
            result.bytesPerSecond = bytes
        }
        if try tokens.peek().kind == .word("ops") {
            _ = try tokens.next()
            let value = try tokens.next()
            guard let text = value.text, let count = UInt64(text), count > 0 else {
                throw ConfigError(location: value.location,
                                  message: "expected a whole number of operations per second such as 1000 after 'ops', found \(value.description)")
            }
            result.operationsPerSecond = count
        }
        guard !result.isUnlimited else {
            throw ConfigError(location: limit.location, message: "'io limit' needs a size (bytes per second), 'ops N', or both")
        }
        return result
    }
}

/// A whole configuration: its vm blocks in file order (those of included
/// files where the `include` is) and the global settings.
public struct ConfigFile: Equatable, Sendable {
    public var vms: [VMConfig]
    /// `local prefix`: where the addresses of `local interface`s come from.
    public var localPrefix: IPv4Prefix
    /// `metrics listen on "ADDR"`: where vmd serves Prometheus text, `HOST:PORT` or a socket path.
    public var metricsAddress: String?

    public init(vms: [VMConfig], localPrefix: IPv4Prefix = .defaultLocal, metricsAddress: String? = nil) {
        self.vms = vms
        self.localPrefix = localPrefix
        self.metricsAddress = metricsAddress
    }
}

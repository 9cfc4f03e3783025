/// A whole configuration file: its vm blocks in file order.
public struct ConfigFile: Equatable, Sendable {
    public var vms: [VMConfig]

    public init(vms: [VMConfig]) {
        self.vms = vms
    }
}

/// One VM's counters as vmd read them from its processes' `CounterPage`s (`vmctl stats`):
/// values in the order of `VcpuExitCounter`, `BlockCounter` (regions added up) and
/// `NetCounter`, so that the wire carries numbers and both ends know the names.
public struct VMStats: Equatable, Sendable {
    public struct Device: Equatable, Sendable {
        /// "disk0", "net0".
        public var name: String
        /// The disk's image path, the NIC's tap.
        public var backing: String
        public var values: [UInt64]

        public init(name: String, backing: String, values: [UInt64]) {
            (self.name, self.backing, self.values) = (name, backing, values)
        }
    }

    public var id: Int
    public var name: String
    /// One row per vCPU.
    public var vcpuExits: [[UInt64]]
    public var disks: [Device]
    public var interfaces: [Device]

    public init(id: Int, name: String, vcpuExits: [[UInt64]], disks: [Device], interfaces: [Device]) {
        (self.id, self.name, self.vcpuExits, self.disks, self.interfaces) = (id, name, vcpuExits, disks, interfaces)
    }

    func encode(into writer: inout WireWriter) {
        writer.write(UInt32(id))
        writer.write(name)
        writer.write(UInt32(vcpuExits.count))
        for row in vcpuExits { writer.write(row) }
        for devices in [disks, interfaces] {
            writer.write(UInt32(devices.count))
            for device in devices {
                writer.write(device.name)
                writer.write(device.backing)
                writer.write(device.values)
            }
        }
    }

    static func decode(from reader: inout WireReader) throws -> VMStats {
        let id = Int(try reader.read(UInt32.self))
        let name = try reader.read(String.self, limit: 64)
        let vcpus = try reader.readCount(limit: 256)
        let exits = try (0..<vcpus).map { _ in try reader.readCounters(limit: VcpuExitCounter.allCases.count) }
        let devices = { (reader: inout WireReader, width: Int) throws -> [Device] in
            try (0..<reader.readCount(limit: 16)).map { _ in
                Device(name: try reader.read(String.self, limit: 64), backing: try reader.read(String.self),
                       values: try reader.readCounters(limit: width))
            }
        }
        let disks = try devices(&reader, BlockCounter.allCases.count)
        let interfaces = try devices(&reader, NetCounter.allCases.count)
        return VMStats(id: id, name: name, vcpuExits: exits, disks: disks, interfaces: interfaces)
    }
}

extension WireWriter {
    mutating func write(_ counters: [UInt64]) {
        write(UInt32(counters.count))
        counters.forEach { write($0) }
    }
}

extension WireReader {
    mutating func readCounters(limit: Int) throws -> [UInt64] {
        try (0..<readCount(limit: limit)).map { _ in try read(UInt64.self) }
    }
}

extension VMStats.Device {
    /// A disk's counter by name (0 for one the device did not send).
    public subscript(_ counter: BlockCounter) -> UInt64 { counter.rawValue < values.count ? values[counter.rawValue] : 0 }
    /// A NIC's counter by name (0 for one the device did not send).
    public subscript(_ counter: NetCounter) -> UInt64 { counter.rawValue < values.count ? values[counter.rawValue] : 0 }

    /// A disk's requests taken and not answered yet (never negative: a device's numbers are its own word).
    public var blockRequestsInFlight: UInt64 { self[BlockCounter.started] &- min(self[BlockCounter.completed], self[BlockCounter.started]) }
}

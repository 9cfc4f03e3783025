import IPC

/// `vmctl status --json` and `vmctl stats --json`: the stable keys of vmctl(8).
enum StatusJSON {
    static func status(_ entries: [VMStatusEntry]) -> JSONValue {
        .array(entries.map { entry in
            .object([
                ("id", .number(UInt64(entry.id))),
                ("name", .string(entry.name)),
                ("owner", .string(entry.owner)),
                ("state", .string(entry.state)),
                ("reason", entry.reason.isEmpty ? .null : .string(entry.reason)),
                ("pid", entry.pid == 0 ? .null : .integer(Int64(entry.pid))),
                ("pids", .object(entry.processes.map { ($0.role, .integer(Int64($0.pid))) })),
                ("vcpus", .number(UInt64(entry.vcpus))),
                ("memory", .number(entry.memoryBytes)),
                ("restarts", .number(UInt64(entry.restarts))),
                ("disks", .array(entry.disks.map { .string($0) })),
                ("interfaces", .array(entry.interfaces.map { $0.isEmpty ? .null : .string($0) })),
            ])
        })
    }

    static func stats(_ all: [VMStats]) -> JSONValue {
        .array(all.map { vm in
            .object([
                ("id", .number(UInt64(vm.id))),
                ("name", .string(vm.name)),
                ("vcpus", .array(vm.vcpuExits.enumerated().map { index, row in
                    .object([("index", .number(UInt64(index))), ("exits", counters(VcpuExitCounter.allCases.map(\.key), row))])
                })),
                ("disks", .array(vm.disks.map { disk in
                    device(disk, keys: BlockCounter.allCases.map(\.key), extra: [("in_flight", .number(disk.blockRequestsInFlight))])
                })),
                ("interfaces", .array(vm.interfaces.map { device($0, keys: NetCounter.allCases.map(\.key), extra: []) })),
            ])
        })
    }

    private static func device(_ device: VMStats.Device, keys: [String], extra: [(String, JSONValue)]) -> JSONValue {
        .object([("name", .string(device.name)), ("backing", .string(device.backing)), ("counters", counters(keys, device.values, extra))])
    }

    private static func counters(_ keys: [String], _ values: [UInt64], _ extra: [(String, JSONValue)] = []) -> JSONValue {
        .object(zip(keys, values).map { ($0, .number($1)) } + extra)
    }
}

import IPC

/// `vmctl stats` output: per VM, a table of exits per vCPU, one of its disks and one of its NICs.
enum StatsTable {
    static func render(_ all: [VMStats]) -> String {
        all.map { vm in
            var blocks = ["vm \(vm.id) \(vm.name)"]
            blocks.append(table(["VCPU"] + VcpuExitCounter.allCases.map { $0.key.uppercased() },
                                vm.vcpuExits.enumerated().map { [String($0)] + $1.map(String.init) }))
            if !vm.disks.isEmpty {
                let keys: [BlockCounter] = [.reads, .writes, .flushes, .bytesRead, .bytesWritten, .errors, .throttled]
                blocks.append(table(["DISK"] + keys.map { $0.key.uppercased() } + ["IN_FLIGHT", "IMAGE"], vm.disks.map { disk in
                    [disk.name] + keys.map { String(disk[$0]) } + [String(disk.blockRequestsInFlight), disk.backing]
                }, textLast: true))
            }
            if !vm.interfaces.isEmpty {
                blocks.append(table(["NIC"] + NetCounter.allCases.map { $0.key.uppercased() } + ["TAP"], vm.interfaces.map { nic in
                    [nic.name] + NetCounter.allCases.map { String(nic[$0]) } + [nic.backing]
                }, textLast: true))
            }
            return blocks.joined(separator: "\n")
        }.joined(separator: "\n\n")
    }

    /// The first column (a name) and with `textLast` the last one left-aligned, numbers right.
    private static func table(_ headers: [String], _ rows: [[String]], textLast: Bool = false) -> String {
        AlignedColumns.render([headers] + rows) { column in column > 0 && !(textLast && column == headers.count - 1) }
    }
}

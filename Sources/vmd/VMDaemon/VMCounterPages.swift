import IPC

/// The counter pages of one run of a VM's processes, mapped read-only by vmd (made by
/// `VMLauncher`, one per counting process): what `vmctl stats` and the metrics show.
/// A reboot starts new processes with new pages, so the counters count from that run.
struct VMCounterPages {
    struct Device {
        let name: String
        let backing: String
        let page: CounterPage
    }

    var vcpus: Int
    var exits: CounterPage?
    var disks: [Device] = []
    var interfaces: [Device] = []

    /// Reads every counter now. A device's regions are added up (a disk's workers each count
    /// their own); the sums wrap rather than trap, since a device process writes the numbers.
    func read(id: Int, name: String) -> VMStats {
        let exitRows = (0..<vcpus).map { vcpu in
            VcpuExitCounter.allCases.map { exits?.load($0.slot(vcpu: vcpu)) ?? 0 }
        }
        let disks = disks.map { disk in
            VMStats.Device(name: disk.name, backing: disk.backing, values: BlockCounter.allCases.map { counter in
                (0..<BlockCounter.regions).reduce(UInt64(0)) { $0 &+ disk.page.load(counter.slot(region: $1)) }
            })
        }
        let interfaces = interfaces.map { nic in
            VMStats.Device(name: nic.name, backing: nic.backing, values: NetCounter.allCases.map { nic.page.load($0.slot) })
        }
        return VMStats(id: id, name: name, vcpuExits: exitRows, disks: disks, interfaces: interfaces)
    }
}

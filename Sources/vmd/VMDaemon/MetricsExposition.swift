import IPC
import Prometheus

/// What one scrape of vmd's metrics endpoint shows, as Prometheus text (swift-prometheus
/// writes the exposition format: names, label escaping, HELP and TYPE lines). A new
/// registry per scrape: the numbers live in the processes' counter pages, not here, and a
/// VM that is gone leaves no stale series behind.
enum MetricsExposition {
    struct VM {
        let status: VMStatusEntry
        /// nil while not running.
        let stats: VMStats?
    }

    static func render(_ vms: [VM]) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        for vm in vms {
            let entry = vm.status
            let labels = [("vm", entry.name), ("id", String(entry.id))]
            gauge(registry, "vmd_vm_running", labels: labels + [("owner", entry.owner), ("state", entry.state)],
                  help: "1 while the VM's processes run (state: running, paused, stopping), 0 when stopped")
                .set(Int64(entry.state == "stopped" ? 0 : 1))
            gauge(registry, "vmd_vm_vcpus", labels: labels, help: "vCPUs configured").set(Int64(entry.vcpus))
            gauge(registry, "vmd_vm_memory_bytes", labels: labels, help: "Guest RAM configured, in bytes")
                .set(Int64(clamping: entry.memoryBytes))
            counter(registry, "vmd_vm_restarts_total", labels: labels, help: "Guest reboots vmd restarted the VM for")
                .increment(by: Int64(entry.restarts))
            guard let stats = vm.stats else { continue }
            for (vcpu, row) in stats.vcpuExits.enumerated() {
                for (kind, value) in zip(VcpuExitCounter.allCases, row) {
                    counter(registry, "vmd_vcpu_exits_total", labels: labels + [("vcpu", String(vcpu)), ("kind", kind.key)],
                            help: "KVM exits by kind since the VM's processes started")
                        .increment(by: count(value))
                }
            }
            for disk in stats.disks {
                let diskLabels = labels + [("disk", disk.name)]
                for (operation, requests) in [("read", BlockCounter.reads), ("write", .writes), ("flush", .flushes),
                                              ("discard", .discards), ("write_zeroes", .writeZeroes)] {
                    counter(registry, "vmd_disk_requests_total", labels: diskLabels + [("op", operation)],
                            help: "Disk requests completed, by operation")
                        .increment(by: count(disk[requests]))
                }
                for (direction, bytes) in [("read", BlockCounter.bytesRead), ("write", .bytesWritten)] {
                    counter(registry, "vmd_disk_bytes_total", labels: diskLabels + [("direction", direction)],
                            help: "Disk data bytes moved")
                        .increment(by: count(disk[bytes]))
                }
                counter(registry, "vmd_disk_errors_total", labels: diskLabels,
                        help: "Disk requests failed (malformed, unsupported, guest memory, host I/O)")
                    .increment(by: count(disk[BlockCounter.errors]))
                gauge(registry, "vmd_disk_in_flight", labels: diskLabels, help: "Disk requests taken and not answered yet")
                    .set(count(disk.blockRequestsInFlight))
                counter(registry, "vmd_disk_throttled_total", labels: diskLabels,
                        help: "Times the disk's rate limit (bandwidth, ops) held its queues back")
                    .increment(by: count(disk[BlockCounter.throttled]))
            }
            for nic in stats.interfaces {
                let value = { (counter: NetCounter) in count(nic[counter]) }
                for (direction, packets, bytes, drops, throttled) in [
                    ("rx", NetCounter.rxPackets, NetCounter.rxBytes, NetCounter.rxDrops, NetCounter.rxThrottled),
                    ("tx", .txPackets, .txBytes, .txDrops, .txThrottled),
                ] {
                    let nicLabels = labels + [("nic", nic.name), ("direction", direction)]
                    counter(registry, "vmd_net_packets_total", labels: nicLabels, help: "Packets moved").increment(by: value(packets))
                    counter(registry, "vmd_net_bytes_total", labels: nicLabels, help: "Frame bytes moved").increment(by: value(bytes))
                    counter(registry, "vmd_net_drops_total", labels: nicLabels, help: "Packets dropped").increment(by: value(drops))
                    counter(registry, "vmd_net_throttled_total", labels: nicLabels,
                            help: "Times the interface's rate limit (bandwidth, packets) held this direction back")
                        .increment(by: value(throttled))
                }
            }
        }
        return registry.emitToBuffer()
    }

    /// A family's series, named by the descriptor the library wants (`vmd_` and the rest: the
    /// name is written whole, with no unit split off, so that it reads as in vmd(8)).
    private static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)], help: String) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
    }

    private static func counter(_ registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)], help: String) -> Counter {
        registry.makeCounter(descriptor: descriptor(name, help), labels: labels)
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// A counter's value as the library takes it (Int64): larger values stop at Int64.max.
    private static func count(_ value: UInt64) -> Int64 { Int64(clamping: value) }
}

/// Where each counter sits in a process's `CounterPage`: the contract between the process
/// that counts and vmd, which reads. A page has one region per counting thread or model
/// (a disk's workers, a VM's vCPUs), each `count` slots; vmd adds the regions up.

/// A disk's counters (virtio-blk), one region per request model.
public enum BlockCounter: Int, CaseIterable, Sendable {
    case reads, writes, flushes, discards, writeZeroes
    case bytesRead, bytesWritten
    /// Requests failed: refused as malformed or unsupported, guest-memory faults, host I/O errors, dropped.
    case errors
    /// Requests taken off a queue, and those answered: the difference is in flight.
    case started, completed
    /// Times the disk's rate limit (`bandwidth`, `ops`) held a queue back (region 0 only).
    case throttled

    /// One per request model (a model per queue, a queue per vCPU: up to 64).
    public static let regions = 64
    public static var pageSlots: Int { regions * allCases.count }
    public func slot(region: Int) -> Int { region * Self.allCases.count + rawValue }

    /// The name in `vmctl stats --json` and in the metrics (snake case).
    public var key: String {
        switch self {
        case .reads: "reads"
        case .writes: "writes"
        case .flushes: "flushes"
        case .discards: "discards"
        case .writeZeroes: "write_zeroes"
        case .bytesRead: "bytes_read"
        case .bytesWritten: "bytes_written"
        case .errors: "errors"
        case .started: "started"
        case .completed: "completed"
        case .throttled: "throttled"
        }
    }
}

/// A NIC's counters (virtio-net), one region.
public enum NetCounter: Int, CaseIterable, Sendable {
    case rxPackets, rxBytes, rxDrops, txPackets, txBytes, txDrops
    /// Times the interface's rate limit held the tap (rx) or the transmit queue (tx) back.
    case rxThrottled, txThrottled

    public static var pageSlots: Int { allCases.count }
    public var slot: Int { rawValue }

    public var key: String {
        switch self {
        case .rxPackets: "rx_packets"
        case .rxBytes: "rx_bytes"
        case .rxDrops: "rx_drops"
        case .txPackets: "tx_packets"
        case .txBytes: "tx_bytes"
        case .txDrops: "tx_drops"
        case .rxThrottled: "rx_throttled"
        case .txThrottled: "tx_throttled"
        }
    }
}

/// The vm process's counters: KVM exits by kind, one region per vCPU.
public enum VcpuExitCounter: Int, CaseIterable, Sendable {
    /// Port I/O (`in`, `out`): the PIO devices, PCI configuration.
    case io
    /// MMIO: the virtio-pci BARs, the IOAPIC, HPET.
    case mmio
    case hlt
    /// KVM_RUN returned for a signal (pause, stop) or immediate_exit.
    case interrupted
    /// Shutdown, system events, failed entries, internal errors, unknown reasons.
    case other

    public static func pageSlots(vcpus: Int) -> Int { max(vcpus, 1) * allCases.count }
    public func slot(vcpu: Int) -> Int { vcpu * Self.allCases.count + rawValue }

    public var key: String {
        switch self {
        case .io: "io"
        case .mmio: "mmio"
        case .hlt: "hlt"
        case .interrupted: "interrupted"
        case .other: "other"
        }
    }
}

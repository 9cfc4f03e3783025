import CKVM
import IPC

/// A KVM exit, decoded once from kvm_run (design §3) so that handling it is a
/// plain function, testable without KVM.
enum VcpuExit: Equatable {
    /// `in` from `port`: `size` bytes, `count` times (string I/O).
    case portIn(port: UInt16, size: Int, count: Int)
    /// `out` to `port` of `data` (size × count bytes).
    case portOut(port: UInt16, size: Int, data: [UInt8])
    case mmioRead(address: UInt64, size: Int)
    case mmioWrite(address: UInt64, data: [UInt8])
    case halt
    /// Triple fault (or an unrecoverable guest state).
    case shutdown
    case systemEvent(type: UInt32)
    case failEntry(reason: UInt64)
    /// `data`: KVM's words for the error (for emulation failures: flags, instruction length and bytes).
    case internalError(suberror: UInt32, data: [UInt64])
    /// KVM_RUN returned early for a signal or immediate_exit.
    case interrupted
    case unknown(reason: UInt32)

    /// Reads the exit out of the vCPU's kvm_run mapping of `mapSize` bytes.
    static func decode(_ run: UnsafePointer<kvm_run>, mapSize: Int) -> VcpuExit {
        let raw = UnsafeRawPointer(run)
        switch Int32(run.pointee.exit_reason) {
        case KVM_EXIT_IO:
            let io = run.pointee.io
            let size = Int(io.size), count = Int(io.count)
            if io.direction == UInt8(KVM_EXIT_IO_IN) { return .portIn(port: io.port, size: size, count: count) }
            let offset = Int(io.data_offset), length = size * count
            // The kernel sets data_offset; check it anyway rather than trust a layout.
            guard offset >= 0, length >= 0, offset + length <= mapSize else { return .unknown(reason: UInt32(KVM_EXIT_IO)) }
            // SAFETY: `offset + length <= mapSize`, the size of the kvm_run mapping (checked above).
            return .portOut(port: io.port, size: size, data: Array(UnsafeRawBufferPointer(start: raw + offset, count: length)))
        case KVM_EXIT_MMIO:
            let mmio = run.pointee.mmio
            let length = min(Int(mmio.len), 8)
            if mmio.is_write == 0 { return .mmioRead(address: mmio.phys_addr, size: length) }
            let data = withUnsafeBytes(of: mmio.data) { Array($0.prefix(length)) }
            return .mmioWrite(address: mmio.phys_addr, data: data)
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: run.pointee.system_event.type)
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(reason: run.pointee.fail_entry.hardware_entry_failure_reason)
        case KVM_EXIT_INTERNAL_ERROR:
            let count = min(Int(run.pointee.internal.ndata), 16)
            // SAFETY: internal.data is a copy of `__u64 data[16]`; `count` is at most 16.
            let data = withUnsafeBytes(of: run.pointee.internal.data) { Array($0.bindMemory(to: UInt64.self).prefix(count)) }
            return .internalError(suberror: run.pointee.internal.suberror, data: data)
        case KVM_EXIT_INTR:
            return .interrupted
        default:
            return .unknown(reason: run.pointee.exit_reason)
        }
    }
}

extension VcpuExit {
    /// The kind it is counted as in `vmctl stats`.
    var counter: VcpuExitCounter {
        switch self {
        case .portIn, .portOut: .io
        case .mmioRead, .mmioWrite: .mmio
        case .halt: .hlt
        case .interrupted: .interrupted
        case .shutdown, .systemEvent, .failEntry, .internalError, .unknown: .other
        }
    }
}

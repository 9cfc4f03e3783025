import CKVM
import Glibc
import LinuxSystem
import Snapshot

/// What KVM keeps of a vCPU that a snapshot must carry, and which of its parts this
/// host's KVM has (found once, before the sandbox: `KVMSystem` is not reachable after).
struct VcpuStateSupport {
    /// The MSRs KVM saves and restores for migration (KVM_GET_MSR_INDEX_LIST: the
    /// architectural ones it emulates, the TSC, and its paravirtual clock MSRs).
    let msrIndices: [UInt32]
    let xsave: Bool
    let xcrs: Bool
    let debugRegisters: Bool

    init(system: KVMSystem) throws {
        msrIndices = try system.msrIndexList()
        xsave = (try? system.checkExtension(Int32(KVM_CAP_XSAVE))) ?? 0 > 0
        xcrs = (try? system.checkExtension(Int32(KVM_CAP_XCRS))) ?? 0 > 0
        debugRegisters = (try? system.checkExtension(Int32(KVM_CAP_DEBUGREGS))) ?? 0 > 0
    }
}

/// Tags of a vCPU section's fields (`StateFields`): each a KVM structure as the kernel gave it.
enum VcpuStateTag: UInt16 {
    case registers = 1, specialRegisters, xsave, xcrs, msrs, lapic, events, debugRegisters, mpState, fpu
}

extension Vcpu {
    /// Everything KVM holds of this vCPU. The vCPU must be out of KVM_RUN (paused).
    /// `timerCountAtPark`: its LAPIC timer's count when it was parked, so that an expiry
    /// since then is not lost to the snapshot (`LAPICTimerCatchUp`).
    func captureState(_ support: VcpuStateSupport, timerCountAtPark: UInt32? = nil) throws -> StateFields {
        var fields = StateFields()
        fields.append(VcpuStateTag.registers.rawValue, raw: try registers())
        fields.append(VcpuStateTag.specialRegisters.rawValue, raw: try specialRegisters())
        if support.xsave {
            fields.append(VcpuStateTag.xsave.rawValue, raw: try get(kvm_xsave(), VMD_KVM_IOCTL_GET_XSAVE, "KVM_GET_XSAVE"))
        } else {
            fields.append(VcpuStateTag.fpu.rawValue, raw: try get(kvm_fpu(), VMD_KVM_IOCTL_GET_FPU, "KVM_GET_FPU"))
        }
        if support.xcrs {
            fields.append(VcpuStateTag.xcrs.rawValue, raw: try get(kvm_xcrs(), VMD_KVM_IOCTL_GET_XCRS, "KVM_GET_XCRS"))
        }
        fields.append(VcpuStateTag.msrs.rawValue) { writer in
            let msrs = (try? readMSRs(support.msrIndices)) ?? []
            writer.write(UInt32(msrs.count))
            for (index, value) in msrs { writer.write(index); writer.write(value) }
        }
        var lapic = try get(kvm_lapic_state(), VMD_KVM_IOCTL_GET_LAPIC, "KVM_GET_LAPIC")
        if let timerCountAtPark {
            withUnsafeMutableBytes(of: &lapic.regs) { _ = LAPICTimerCatchUp.catchUp($0, countAtPark: timerCountAtPark) }
        }
        fields.append(VcpuStateTag.lapic.rawValue, raw: lapic)
        fields.append(VcpuStateTag.events.rawValue, raw: try get(kvm_vcpu_events(), VMD_KVM_IOCTL_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"))
        if support.debugRegisters {
            fields.append(VcpuStateTag.debugRegisters.rawValue, raw: try get(kvm_debugregs(), VMD_KVM_IOCTL_GET_DEBUGREGS, "KVM_GET_DEBUGREGS"))
        }
        fields.append(VcpuStateTag.mpState.rawValue, raw: try get(kvm_mp_state(), VMD_KVM_IOCTL_GET_MP_STATE, "KVM_GET_MP_STATE"))
        return fields
    }

    /// The LAPIC timer's current count (read when the vCPU is parked, for `captureState`).
    func lapicTimerCount() throws -> UInt32? {
        var lapic = try get(kvm_lapic_state(), VMD_KVM_IOCTL_GET_LAPIC, "KVM_GET_LAPIC")
        return withUnsafeBytes(of: &lapic.regs) { LAPICTimerCatchUp.currentCount(of: $0) }
    }

    /// One KVM_GET_* of a structure, as the kernel fills it.
    private func get<Value>(_ initial: Value, _ request: UInt, _ name: String) throws -> Value {
        var value = initial
        try kvmIoctl(fd, request, name, &value)
        return value
    }

    /// Puts a captured state back, in QEMU's order: registers, extended state, special
    /// registers (the APIC base among them) before the LAPIC, MSRs, MP state, LAPIC, events,
    /// debug registers. KVM checks each structure; a value it refuses fails the restore.
    func restoreState(_ fields: StateFields) throws {
        var regs = kvm_regs()
        try fields.raw(VcpuStateTag.registers.rawValue, as: kvm_regs.self, "vCPU \(index) registers", into: &regs)
        try setRegisters(regs)
        if fields.contains(VcpuStateTag.xsave.rawValue) {
            try put(kvm_xsave(), from: fields, .xsave, "XSAVE area", VMD_KVM_IOCTL_SET_XSAVE, "KVM_SET_XSAVE")
        } else {
            try put(kvm_fpu(), from: fields, .fpu, "FPU", VMD_KVM_IOCTL_SET_FPU, "KVM_SET_FPU")
        }
        if fields.contains(VcpuStateTag.xcrs.rawValue) {
            try put(kvm_xcrs(), from: fields, .xcrs, "XCRs", VMD_KVM_IOCTL_SET_XCRS, "KVM_SET_XCRS") { $0.flags = 0 }
        }
        var sregs = kvm_sregs()
        try fields.raw(VcpuStateTag.specialRegisters.rawValue, as: kvm_sregs.self, "vCPU \(index) special registers", into: &sregs)
        try setSpecialRegisters(sregs)
        let msrs = try fields.read(VcpuStateTag.msrs.rawValue, "vCPU \(index) MSRs") { reader in
            try (0..<reader.readCount(limit: 4096)).map { _ in (try reader.read(UInt32.self), try reader.read(UInt64.self)) }
        }
        try writeMSRs(msrs)
        try put(kvm_mp_state(), from: fields, .mpState, "MP state", VMD_KVM_IOCTL_SET_MP_STATE, "KVM_SET_MP_STATE")
        try put(kvm_lapic_state(), from: fields, .lapic, "LAPIC", VMD_KVM_IOCTL_SET_LAPIC, "KVM_SET_LAPIC")
        try put(kvm_vcpu_events(), from: fields, .events, "events", VMD_KVM_IOCTL_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS") {
            // A pending NMI and the SIPI vector are taken only when flagged (KVM API, KVM_SET_VCPU_EVENTS).
            $0.flags |= UInt32(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR)
        }
        if fields.contains(VcpuStateTag.debugRegisters.rawValue) {
            try put(kvm_debugregs(), from: fields, .debugRegisters, "debug registers", VMD_KVM_IOCTL_SET_DEBUGREGS,
                    "KVM_SET_DEBUGREGS") { $0.flags = 0 }
        }
    }

    /// One KVM_SET_* of field `tag`, a structure of exactly its size; `adjust` clears what a set must not take from a get.
    private func put<Value>(_ initial: Value, from fields: StateFields, _ tag: VcpuStateTag, _ what: String, _ request: UInt,
                            _ name: String, adjust: (inout Value) -> Void = { _ in }) throws {
        var value = initial
        try fields.raw(tag.rawValue, as: Value.self, "vCPU \(index) \(what)", into: &value)
        adjust(&value)
        try kvmIoctl(fd, request, name, &value)
    }

    /// The MSRs of `indices` this vCPU can read: KVM_GET_MSRS stops at the first it cannot
    /// (one the list names but this CPU lacks), so that one is skipped and the rest read on.
    private func readMSRs(_ indices: [UInt32]) throws -> [(UInt32, UInt64)] {
        var result: [(UInt32, UInt64)] = []
        var rest = indices[...]
        while !rest.isEmpty {
            var buffer = MSRBuffer(indices: Array(rest))
            let read = Int(try buffer.withPointer { try kvmIoctl(fd, VMD_KVM_IOCTL_GET_MSRS, "KVM_GET_MSRS", $0) })
            result += buffer.entries.prefix(read)
            rest = rest.dropFirst(read + 1)  // the one at `read` failed
        }
        return result
    }

    private func writeMSRs(_ msrs: [(UInt32, UInt64)]) throws {
        guard !msrs.isEmpty else { return }
        var buffer = MSRBuffer(entries: msrs)
        let written = Int(try buffer.withPointer { try kvmIoctl(fd, VMD_KVM_IOCTL_SET_MSRS, "KVM_SET_MSRS", $0) })
        guard written == msrs.count else {
            throw SnapshotError.malformed("vCPU \(index): KVM refused MSR 0x\(String(msrs[written].0, radix: 16)) = 0x\(String(msrs[written].1, radix: 16))")
        }
    }
}

/// A struct kvm_msrs with its entries (a flexible array Swift does not import): u32 nmsrs,
/// u32 pad, then nmsrs × (u32 index, u32 reserved, u64 data).
private struct MSRBuffer {
    private var words: [UInt64]

    init(indices: [UInt32]) { self.init(entries: indices.map { ($0, 0) }) }

    init(entries: [(UInt32, UInt64)]) {
        words = [UInt64(entries.count)]
        for (index, value) in entries { words += [UInt64(index), value] }
    }

    var entries: [(UInt32, UInt64)] {
        (0..<Int(words[0])).map { (UInt32(truncatingIfNeeded: words[1 + 2 * $0]), words[2 + 2 * $0]) }
    }

    mutating func withPointer<Result>(_ body: (UnsafeMutableRawPointer) throws -> Result) rethrows -> Result {
        // SAFETY: the words are laid out as struct kvm_msrs (little-endian: nmsrs in the low half of the first word).
        try words.withUnsafeMutableBytes { try body($0.baseAddress!) }
    }
}

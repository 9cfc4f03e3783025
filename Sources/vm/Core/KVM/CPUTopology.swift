/// The processor topology a VM is shown: one package of `vcpuCount` cores, one thread
/// per core, one die, one node. vCPU i has APIC id i (KVM's default: a vCPU's LAPIC id
/// is its vcpu id), so the ids are dense and the core id is the APIC id. The MP table
/// (`MPTable`) lists the same ids.
///
/// Built from the VM's own shape only. KVM_GET_SUPPORTED_CPUID passes the host's
/// topology fields through (its core count, its cache sharing), and a guest that
/// reads them sees the host's machine instead of its own.
struct CPUTopology: Equatable {
    let vcpuCount: Int

    init(vcpuCount: Int) {
        precondition(vcpuCount >= 1, "a VM has at least one vCPU (checked by the config)")
        self.vcpuCount = vcpuCount
    }

    /// Bits of the APIC id that number the cores of the package: ceil(log2(vcpuCount)).
    var coreIDBits: Int { vcpuCount <= 1 ? 0 : Int.bitWidth - (vcpuCount - 1).leadingZeroBitCount }

    /// How many APIC ids the package's core field can address (a power of two).
    var addressableIDs: Int { 1 << coreIDBits }

    /// Logical processors sharing a cache of this level: the core's own (1 thread) for
    /// L1 and L2, the whole package for L3 and beyond.
    func sharingCount(cacheLevel: Int) -> Int { cacheLevel >= 3 ? addressableIDs : 1 }
}

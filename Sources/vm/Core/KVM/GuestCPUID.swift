import CKVM

/// The guest's CPUID: what KVM supports, trimmed, tagged, and carrying the VM's own
/// topology (`CPUTopology`) on Intel and AMD hosts alike (design §3). Pure, so it is
/// tested on captured host tables.
enum GuestCPUID {
    static let hypervisorBit: UInt32 = 1 << 31          // leaf 1 ECX: running under a hypervisor
    static let httBit: UInt32 = 1 << 28                 // leaf 1 EDX: EBX[23:16] is valid (multi-core package)
    static let tscDeadlineBit: UInt32 = 1 << 24         // leaf 1 ECX: the LAPIC timer's TSC-deadline mode
    static let archCapabilitiesBit: UInt32 = 1 << 29    // leaf 7 EDX: IA32_ARCH_CAPABILITIES, not usable on this host (design §8)
    static let cmpLegacyBit: UInt32 = 1 << 1            // 0x8000_0001 ECX (AMD): HTT means cores, not threads
    static let topologyExtensionsBit: UInt32 = 1 << 22  // 0x8000_0001 ECX (AMD): 0x8000_001D/1E are valid
    static let significantIndex = UInt32(KVM_CPUID_FLAG_SIGNIFCANT_INDEX)

    enum Vendor { case intel, amd }

    /// AMD and Hygon describe their topology in the 0x8000_00xx leaves; everyone else as Intel.
    static func vendor(of supported: [kvm_cpuid_entry2]) -> Vendor {
        guard let leaf0 = supported.first(where: { $0.function == 0 }) else { return .intel }
        let amd: (UInt32, UInt32, UInt32) = (0x6874_7541, 0x6974_6E65, 0x444D_4163)      // "Auth" "enti" "cAMD"
        let hygon: (UInt32, UInt32, UInt32) = (0x6F67_7948, 0x6975_6E65, 0x656E_6975)    // "Hygo" "nGen" "uine"
        let words = (leaf0.ebx, leaf0.edx, leaf0.ecx)
        return words == amd || words == hygon ? .amd : .intel
    }

    /// `tscDeadline`: KVM_CAP_TSC_DEADLINE_TIMER, which KVM_GET_SUPPORTED_CPUID does not
    /// report in leaf 1 (QEMU sets the bit the same way). Without it Linux calibrates
    /// the LAPIC timer and programs it through its count registers.
    static func entries(supported: [kvm_cpuid_entry2], vcpuIndex: Int, vcpuCount: Int, tscDeadline: Bool = false) -> [kvm_cpuid_entry2] {
        let topology = CPUTopology(vcpuCount: vcpuCount)
        let vendor = vendor(of: supported)
        let apicID = UInt32(truncatingIfNeeded: vcpuIndex)
        let maxBasic = supported.first(where: { $0.function == 0 })?.eax ?? 0
        let maxExtended = supported.first(where: { $0.function == 0x8000_0000 })?.eax ?? 0
        // The extended-topology leaves are made whole here, whatever subleaves the host had.
        let generated: Set<UInt32> = [0xB, 0x1F, 0x8000_0026]

        var result = supported.filter { !generated.contains($0.function) }.map { original in
            var entry = original
            switch entry.function {
            case 1:
                entry.ecx |= hypervisorBit
                if tscDeadline { entry.ecx |= tscDeadlineBit }
                // EBX[31:24] initial APIC id, EBX[23:16] addressable ids in the package.
                entry.ebx = (entry.ebx & 0x0000_FFFF) | ((apicID & 0xFF) << 24)
                    | (UInt32(min(topology.addressableIDs, 0xFF)) << 16)
                if vcpuCount > 1 { entry.edx |= httBit } else { entry.edx &= ~httBit }
            case 4 where vendor == .intel:
                entry.eax = cacheSharing(entry.eax, topology: topology, withCoreCount: true)
            case 7 where entry.index == 0:
                entry.edx &= ~archCapabilitiesBit
            case 0x8000_0001 where vendor == .amd:
                if vcpuCount > 1 { entry.ecx |= cmpLegacyBit } else { entry.ecx &= ~cmpLegacyBit }
            case 0x8000_0008 where vendor == .amd:
                // ECX[7:0] NC: cores - 1; ECX[15:12] ApicIdCoreIdSize; the rest (PerfTscSize) kept.
                entry.ecx = (entry.ecx & ~0x0000_F0FF) | (UInt32(topology.coreIDBits & 0xF) << 12)
                    | UInt32(min(vcpuCount - 1, 0xFF))
            case 0x8000_001D where vendor == .amd:
                entry.eax = cacheSharing(entry.eax, topology: topology, withCoreCount: false)
            case 0x8000_001E where vendor == .amd:
                // Extended APIC id; compute unit (core) id, one thread per unit; node 0 of 1.
                entry.eax = apicID
                entry.ebx = apicID & 0xFF
                entry.ecx = 0
                entry.edx = 0
            default:
                break
            }
            return entry
        }
        if maxBasic >= 0xB { result += extendedTopology(leaf: 0xB, apicID: apicID, topology: topology, coreLevelType: 2) }
        if maxBasic >= 0x1F { result += extendedTopology(leaf: 0x1F, apicID: apicID, topology: topology, coreLevelType: 2) }
        if vendor == .amd && maxExtended >= 0x8000_0026 {
            // AMD's extended topology (APM Fn8000_0026): level 1 is the core (its threads),
            // level 4 the socket.
            result += extendedTopology(leaf: 0x8000_0026, apicID: apicID, topology: topology, coreLevelType: 4)
        }
        return XSaveLeaf.sanitize(result)
    }

    /// Leaf 4 (Intel) and 0x8000_001D (AMD) EAX: EAX[25:14] logical processors sharing the
    /// cache - 1; on Intel also EAX[31:26] addressable core ids in the package - 1.
    /// A subleaf of cache type 0 (EAX[4:0]) ends the list and is left alone.
    private static func cacheSharing(_ eax: UInt32, topology: CPUTopology, withCoreCount: Bool) -> UInt32 {
        guard eax & 0x1F != 0 else { return eax }
        let level = Int((eax >> 5) & 0x7)
        var result = (eax & ~(0xFFF << 14)) | (UInt32(min(topology.sharingCount(cacheLevel: level) - 1, 0xFFF)) << 14)
        if withCoreCount {
            result = (result & ~(0x3F << 26)) | (UInt32(min(topology.addressableIDs - 1, 0x3F)) << 26)
        }
        return result
    }

    /// Leaves 0xB and 0x1F (Intel SDM vol. 2A, CPUID "V1/V2 Extended Topology") and AMD's
    /// 0x8000_0026: subleaf 0 the thread level (one thread: shift 0), subleaf 1 the core
    /// level of the package (shift `coreIDBits`, `vcpuCount` processors), subleaf 2 the
    /// invalid level that ends the list. EDX is the x2APIC id in every subleaf.
    private static func extendedTopology(leaf: UInt32, apicID: UInt32, topology: CPUTopology,
                                         coreLevelType: UInt32) -> [kvm_cpuid_entry2] {
        let levels: [(shift: UInt32, processors: UInt32, type: UInt32)] = [
            (0, 1, 1),
            (UInt32(topology.coreIDBits), UInt32(min(topology.vcpuCount, 0xFFFF)), coreLevelType),
            (0, 0, 0),
        ]
        return levels.enumerated().map { subleaf, level in
            var entry = kvm_cpuid_entry2()
            entry.function = leaf
            entry.index = UInt32(subleaf)
            entry.flags = significantIndex
            entry.eax = level.shift
            entry.ebx = level.processors
            entry.ecx = (level.type << 8) | UInt32(subleaf)
            entry.edx = apicID
            return entry
        }
    }
}

import XCTest
import CKVM
@testable import VMCore

/// The guest's CPUID carries the VM's topology, not the host's: every leaf a kernel reads
/// its topology from, on an AMD table captured here and on an Intel one, for the vCPU
/// counts the SMP tests boot.
final class GuestCPUIDTests: XCTestCase {
    private let counts = [1, 2, 3, 4, 8, 64]

    private func lookup(_ entries: [kvm_cpuid_entry2], _ function: UInt32, _ index: UInt32 = 0) throws -> kvm_cpuid_entry2 {
        let matches = entries.filter { $0.function == function && $0.index == index }
        XCTAssertEqual(matches.count, 1, "leaf \(String(function, radix: 16)).\(index) appears once")
        return try XCTUnwrap(matches.first, "leaf \(String(function, radix: 16)).\(index)")
    }

    private func field(_ value: UInt32, _ low: Int, _ high: Int) -> Int {
        Int((value >> UInt32(low)) & UInt32((1 << (high - low + 1)) - 1))
    }

    func testTSCDeadlineIsOfferedWhenKVMHasTheCapability() throws {
        // A host table without the bit, as KVM_GET_SUPPORTED_CPUID gives it on kvm_amd.
        let supported = CapturedCPUID.parse(CapturedCPUID.amdEPYC).map { entry -> kvm_cpuid_entry2 in
            var entry = entry
            if entry.function == 1 { entry.ecx &= ~GuestCPUID.tscDeadlineBit }
            return entry
        }
        let with = GuestCPUID.entries(supported: supported, vcpuIndex: 0, vcpuCount: 2, tscDeadline: true)
        let without = GuestCPUID.entries(supported: supported, vcpuIndex: 0, vcpuCount: 2, tscDeadline: false)
        XCTAssertNotEqual(try lookup(with, 1).ecx & GuestCPUID.tscDeadlineBit, 0)
        XCTAssertEqual(try lookup(without, 1).ecx & GuestCPUID.tscDeadlineBit, 0)
    }

    func testVendorIsReadFromLeafZero() {
        XCTAssertEqual(GuestCPUID.vendor(of: CapturedCPUID.parse(CapturedCPUID.amdEPYC)), .amd)
        XCTAssertEqual(GuestCPUID.vendor(of: CapturedCPUID.parse(CapturedCPUID.intelXeon)), .intel)
    }

    func testCoreIDBits() {
        XCTAssertEqual([1, 2, 3, 4, 5, 8, 9, 64].map { CPUTopology(vcpuCount: $0).coreIDBits }, [0, 1, 2, 2, 3, 3, 4, 6])
    }

    /// Leaves both vendors define: 1 and the extended topology leaves 0xB (and 0x1F where
    /// the host's maximum basic leaf reaches it).
    private func checkCommonLeaves(_ entries: [kvm_cpuid_entry2], index: Int, count: Int, hasLeaf1F: Bool) throws {
        let bits = CPUTopology(vcpuCount: count).coreIDBits
        let leaf1 = try lookup(entries, 1)
        XCTAssertEqual(field(leaf1.ebx, 24, 31), index, "leaf 1: initial APIC id")
        XCTAssertEqual(field(leaf1.ebx, 16, 23), 1 << bits, "leaf 1: addressable ids")
        XCTAssertEqual(field(leaf1.ebx, 8, 15), 8, "leaf 1: CLFLUSH size kept")
        XCTAssertEqual(leaf1.edx & GuestCPUID.httBit != 0, count > 1, "leaf 1: HTT")
        XCTAssertNotEqual(leaf1.ecx & GuestCPUID.hypervisorBit, 0)
        XCTAssertEqual(try lookup(entries, 7).edx & GuestCPUID.archCapabilitiesBit, 0)

        for leaf: UInt32 in hasLeaf1F ? [0xB, 0x1F] : [0xB] {
            let smt = try lookup(entries, leaf, 0), core = try lookup(entries, leaf, 1), end = try lookup(entries, leaf, 2)
            XCTAssertEqual([smt.eax, smt.ebx, smt.ecx, smt.edx], [0, 1, 0x100, UInt32(index)], "leaf \(leaf).0: one thread")
            XCTAssertEqual([core.eax, core.ebx, core.ecx, core.edx], [UInt32(bits), UInt32(count), 0x201, UInt32(index)],
                           "leaf \(leaf).1: the package's cores")
            XCTAssertEqual([end.eax, end.ebx, end.ecx, end.edx], [0, 0, 2, UInt32(index)], "leaf \(leaf).2: end")
            XCTAssertTrue([smt, core, end].allSatisfy { $0.flags == GuestCPUID.significantIndex })
            XCTAssertEqual(entries.filter { $0.function == leaf }.count, 3, "no host subleaf of \(leaf) left")
            // As a kernel decodes it: package = APIC id >> core shift, core = the bits below.
            XCTAssertEqual(Int(core.edx) >> Int(core.eax), 0, "one package")
            XCTAssertEqual(Int(core.edx) & ((1 << Int(core.eax)) - 1), index, "core id is the vCPU index")
        }
        if !hasLeaf1F { XCTAssertTrue(entries.allSatisfy { $0.function != 0x1F }, "no 0x1F beyond the maximum leaf") }
    }

    /// Everything outside the topology fields is KVM's, untouched.
    private func checkOthersUntouched(_ entries: [kvm_cpuid_entry2], supported: [kvm_cpuid_entry2], rewritten: Set<UInt32>) {
        let kept = supported.filter { !rewritten.contains($0.function) }
        for original in kept {
            let same = entries.first { $0.function == original.function && $0.index == original.index }
            XCTAssertEqual(same.map { [$0.eax, $0.ebx, $0.ecx, $0.edx, $0.flags] },
                           [original.eax, original.ebx, original.ecx, original.edx, original.flags],
                           "leaf \(String(original.function, radix: 16)).\(original.index) unchanged")
        }
    }

    func testAMDHostTopologyIsReplacedByTheVMs() throws {
        let supported = CapturedCPUID.parse(CapturedCPUID.amdEPYC)
        for count in counts {
            for index in Set([0, count / 2, count - 1]) {
                let entries = GuestCPUID.entries(supported: supported, vcpuIndex: index, vcpuCount: count)
                try checkCommonLeaves(entries, index: index, count: count, hasLeaf1F: false)
                let bits = CPUTopology(vcpuCount: count).coreIDBits

                let ext1 = try lookup(entries, 0x8000_0001)
                XCTAssertEqual(ext1.ecx & GuestCPUID.cmpLegacyBit != 0, count > 1, "CmpLegacy")
                XCTAssertNotEqual(ext1.ecx & GuestCPUID.topologyExtensionsBit, 0, "TOPOEXT kept")
                let sizes = try lookup(entries, 0x8000_0008)
                XCTAssertEqual(field(sizes.ecx, 0, 7), count - 1, "0x8000_0008: NC")
                XCTAssertEqual(field(sizes.ecx, 12, 15), bits, "0x8000_0008: ApicIdCoreIdSize")
                XCTAssertEqual(sizes.eax, 0x3030, "address sizes kept")

                let unit = try lookup(entries, 0x8000_001E)
                XCTAssertEqual(unit.eax, UInt32(index), "extended APIC id")
                XCTAssertEqual(field(unit.ebx, 0, 7), index, "compute unit id")
                XCTAssertEqual(field(unit.ebx, 8, 15), 0, "one thread per unit")
                XCTAssertEqual(unit.ecx, 0, "one node")

                // Cache properties: L1 and L2 private to the core, L3 the package's.
                for subleaf: UInt32 in 0...3 {
                    let cache = try lookup(entries, 0x8000_001D, subleaf)
                    let level = field(cache.eax, 5, 7)
                    XCTAssertEqual(field(cache.eax, 14, 25) + 1, level >= 3 ? 1 << bits : 1, "L\(level) sharing")
                    XCTAssertEqual(cache.eax & 0x3FFF, supported.first { $0.function == 0x8000_001D && $0.index == subleaf }!.eax & 0x3FFF)
                }
                XCTAssertEqual(try lookup(entries, 0x8000_001D, 4).eax, 0, "end of the cache list untouched")
                // This PVM host offers no XSAVE in leaf 1 yet has leaf 0xD: it goes (XSaveLeaf).
                XCTAssertTrue(entries.allSatisfy { $0.function != 0xD }, "no XSAVE, no leaf 0xD")
                checkOthersUntouched(entries, supported: supported,
                                     rewritten: [1, 7, 0xB, 0xD, 0x8000_0001, 0x8000_0008, 0x8000_001D, 0x8000_001E])
            }
        }
    }

    func testIntelHostTopologyIsReplacedByTheVMs() throws {
        let supported = CapturedCPUID.parse(CapturedCPUID.intelXeon)
        for count in counts {
            for index in Set([0, count / 2, count - 1]) {
                let entries = GuestCPUID.entries(supported: supported, vcpuIndex: index, vcpuCount: count)
                try checkCommonLeaves(entries, index: index, count: count, hasLeaf1F: true)
                let bits = CPUTopology(vcpuCount: count).coreIDBits
                for subleaf: UInt32 in 0...3 {
                    let cache = try lookup(entries, 4, subleaf)
                    let level = field(cache.eax, 5, 7)
                    XCTAssertEqual(field(cache.eax, 26, 31) + 1, min(1 << bits, 64), "leaf 4.\(subleaf): cores")
                    XCTAssertEqual(field(cache.eax, 14, 25) + 1, level >= 3 ? 1 << bits : 1, "leaf 4.\(subleaf): L\(level) sharing")
                }
                XCTAssertEqual(try lookup(entries, 4, 4).eax, 0, "end of the cache list untouched")
                // AMD's leaves mean nothing on Intel and stay as KVM gave them.
                // Leaf 0xD loses the AMX state leaf 7 does not offer (XSaveLeafTests).
                checkOthersUntouched(entries, supported: supported, rewritten: [1, 4, 7, 0xB, 0xD, 0x1F])
            }
        }
    }

    /// Every vCPU of a VM agrees on the package; only the ids differ.
    func testVCPUsOfOneVMDifferOnlyInTheirIDs() throws {
        let supported = CapturedCPUID.parse(CapturedCPUID.amdEPYC)
        let first = GuestCPUID.entries(supported: supported, vcpuIndex: 0, vcpuCount: 4)
        let third = GuestCPUID.entries(supported: supported, vcpuIndex: 2, vcpuCount: 4)
        XCTAssertEqual(first.count, third.count)
        let idLeaves: Set<UInt32> = [1, 0xB, 0x8000_001E]
        for (a, b) in zip(first, third) where !idLeaves.contains(a.function) {
            XCTAssertEqual([a.function, a.index, a.eax, a.ebx, a.ecx, a.edx], [b.function, b.index, b.eax, b.ebx, b.ecx, b.edx])
        }
    }
}

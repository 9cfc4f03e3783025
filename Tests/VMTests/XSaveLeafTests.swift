import XCTest
import CKVM
@testable import VMCore

/// Leaf 0xD offers a state component only with the feature that uses it, and sizes
/// the XSAVE area from what it offers: on the Intel table (AVX, AVX-512 and PKRU
/// offered, AMX state listed without AMX-TILE) and on the AMD one captured on this
/// PVM host (leaf 0xD present, XSAVE not offered).
final class XSaveLeafTests: XCTestCase {
    private var intel: [kvm_cpuid_entry2] { CapturedCPUID.parse(CapturedCPUID.intelXeon) }

    private func leaf(_ entries: [kvm_cpuid_entry2], _ function: UInt32, _ index: UInt32 = 0) -> kvm_cpuid_entry2? {
        entries.first { $0.function == function && $0.index == index }
    }

    private func modified(_ table: [kvm_cpuid_entry2], _ function: UInt32, _ index: UInt32 = 0,
                          _ change: (inout kvm_cpuid_entry2) -> Void) -> [kvm_cpuid_entry2] {
        table.map { entry in
            var entry = entry
            if entry.function == function && entry.index == index { change(&entry) }
            return entry
        }
    }

    func testStateWithoutItsFeatureIsDroppedAndTheAreaShrinks() throws {
        let entries = XSaveLeaf.sanitize(intel)
        let main = try XCTUnwrap(leaf(entries, 0xD))
        XCTAssertEqual(main.eax, 0x2E7, "x87, SSE, AVX, AVX-512, PKRU; not AMX (no AMX-TILE in leaf 7)")
        XCTAssertEqual(main.edx, 0)
        XCTAssertEqual(main.ecx, 0xA80 + 8, "the area ends with PKRU")
        XCTAssertNil(leaf(entries, 0xD, 17))
        XCTAssertNil(leaf(entries, 0xD, 18))
        for kept: UInt32 in [1, 2, 5, 6, 7, 9] { XCTAssertNotNil(leaf(entries, 0xD, kept), "subleaf \(kept)") }
    }

    func testOfferingAMXKeepsItsState() throws {
        let entries = XSaveLeaf.sanitize(modified(intel, 7) { $0.edx |= 1 << 24 })
        let main = try XCTUnwrap(leaf(entries, 0xD))
        XCTAssertEqual(main.eax, 0x602E7)
        XCTAssertEqual(main.ecx, 0x2B00, "what KVM said: the whole area up to TILEDATA's end")
    }

    func testHidingAVX512AndPKULeavesAVX() throws {
        let table = modified(modified(intel, 7) { $0.ebx &= ~(1 << 16) }, 7) { $0.ecx &= ~(1 << 3) }
        let main = try XCTUnwrap(leaf(XSaveLeaf.sanitize(table), 0xD))
        XCTAssertEqual(main.eax, 0x07)
        XCTAssertEqual(main.ecx, 0x240 + 0x100, "the area ends with the AVX state")
    }

    func testHidingAVXLeavesTheLegacyArea() throws {
        var table = modified(intel, 1) { $0.ecx &= ~(1 << 28) }
        table = modified(modified(table, 7) { $0.ebx &= ~(1 << 16) }, 7) { $0.ecx &= ~(1 << 3) }
        let main = try XCTUnwrap(leaf(XSaveLeaf.sanitize(table), 0xD))
        XCTAssertEqual(main.eax, 0x03)
        XCTAssertEqual(main.ecx, 576, "FXSAVE area and XSAVE header")
    }

    func testWithoutXSAVEThereIsNoLeafD() {
        let amd = CapturedCPUID.parse(CapturedCPUID.amdEPYC)
        XCTAssertNotNil(leaf(amd, 0xD), "the host lists it")
        let entries = XSaveLeaf.sanitize(amd)
        XCTAssertTrue(entries.allSatisfy { $0.function != 0xD })
        XCTAssertEqual(entries.count, amd.count - amd.filter { $0.function == 0xD }.count, "nothing else changes")
    }

    func testEveryOfferedComponentHasItsArea() throws {
        for count in [1, 4] {
            let entries = GuestCPUID.entries(supported: intel, vcpuIndex: 0, vcpuCount: count)
            let main = try XCTUnwrap(leaf(entries, 0xD))
            for bit in 2..<32 where main.eax & (1 << UInt32(bit)) != 0 {
                XCTAssertNotNil(leaf(entries, 0xD, UInt32(bit)), "component \(bit) offered has its area")
            }
        }
    }
}

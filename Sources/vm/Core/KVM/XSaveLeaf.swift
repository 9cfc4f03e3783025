import CKVM

/// CPUID leaf 0xD (XSAVE state) made to agree with the features the guest's other
/// leaves offer (Intel SDM vol. 1 §13.2, AMD APM vol. 3 E.3.13): a state component is
/// offered in XCR0 only if the feature that uses it is, and the sizes follow.
/// KVM's table agrees on a plain host; it need not once a feature is hidden, and a
/// kernel that sizes its XSAVE buffer from leaf 0xD and enables XCR0 bits from it
/// must not be told of state it cannot use. Without XSAVE (leaf 1 ECX bit 26) there is
/// no leaf 0xD at all.
enum XSaveLeaf {
    static let function: UInt32 = 0xD
    static let xsaveBit: UInt32 = 1 << 26            // leaf 1 ECX
    /// The legacy FXSAVE area and the XSAVE header: the size with x87 and SSE only.
    static let legacyAreaSize: UInt32 = 512 + 64

    /// Which XCR0 components (bit numbers) need which feature flag to be offered.
    private static let requirements: [(components: [Int], leaf: UInt32, register: KeyPath<kvm_cpuid_entry2, UInt32>, bit: Int)] = [
        ([2], 1, \.ecx, 28),           // AVX: YMM_Hi128
        ([3, 4], 7, \.ebx, 14),        // MPX: BNDREGS, BNDCSR
        ([5, 6, 7], 7, \.ebx, 16),     // AVX-512F: opmask, ZMM_Hi256, Hi16_ZMM
        ([9], 7, \.ecx, 3),            // PKU: PKRU
        ([17, 18], 7, \.edx, 24),      // AMX-TILE: TILECFG, TILEDATA
    ]

    static func sanitize(_ entries: [kvm_cpuid_entry2]) -> [kvm_cpuid_entry2] {
        let leaf1 = entries.first { $0.function == 1 }
        guard let leaf1, leaf1.ecx & xsaveBit != 0 else { return entries.filter { $0.function != function } }
        let leaf7 = entries.first { $0.function == 7 && $0.index == 0 }
        var offered: UInt64 = 0b11  // x87 and SSE need nothing more
        guard let main = entries.first(where: { $0.function == function && $0.index == 0 }) else { return entries }
        let supported = UInt64(main.eax) | UInt64(main.edx) << 32
        for requirement in requirements {
            let source = requirement.leaf == 1 ? leaf1 : leaf7
            guard let source, source[keyPath: requirement.register] & (1 << UInt32(requirement.bit)) != 0 else { continue }
            for component in requirement.components { offered |= 1 << UInt64(component) }
        }
        // A component the table describes no area for cannot be saved either.
        let described = entries.filter { $0.function == function && $0.index >= 2 && $0.eax != 0 }
        var mask = supported & ~UInt64(0b11) & offered
        mask &= described.reduce(UInt64(0)) { $0 | (1 << UInt64($1.index)) } | 0b11
        mask |= supported & 0b11
        // Components 2..62 with an area: keep those of XCR0 that stay, and every
        // supervisor (XSS) one, which leaf 0xD.1 ECX/EDX governs and we leave alone.
        let userArea = described.filter { mask & (1 << UInt64($0.index)) != 0 && $0.ecx & 1 == 0 }
        let end = userArea.map { $0.ebx + $0.eax }.max() ?? 0
        return entries.compactMap { original in
            guard original.function == function else { return original }
            var entry = original
            switch entry.index {
            case 0:
                entry.eax = UInt32(truncatingIfNeeded: mask)
                entry.edx = UInt32(truncatingIfNeeded: mask >> 32)
                entry.ecx = max(legacyAreaSize, end)  // every offered component enabled
                entry.ebx = min(entry.ebx, entry.ecx)  // KVM refreshes it as the guest sets XCR0
                return entry
            case 1:
                return entry
            default:
                let supervisor = entry.ecx & 1 != 0
                return supervisor || mask & (1 << UInt64(entry.index)) != 0 ? entry : nil
            }
        }
    }
}

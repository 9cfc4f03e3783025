import CKVM

/// struct kvm_cpuid2 with its flexible array of entries, as one buffer that
/// the CPUID ioctls can read and write.
struct CPUIDTable {
    private var storage: [UInt8]
    private static let headerSize = MemoryLayout<kvm_cpuid2>.size
    private static let entrySize = MemoryLayout<kvm_cpuid_entry2>.stride

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: CPUIDTable.headerSize + capacity * CPUIDTable.entrySize)
        // SAFETY: storage is headerSize (8) + capacity entries long; nent is its first u32.
        storage.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(capacity), as: UInt32.self) }  // nent
    }

    init(entries: [kvm_cpuid_entry2]) {
        self.init(capacity: entries.count)
        // SAFETY: init(capacity: entries.count) made room for every entry at its stride.
        storage.withUnsafeMutableBytes { raw in
            for (index, entry) in entries.enumerated() {
                raw.storeBytes(of: entry, toByteOffset: CPUIDTable.headerSize + index * CPUIDTable.entrySize, as: kvm_cpuid_entry2.self)
            }
        }
    }

    var entries: [kvm_cpuid_entry2] {
        // SAFETY: KVM writes nent <= the capacity it was given (it fails with E2BIG otherwise),
        // so every entry read lies inside storage; kvm_cpuid_entry2 is plain data.
        storage.withUnsafeBytes { raw in
            let count = Int(raw.load(as: UInt32.self))
            return (0..<count).map {
                raw.loadUnaligned(fromByteOffset: CPUIDTable.headerSize + $0 * CPUIDTable.entrySize, as: kvm_cpuid_entry2.self)
            }
        }
    }

    @discardableResult
    mutating func withRawPointer<Result>(_ body: (UnsafeMutableRawPointer) throws -> Result) rethrows -> Result {
        // SAFETY: the pointer is to a whole kvm_cpuid2 with room for nent entries, valid in `body`.
        try storage.withUnsafeMutableBytes { try body($0.baseAddress!) }
    }
}

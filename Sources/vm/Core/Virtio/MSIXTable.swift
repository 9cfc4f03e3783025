/// An MSI-X table and its pending-bit array (PCI 3.0 §6.8.2), as the guest sees them.
struct MSIXTable {
    struct Entry: Equatable {
        var address: UInt64 = 0
        var data: UInt32 = 0
        var masked = true  // entries come out of reset masked
    }

    private(set) var entries: [Entry]
    private var pending: [Bool]

    init(vectorCount: Int) {
        entries = Array(repeating: Entry(), count: vectorCount)
        pending = Array(repeating: false, count: vectorCount)
    }

    var count: Int { entries.count }

    /// A vector number the guest wrote, or NO_VECTOR if it names no entry (§4.1.5.1.2: the device reports failure that way).
    func validVector(_ vector: UInt16) -> UInt16 {
        Int(vector) < entries.count ? vector : VirtioPCILayout.noVector
    }

    /// Field offsets within a 16-byte entry: address low, address high, data, vector control.
    func read(entry index: Int, field: Int, size: Int) -> UInt64 {
        let entry = entries[index]
        let words: [UInt32] = [UInt32(truncatingIfNeeded: entry.address), UInt32(truncatingIfNeeded: entry.address >> 32),
                               entry.data, entry.masked ? 1 : 0]
        let word = field / 4
        guard word < 4 else { return 0 }
        if size == 8 && word % 2 == 0 { return UInt64(words[word]) | UInt64(words[word + 1]) << 32 }
        return UInt64(words[word])
    }

    mutating func write(entry index: Int, field: Int, value: UInt64, size: Int) {
        let writes: [(Int, UInt32)] = size == 8
            ? [(field / 4, UInt32(truncatingIfNeeded: value)), (field / 4 + 1, UInt32(truncatingIfNeeded: value >> 32))]
            : [(field / 4, UInt32(truncatingIfNeeded: value))]
        for (word, value) in writes {
            switch word {
            case 0: entries[index].address = (entries[index].address & 0xFFFF_FFFF_0000_0000) | UInt64(value)
            case 1: entries[index].address = (entries[index].address & 0xFFFF_FFFF) | UInt64(value) << 32
            case 2: entries[index].data = value
            case 3: entries[index].masked = value & 1 == 1
            default: break
            }
        }
    }

    func isPending(_ vector: Int) -> Bool { vector < pending.count && pending[vector] }
    mutating func setPending(_ vector: Int) { if vector < pending.count { pending[vector] = true } }
    mutating func clearPending(_ vector: Int) { if vector < pending.count { pending[vector] = false } }

    /// `size` bytes of the PBA starting at `byteOffset`.
    func pendingBits(byteOffset: Int, size: Int) -> UInt64 {
        var value: UInt64 = 0
        for bit in 0..<(size * 8) where isPending(byteOffset * 8 + bit) { value |= 1 << UInt64(bit) }
        return value
    }
}

// MARK: Snapshot

extension MSIXTable {
    var pendingBits: [Bool] { pending }

    /// A saved table of the same size (the transport checks the count first).
    mutating func restore(entries saved: [Entry], pending savedPending: [Bool]) {
        guard saved.count == entries.count, savedPending.count == pending.count else { return }
        entries = saved
        pending = savedPending
    }
}

import VMCore

/// Why the fake refused an access.
enum FakeMemoryError: Error, Equatable {
    case outOfRange(UInt64)
    case unaligned(UInt64)
}

/// Guest-physical memory for tests: `size` bytes from address 0, stored as
/// 64-bit words. Accesses that are unaligned or reach past the end throw,
/// so tests can point page tables outside of it.
final class FakePhysicalMemory: PhysicalMemory {
    private static let wordSize: UInt64 = 8

    let size: UInt64
    private var words: [UInt64]
    private(set) var writeCount = 0

    init(size: UInt64, filledWith value: UInt64 = 0) {
        precondition(size % Self.wordSize == 0, "fake memory size must be whole words")
        self.size = size
        self.words = Array(repeating: value, count: Int(size / Self.wordSize))
    }

    func readUInt64(at physicalAddress: UInt64) throws -> UInt64 {
        words[try index(of: physicalAddress)]
    }

    func writeUInt64(_ value: UInt64, at physicalAddress: UInt64) throws {
        words[try index(of: physicalAddress)] = value
        writeCount += 1
    }

    /// Test convenience for hand-building tables: entry `index` of the table at `table`.
    func setEntry(table: UInt64, index: UInt64, _ entry: PageTableEntry) throws {
        try writeUInt64(entry.rawValue, at: table + index * PagingLevel.entrySize)
    }

    func entry(table: UInt64, index: UInt64) throws -> PageTableEntry {
        PageTableEntry(rawValue: try readUInt64(at: table + index * PagingLevel.entrySize))
    }

    private func index(of address: UInt64) throws -> Int {
        guard address % Self.wordSize == 0 else { throw FakeMemoryError.unaligned(address) }
        let (end, overflow) = address.addingReportingOverflow(Self.wordSize)
        guard !overflow, end <= size else { throw FakeMemoryError.outOfRange(address) }
        return Int(address / Self.wordSize)
    }
}

/// Guest-physical memory as the page-table code sees it: 64-bit little-endian words at physical addresses.
public protocol PhysicalMemory {
    func readUInt64(at physicalAddress: UInt64) throws -> UInt64
    func writeUInt64(_ value: UInt64, at physicalAddress: UInt64) throws
}

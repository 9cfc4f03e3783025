import GuestRAM
import MemorySlots
/// The page-table code reads and writes guest RAM through the checked accessors.
extension GuestMemory: PhysicalMemory {
    public func readUInt64(at physicalAddress: UInt64) throws -> UInt64 {
        UInt64(littleEndian: try read(UInt64.self, at: GuestAddress(physicalAddress)))
    }

    public func writeUInt64(_ value: UInt64, at physicalAddress: UInt64) throws {
        try write(value.littleEndian, at: GuestAddress(physicalAddress))
    }
}

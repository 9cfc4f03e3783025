import CKVM
import GuestRAM
import MemorySlots

/// The boot GDT the VMM provides, and the segment registers that match it.
/// Entries: null, 64-bit code, 32-bit code, flat data, and a 32-bit TSS
/// (entry checks on VMX want a usable task register even if the guest never uses it).
enum BootGDT {
    static let code64Selector: UInt16 = 0x08
    static let code32Selector: UInt16 = 0x10
    static let dataSelector: UInt16 = 0x18
    static let taskSelector: UInt16 = 0x20

    private static let entries: [UInt64] = [
        0,
        0x00AF_9B00_0000_FFFF,  // code, 64-bit (L), present, ring 0, 4 GiB
        0x00CF_9B00_0000_FFFF,  // code, 32-bit (D), present, ring 0, 4 GiB
        0x00CF_9300_0000_FFFF,  // data, read/write, 4 GiB
        0x0000_8B00_0000_0067,  // 32-bit TSS (busy), base 0, limit 0x67
    ]

    static func write(into memory: GuestMemory) throws {
        for (index, entry) in entries.enumerated() {
            try memory.write(entry.littleEndian, at: GuestAddress(BootLayout.gdt.value + UInt64(index * 8)))
        }
    }

    static var descriptorTable: kvm_dtable {
        kvm_dtable(base: BootLayout.gdt.value, limit: UInt16(entries.count * 8 - 1), padding: (0, 0, 0))
    }

    /// The hidden part of a segment register loaded from `selector`.
    static func segment(_ selector: UInt16) -> kvm_segment {
        let entry = entries[Int(selector) / 8]
        var segment = kvm_segment()
        segment.selector = selector
        segment.base = ((entry >> 16) & 0xFF_FFFF) | ((entry >> 32) & 0xFF00_0000)
        let rawLimit = UInt32((entry & 0xFFFF) | ((entry >> 32) & 0xF_0000))
        let granular = (entry >> 55) & 1 == 1
        segment.limit = granular ? (rawLimit << 12) | 0xFFF : rawLimit
        segment.type = UInt8((entry >> 40) & 0xF)
        segment.s = UInt8((entry >> 44) & 1)
        segment.dpl = UInt8((entry >> 45) & 3)
        segment.present = UInt8((entry >> 47) & 1)
        segment.avl = UInt8((entry >> 52) & 1)
        segment.l = UInt8((entry >> 53) & 1)
        segment.db = UInt8((entry >> 54) & 1)
        segment.g = granular ? 1 : 0
        return segment
    }
}

import GuestRAM
import MemorySlots

/// struct hvm_start_info of the Xen PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h),
/// version 1, with its memory map. Written by `write(into:)` field by field at fixed offsets.
struct PVHStartInfo {
    static let magic: UInt32 = 0x336E_C578
    static let version: UInt32 = 1
    static let size = 56
    static let memoryMapEntrySize = 24
    static let moduleEntrySize = 32

    let commandLine: GuestAddress
    let memoryMap: [MemoryMapEntry]
    /// Boot modules (Linux takes the first as its initrd), as struct hvm_modlist_entry.
    var modules: [(address: GuestAddress, size: UInt64)] = []
    var moduleListAddress: GuestAddress? = nil

    func write(into memory: GuestMemory, at address: GuestAddress, memoryMapAt mapAddress: GuestAddress) throws {
        var header = [UInt8](repeating: 0, count: PVHStartInfo.size)
        func put<Value: FixedWidthInteger>(_ value: Value, _ offset: Int) {
            // SAFETY: the integer's bytes are copied into the array in range (replaceSubrange checks it).
            withUnsafeBytes(of: value.littleEndian) { header.replaceSubrange(offset..<(offset + $0.count), with: $0) }
        }
        put(PVHStartInfo.magic, 0)
        put(PVHStartInfo.version, 4)
        put(UInt32(0), 8)                    // flags
        put(UInt32(modules.count), 12)       // nr_modules
        put(modules.isEmpty ? 0 : moduleListAddress?.value ?? 0, 16)  // modlist_paddr
        put(commandLine.value, 24)           // cmdline_paddr
        put(ACPITables.rsdpAddress.value, 32) // rsdp_paddr
        put(mapAddress.value, 40)            // memmap_paddr
        put(UInt32(memoryMap.count), 48)     // memmap_entries
        try memory.writeBytes(header, at: address)

        for (index, entry) in memoryMap.enumerated() {
            var record = [UInt8](repeating: 0, count: PVHStartInfo.memoryMapEntrySize)
            // SAFETY: each field's bytes go into its own 8- or 4-byte range of the 24-byte record.
            withUnsafeBytes(of: entry.base.littleEndian) { record.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: entry.size.littleEndian) { record.replaceSubrange(8..<16, with: $0) }
            withUnsafeBytes(of: entry.kind.rawValue.littleEndian) { record.replaceSubrange(16..<20, with: $0) }
            let slot = GuestAddress(mapAddress.value + UInt64(index * PVHStartInfo.memoryMapEntrySize))
            try memory.writeBytes(record, at: slot)
        }
        guard !modules.isEmpty else { return }
        guard let moduleListAddress else { preconditionFailure("PVH modules without a list address") }
        for (index, module) in modules.enumerated() {
            var record = [UInt8](repeating: 0, count: PVHStartInfo.moduleEntrySize)
            // SAFETY: as above, into the 16-byte module record.
            withUnsafeBytes(of: module.address.value.littleEndian) { record.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: module.size.littleEndian) { record.replaceSubrange(8..<16, with: $0) }
            // cmdline_paddr and reserved stay 0.
            try memory.writeBytes(record, at: GuestAddress(moduleListAddress.value + UInt64(index * PVHStartInfo.moduleEntrySize)))
        }
    }
}

import MemorySlots

/// Where the VMM puts its boot structures in guest RAM below 1 MiB. Kernels
/// load at or above 1 MiB, so nothing they bring can overwrite these.
enum BootLayout {
    static let gdt = GuestAddress(0x500)
    /// Top of a small stack for the 64-bit ELF entry (PVH defines no stack).
    static let stackTop = GuestAddress(0x5000)
    static let startInfo = GuestAddress(0x6000)
    static let memoryMap = GuestAddress(0x6100)
    static let memoryMapCapacity = 16
    /// PVH boot modules (hvm_modlist_entry), after the memory map.
    static let moduleList = GuestAddress(0x6400)
    /// struct boot_params (the zero page) for the Linux 64-bit boot protocol.
    static let zeroPage = GuestAddress(0x7000)
    /// 0x8000–0x8fff is left free: guests put their AP start-up trampoline there
    /// (the guest kit's `test=smp` does), as SIPI vectors must point below 1 MiB.
    static let freeForGuestTrampoline = GuestAddress(0x8000)
    static let pageTables = GuestAddress(0x9000)
    static let commandLine = GuestAddress(0x2_0000)
    static let commandLineCapacity = 4096
    /// The lowest address a kernel segment may occupy.
    static let kernelFloor = GuestAddress(0x10_0000)
    /// How much the boot page tables identity-map for the 64-bit entry.
    static let identityMappedBytes: UInt64 = 1 << 30
    /// The Linux 64-bit boot protocol wants the kernel, zero page, command line and
    /// initrd mapped; the first 4 GiB cover them wherever they are (tables end at 0xF000).
    static let linuxIdentityMappedBytes: UInt64 = 4 << 30
    /// MP floating pointer and configuration table, in the reserved BIOS area.
    static let mpTable = MPTable.defaultAddress
}

/// A guest-physical memory map entry, e820 types (used by PVH's memmap and Linux's boot_params).
struct MemoryMapEntry: Equatable {
    enum Kind: UInt32 {
        case ram = 1
        case reserved = 2
    }

    let base: UInt64
    let size: UInt64
    let kind: Kind

    /// The map a PC guest expects from our slot table: low RAM up to the EBDA,
    /// the legacy BIOS area reserved, then RAM from 1 MiB, and RAM above 4 GiB.
    static func map(for slots: [SlotDescriptor]) -> [MemoryMapEntry] {
        let ebda: UInt64 = 0x9_FC00
        let oneMiB: UInt64 = 0x10_0000
        var entries: [MemoryMapEntry] = []
        for slot in slots.sorted(by: { $0.guestBase < $1.guestBase }) {
            let base = slot.guestBase.value, end = base + slot.size
            if base < oneMiB {
                entries.append(MemoryMapEntry(base: base, size: min(end, ebda) - base, kind: .ram))
                entries.append(MemoryMapEntry(base: ebda, size: oneMiB - ebda, kind: .reserved))
                if end > oneMiB { entries.append(MemoryMapEntry(base: oneMiB, size: end - oneMiB, kind: .ram)) }
            } else {
                entries.append(MemoryMapEntry(base: base, size: slot.size, kind: .ram))
            }
        }
        return entries
    }
}

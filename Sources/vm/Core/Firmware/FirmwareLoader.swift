import BootImage
import GuestRAM
import MemorySlots

/// Puts a BIOS image where `FirmwareImageLayout` says: a private, read-only copy
/// at the top of 4 GiB (its own memory, not guest RAM: it is not shared with the
/// device processes, and the guest cannot change it) and the alias below 1 MiB,
/// written into RAM. The alias is RAM, so the BIOS can shadow itself there without
/// a chipset's PAM registers doing anything (OpenBSD's vmd copies its BIOS the same way).
enum FirmwareLoader {
    /// Returns the memory holding the high copy, to be registered with KVM read-only.
    /// `writeAlias` false: a restored VM's RAM holds the alias as the guest left it.
    static func load(_ image: [UInt8], into memory: GuestMemory, writeAlias: Bool = true) throws -> GuestMemory {
        let layout = try FirmwareImageLayout(size: image.count)
        let rom = try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(layout.highBase), size: UInt64(layout.size))])
        try rom.writeBytes(image, at: GuestAddress(layout.highBase))
        if writeAlias { try memory.writeBytes(Array(image.suffix(layout.lowAliasSize)), at: GuestAddress(layout.lowAliasBase)) }
        return rom
    }
}

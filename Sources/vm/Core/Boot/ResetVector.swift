import GuestRAM
import MemorySlots

/// What sits at the x86 reset vector's real-mode alias, F000:FFF0 (0xFFFF0), where a
/// PC's BIOS has its entry. There is no BIOS here, but kernels jump there to reboot:
/// Linux on a hardware-reduced ACPI platform without EFI takes its BOOT_BIOS path
/// (machine_real_restart), which drops to real mode and far-jumps to F000:FFF0. On a
/// PC that restarts the BIOS, which is a reboot; here three instructions make it one:
/// pulse the reset line through the i8042 (command 0xFE on port 0x64), then halt.
/// Without them the vCPU ran the zeros of the BIOS area for ever.
enum ResetVector {
    static let address = GuestAddress(0xF_FFF0)
    /// mov al, 0xFE; out 0x64, al; cli; hlt; jmp short to that hlt
    static let code: [UInt8] = [0xB0, 0xFE, 0xE6, 0x64, 0xFA, 0xF4, 0xEB, 0xFD]

    static func write(into memory: GuestMemory) throws {
        try memory.writeBytes(code, at: address)
    }
}

import CKVM
import GuestRAM
import Logging

/// `boot device disk` in the vm process: the BIOS where the reset vector finds it and
/// fw_cfg on its ports. The boot vCPU is then left in KVM's reset state (F000:FFF0,
/// the top of 4 GiB); the BIOS learns the machine over fw_cfg and takes our ACPI
/// tables from it.
enum FirmwareBoot {
    /// Returns the memory of the BIOS's read-only copy, which must live as long as the VM.
    /// `restoring`: RAM (the BIOS's alias below 1 MiB among it) comes from a snapshot, so it is not written.
    static func install(_ image: [UInt8], memory: GuestMemory, kvm: KVMVirtualMachine, ports: AddressBus, vcpus: Int,
                        restoring: Bool = false, logger: Logger) throws -> GuestMemory {
        let rom = try FirmwareLoader.load(image, into: memory, writeAlias: !restoring)
        let readOnly = (try? kvm.system.checkExtension(Int32(KVM_CAP_READONLY_MEM))) ?? 0 > 0
        try kvm.register(rom, firstSlot: memory.slots.count, readOnly: readOnly)
        let contents = try FirmwareConfigContents.table(slots: memory.slots, processorCount: vcpus,
                                                        acpi: try ACPITables(processorCount: vcpus))
        try ports.register(FirmwareConfigDevice(table: contents, memory: memory), base: FirmwareConfigDevice.port, size: FirmwareConfigDevice.size)
        let base = rom.slots.first.map { "0x" + String($0.guestBase.value, radix: 16) } ?? "?"
        logger.info("loaded a \(image.count)-byte BIOS at \(base)\(readOnly ? "" : " (writable: KVM has no read-only memory)")")
        return rom
    }
}

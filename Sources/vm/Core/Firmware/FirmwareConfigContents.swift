import MemorySlots

/// What SeaBIOS learns of this VM over fw_cfg, the items and files QEMU gives it
/// for the same purposes (SeaBIOS's fw/paravirt.c reads them):
/// - the vCPU count (it waits for that many APs to answer its SIPI);
/// - "etc/e820": the RAM (SeaBIOS reserves its own areas in it), and KVM's TSS and
///   identity-map pages below the BIOS as reserved;
/// - the ACPI tables with their loader script (`FirmwareACPIFiles`);
/// - no graphics, so SeaBIOS sends int 10h text to COM1 (its serial console) and the
///   boot loader's output reaches the VM's console; no boot menu, so no 2.5 s wait.
enum FirmwareConfigContents {
    static let e820File = "etc/e820"

    static func table(slots: [SlotDescriptor], processorCount: Int, acpi: ACPITables) throws -> FirmwareConfigTable {
        var table = FirmwareConfigTable()
        table.set(FirmwareConfigTable.Key.processorCount, FirmwareConfigTable.little(UInt64(processorCount), 2))
        table.set(FirmwareConfigTable.Key.maximumProcessors, FirmwareConfigTable.little(UInt64(processorCount), 2))
        table.set(FirmwareConfigTable.Key.noGraphic, FirmwareConfigTable.little(1, 2))
        table.set(FirmwareConfigTable.Key.bootMenu, FirmwareConfigTable.little(0, 2))
        try table.addFile(e820File, e820(slots: slots))
        try FirmwareACPIFiles(acpi).add(to: &table)
        return table
    }

    /// Packed entries of base (u64), length (u64) and type (u32, 1 RAM, 2 reserved).
    static func e820(slots: [SlotDescriptor]) -> [UInt8] {
        var entries: [(UInt64, UInt64, UInt32)] = slots.sorted { $0.guestBase < $1.guestBase }.map { ($0.guestBase.value, $0.size, 1) }
        entries.append((KVMVirtualMachine.identityMapAddress, 0x4000, 2))
        return entries.flatMap { base, length, type in
            FirmwareConfigTable.little(base, 8) + FirmwareConfigTable.little(length, 8) + FirmwareConfigTable.little(UInt64(type), 4)
        }
    }
}

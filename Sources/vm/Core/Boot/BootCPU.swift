import CKVM

/// Puts the boot vCPU in the state its entry expects (PVH boot ABI, or long mode).
enum BootCPU {
    private static let cr0ProtectionEnable: UInt64 = 1 << 0
    private static let cr0ExtensionType: UInt64 = 1 << 4
    private static let cr0Paging: UInt64 = 1 << 31
    private static let cr4PAE: UInt64 = 1 << 5
    private static let eferLongModeEnable: UInt64 = 1 << 8
    private static let eferLongModeActive: UInt64 = 1 << 10
    private static let rflagsReserved: UInt64 = 1 << 1

    static func configure(_ vcpu: Vcpu, for entry: BootEntry) throws {
        var sregs = try vcpu.specialRegisters()
        sregs.gdt = BootGDT.descriptorTable
        sregs.idt = kvm_dtable(base: 0, limit: 0, padding: (0, 0, 0))
        sregs.tr = BootGDT.segment(BootGDT.taskSelector)
        let data = BootGDT.segment(BootGDT.dataSelector)
        (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data)
        var regs = kvm_regs()
        regs.rflags = rflagsReserved
        regs.rbx = BootLayout.startInfo.value

        switch entry {
        case .pvh32(let address):
            sregs.cs = BootGDT.segment(BootGDT.code32Selector)
            sregs.cr0 = cr0ProtectionEnable | cr0ExtensionType
            sregs.cr4 = 0
            sregs.efer = 0
            regs.rip = UInt64(address)
        case .long64(let address, let cr3):
            sregs.cs = BootGDT.segment(BootGDT.code64Selector)
            sregs.cr0 = cr0ProtectionEnable | cr0ExtensionType | cr0Paging
            sregs.cr3 = cr3
            sregs.cr4 = cr4PAE
            sregs.efer = eferLongModeEnable | eferLongModeActive
            regs.rip = address
            regs.rdi = BootLayout.startInfo.value
            regs.rsp = BootLayout.stackTop.value
        case .linux64(let address, let cr3, let bootParams):
            // boot.rst, 64-bit boot protocol: long mode, paging with an identity map,
            // flat code/data segments, interrupts off (RFLAGS.IF clear), RSI = boot_params.
            sregs.cs = BootGDT.segment(BootGDT.code64Selector)
            sregs.cr0 = cr0ProtectionEnable | cr0ExtensionType | cr0Paging
            sregs.cr3 = cr3
            sregs.cr4 = cr4PAE
            sregs.efer = eferLongModeEnable | eferLongModeActive
            regs.rip = address
            regs.rsi = bootParams
            regs.rsp = BootLayout.stackTop.value
        }
        try vcpu.setSpecialRegisters(sregs)
        try vcpu.setRegisters(regs)
        try vcpu.resetFPU()
    }
}

import CKVM
import Snapshot

/// Tags of the machine section's fields: the in-kernel interrupt controllers and timers,
/// and the platform devices vm emulates.
enum MachineStateTag: UInt16 {
    case picPrimary = 1, picSecondary, ioapic, pit, clock, serial, cmos, i8042, shutdownRequested
}

extension KVMVirtualMachine {
    /// The PICs and the IOAPIC (KVM_GET_IRQCHIP, chips 0, 1 and 2).
    func interruptControllers() throws -> [kvm_irqchip] {
        try [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC].map { chip in
            var state = kvm_irqchip()
            state.chip_id = UInt32(chip)
            try kvmIoctl(fd, VMD_KVM_IOCTL_GET_IRQCHIP, "KVM_GET_IRQCHIP", &state)
            return state
        }
    }

    func restoreInterruptController(_ state: kvm_irqchip) throws {
        var state = state
        try kvmIoctl(fd, VMD_KVM_IOCTL_SET_IRQCHIP, "KVM_SET_IRQCHIP", &state)
    }
}

extension VirtualMachine {
    /// The machine section: taken while paused, with the timers as the pause froze them.
    func machineState() throws -> StateFields {
        guard let timers = pausedTimers else { throw SnapshotError.malformed("the VM is not paused") }
        var fields = StateFields()
        let chips = try kvm.interruptControllers()
        for (tag, chip) in zip([MachineStateTag.picPrimary, .picSecondary, .ioapic], chips) { fields.append(tag.rawValue, raw: chip) }
        fields.append(MachineStateTag.pit.rawValue, raw: timers.pit)
        fields.append(MachineStateTag.clock.rawValue, raw: timers.clock)
        fields.append(MachineStateTag.serial.rawValue, serial.savedState())
        fields.append(MachineStateTag.cmos.rawValue, cmos.savedState())
        fields.append(MachineStateTag.i8042.rawValue, i8042.savedState())
        fields.append(MachineStateTag.shutdownRequested.rawValue) { $0.write(control.shutdownWasRequested) }
        return fields
    }

    /// Puts the machine section back before the vCPUs run; the interrupt controllers go
    /// in with their chip numbers checked, the clock and PIT as a resume sets them.
    func restoreMachine(_ fields: StateFields) throws {
        for (tag, chip) in zip([MachineStateTag.picPrimary, .picSecondary, .ioapic],
                               [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC]) {
            var state = kvm_irqchip()
            try fields.raw(tag.rawValue, as: kvm_irqchip.self, "interrupt controller \(chip)", into: &state)
            guard state.chip_id == UInt32(chip) else { throw SnapshotError.malformed("interrupt controller \(chip) names chip \(state.chip_id)") }
            try kvm.restoreInterruptController(state)
        }
        var timers = KVMVirtualMachine.TimerState(pit: kvm_pit_state2(), clock: kvm_clock_data())
        try fields.raw(MachineStateTag.pit.rawValue, as: kvm_pit_state2.self, "PIT", into: &timers.pit)
        try fields.raw(MachineStateTag.clock.rawValue, as: kvm_clock_data.self, "KVM clock", into: &timers.clock)
        try kvm.restore(timers)
        do {
            try serial.restore(fields.bytes(MachineStateTag.serial.rawValue) ?? [])
            try cmos.restore(fields.bytes(MachineStateTag.cmos.rawValue) ?? [])
            try i8042.restore(fields.bytes(MachineStateTag.i8042.rawValue) ?? [])
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError.malformed("platform devices: \(error)")
        }
        control.restore(shutdownRequested: try fields.read(MachineStateTag.shutdownRequested.rawValue, "shutdown request") {
            try $0.read(Bool.self)
        })
    }
}

import CKVM
import CLinux
import GuestRAM
import LinuxSystem

/// A KVM VM: memory slots, the in-kernel irqchip and PIT, interrupt lines, vCPUs.
final class KVMVirtualMachine {
    let fd: FileDescriptor
    let system: KVMSystem

    /// Addresses KVM needs for its own use on Intel (real-mode TSS and EPT identity
    /// map), just below the 4 GiB BIOS area, inside our MMIO hole and away from any device.
    static let tssAddress: UInt64 = 0xFFFB_D000
    static let identityMapAddress: UInt64 = 0xFFFB_C000

    /// The VM with `memory` registered (nil: none yet), its irqchip and its PIT.
    init(system: KVMSystem, memory: GuestMemory? = nil) throws {
        self.system = system
        fd = try system.createVM()
        // Harmless where unneeded (AMD, PVM); required for VMX real mode.
        _ = try? kvmIoctl(fd, VMD_KVM_IOCTL_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", value: UInt(KVMVirtualMachine.tssAddress))
        var identityMap = KVMVirtualMachine.identityMapAddress
        _ = try? kvmIoctl(fd, VMD_KVM_IOCTL_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &identityMap)
        // RAM before the irqchip: making the irqchip leaves an SRCU grace period of the VM
        // running for a few ms, and a memory slot registered meanwhile waits for it (4-10 ms
        // on these hosts, measured; registered first, or 20 ms later, 0.1 ms each).
        if let memory { try register(memory) }
        try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", value: 0)
        var pit = kvm_pit_config()
        pit.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_PIT2, "KVM_CREATE_PIT2", &pit)
    }

    /// Gives KVM every slot of guest memory (the mapping stays owned by GuestMemory),
    /// as KVM slots `firstSlot` on; `readOnly` makes every one read-only for the guest
    /// (a ROM: guest writes exit as MMIO, and nothing is there to take them).
    func register(_ memory: GuestMemory, firstSlot: Int = 0, readOnly: Bool = false) throws {
        for (index, region) in memory.kvmUserspaceAddresses.enumerated() {
            var entry = kvm_userspace_memory_region()
            entry.slot = UInt32(firstSlot + index)
            entry.flags = region.slot.access == .readOnly || readOnly ? UInt32(KVM_MEM_READONLY) : 0
            entry.guest_phys_addr = region.slot.guestBase.value
            entry.memory_size = region.slot.size
            entry.userspace_addr = region.userspaceAddress
            try kvmIoctl(fd, VMD_KVM_IOCTL_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &entry)
        }
    }

    /// Turns KVM's log of the guest's writes on or off for every RAM slot (the same slots
    /// `register` made, registered again with KVM_MEM_LOG_DIRTY_PAGES set or cleared).
    func setDirtyLogging(_ memory: GuestMemory, enabled: Bool) throws {
        for (index, region) in memory.kvmUserspaceAddresses.enumerated() {
            var entry = kvm_userspace_memory_region()
            entry.slot = UInt32(index)
            entry.flags = enabled ? UInt32(KVM_MEM_LOG_DIRTY_PAGES) : 0
            entry.guest_phys_addr = region.slot.guestBase.value
            entry.memory_size = region.slot.size
            entry.userspace_addr = region.userspaceAddress
            try kvmIoctl(fd, VMD_KVM_IOCTL_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &entry)
        }
    }

    /// The pages of RAM slot `slot` (of `pages` pages) the guest wrote since the last call,
    /// one bit each in 64-bit words; KVM clears its log as it hands it over.
    func takeDirtyLog(slot: Int, pages: UInt64) throws -> [UInt64] {
        var words = [UInt64](repeating: 0, count: Int((pages + 63) / 64))
        try words.withUnsafeMutableBytes { bytes in
            var log = kvm_dirty_log()
            log.slot = UInt32(slot)
            log.dirty_bitmap = bytes.baseAddress
            try kvmIoctl(fd, VMD_KVM_IOCTL_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", &log)
        }
        return words
    }

    /// Drives an interrupt line of the in-kernel PIC/IOAPIC.
    func setIRQLine(_ irq: UInt32, high: Bool) throws {
        var level = kvm_irq_level()
        level.irq = irq
        level.level = high ? 1 : 0
        try kvmIoctl(fd, VMD_KVM_IOCTL_IRQ_LINE, "KVM_IRQ_LINE", &level)
    }

    /// The platform timers as they stand: the PIT's channels and the KVM clock.
    struct TimerState {
        var pit: kvm_pit_state2
        var clock: kvm_clock_data
    }

    /// Read at pause, written back at resume (QEMU does the same): setting the PIT
    /// reloads its channels and drops the ticks it counted while the vCPUs were parked,
    /// so the guest gets no burst of catch-up interrupts; setting the clock keeps
    /// kvmclock from jumping over the paused time.
    func timerState() throws -> TimerState {
        var state = TimerState(pit: kvm_pit_state2(), clock: kvm_clock_data())
        try kvmIoctl(fd, VMD_KVM_IOCTL_GET_PIT2, "KVM_GET_PIT2", &state.pit)
        try kvmIoctl(fd, VMD_KVM_IOCTL_GET_CLOCK, "KVM_GET_CLOCK", &state.clock)
        return state
    }

    func restore(_ state: TimerState) throws {
        var state = state
        // Only the clock value is set: KVM_SET_CLOCK takes no other flag from a get.
        state.clock.flags = 0
        try kvmIoctl(fd, VMD_KVM_IOCTL_SET_CLOCK, "KVM_SET_CLOCK", &state.clock)
        try kvmIoctl(fd, VMD_KVM_IOCTL_SET_PIT2, "KVM_SET_PIT2", &state.pit)
    }

    /// Whether the PIT makes up the ticks the guest did not take (KVM's default: on). Turning
    /// it off unhooks its interrupt-acknowledge notifier, which waits for an SRCU grace
    /// period: 0.1 ms on a settled VM, 15-25 ms right after the VM was made. A VM that
    /// ends with it on waits for that grace period in the kernel's teardown instead, after
    /// SIGKILL (13-25 ms measured here).
    func setPITReinjection(_ on: Bool) throws {
        var control = kvm_reinject_control()
        control.pit_reinject = on ? 1 : 0
        try kvmIoctl(fd, VMD_KVM_IOCTL_REINJECT_CONTROL, "KVM_REINJECT_CONTROL", &control)
    }

    func createVcpu(index: Int) throws -> Vcpu {
        let raw = try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_VCPU, "KVM_CREATE_VCPU", value: UInt(index))
        return try Vcpu(fd: FileDescriptor(adopting: raw), index: index, mapSize: system.vcpuMapSize())
    }
}

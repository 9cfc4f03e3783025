import CKVM
import CLinux
import Shared

/// A KVM VM: memory slots, the in-kernel irqchip and PIT, interrupt lines, vCPUs.
final class KVMVirtualMachine {
    let fd: FileDescriptor
    let system: KVMSystem

    /// Addresses KVM needs for its own use on Intel (real-mode TSS and EPT identity
    /// map), just below the 4 GiB BIOS area, inside our MMIO hole and away from any device.
    static let tssAddress: UInt64 = 0xFFFB_D000
    static let identityMapAddress: UInt64 = 0xFFFB_C000

    init(system: KVMSystem) throws {
        self.system = system
        fd = try system.createVM()
        // Harmless where unneeded (AMD, PVM); required for VMX real mode.
        _ = try? kvmIoctl(fd, VMD_KVM_IOCTL_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", value: UInt(KVMVirtualMachine.tssAddress))
        var identityMap = KVMVirtualMachine.identityMapAddress
        _ = try? kvmIoctl(fd, VMD_KVM_IOCTL_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &identityMap)
        try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", value: 0)
        var pit = kvm_pit_config()
        pit.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_PIT2, "KVM_CREATE_PIT2", &pit)
    }

    /// Gives KVM every slot of guest memory (the mapping stays owned by GuestMemory).
    func register(_ memory: GuestMemory) throws {
        for (index, region) in memory.kvmUserspaceAddresses.enumerated() {
            var entry = kvm_userspace_memory_region()
            entry.slot = UInt32(index)
            entry.flags = region.slot.access == .readOnly ? UInt32(KVM_MEM_READONLY) : 0
            entry.guest_phys_addr = region.slot.guestBase.value
            entry.memory_size = region.slot.size
            entry.userspace_addr = region.userspaceAddress
            try kvmIoctl(fd, VMD_KVM_IOCTL_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &entry)
        }
    }

    /// Drives an interrupt line of the in-kernel PIC/IOAPIC.
    func setIRQLine(_ irq: UInt32, high: Bool) throws {
        var level = kvm_irq_level()
        level.irq = irq
        level.level = high ? 1 : 0
        try kvmIoctl(fd, VMD_KVM_IOCTL_IRQ_LINE, "KVM_IRQ_LINE", &level)
    }

    func createVcpu(index: Int) throws -> Vcpu {
        let raw = try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_VCPU, "KVM_CREATE_VCPU", value: UInt(index))
        return try Vcpu(fd: FileDescriptor(adopting: raw), index: index, mapSize: system.vcpuMapSize())
    }
}

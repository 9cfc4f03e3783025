import GuestRAM
import LinuxSystem

/// The KVM VM with guest RAM already given to it, made as soon as vmd has handed over RAM
/// and /dev/kvm and before the rest of the setup arrives, while vmd spawns the device
/// processes.
struct PreparedKVM {
    let system: KVMSystem
    let vm: KVMVirtualMachine
    // Both made here because they need what the sandbox takes away (KVMSystem, memfd_create).
    let vcpuStateSupport: VcpuStateSupport
    let dirtyPages: DirtyPageTracker

    /// Touches no guest RAM: a lazy restore registers its userfaultfd after this.
    init(kvmDevice: FileDescriptor, memory: GuestMemory) throws {
        system = try KVMSystem(fd: kvmDevice)
        vcpuStateSupport = try VcpuStateSupport(system: system)
        dirtyPages = try DirtyPageTracker(memory: memory)
        vm = try KVMVirtualMachine(system: system, memory: memory)
    }
}

import GuestRAM
import LinuxSystem

/// The KVM VM, made as soon as vmd has handed over RAM and /dev/kvm and before the rest of
/// the setup arrives, with guest RAM being registered in the background
/// (`MemorySlotRegistration`: `ramRegistered()` before anything needs it).
struct PreparedKVM {
    let system: KVMSystem
    let vm: KVMVirtualMachine
    // Both made here because they need what the sandbox takes away (KVMSystem, memfd_create).
    let vcpuStateSupport: VcpuStateSupport
    let dirtyPages: DirtyPageTracker
    private let registration: MemorySlotRegistration

    /// Touches no guest RAM: a lazy restore registers its userfaultfd after this.
    init(kvmDevice: FileDescriptor, memory: GuestMemory) throws {
        system = try KVMSystem(fd: kvmDevice)
        vcpuStateSupport = try VcpuStateSupport(system: system)
        dirtyPages = try DirtyPageTracker(memory: memory)
        vm = try KVMVirtualMachine(system: system)
        registration = try MemorySlotRegistration(vm: vm, memory: memory)
    }

    /// Waits until guest RAM is registered with KVM; throws if it could not be.
    func ramRegistered() throws {
        try registration.wait()
    }
}

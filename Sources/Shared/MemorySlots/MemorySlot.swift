import Glibc
import CLinux
import LinuxSystem

/// One slot of guest RAM as vmd creates it (design §2): a memfd, sized, and
/// sealed so that nobody can shrink or grow it under a process that maps it
/// (a shrink would turn guest accesses into SIGBUS in the device processes).
/// vmd never maps it; it only hands the fd on.
public struct MemorySlot {
    public let descriptor: SlotDescriptor
    public let memfd: FileDescriptor

    public static let requiredSeals = VMD_F_SEAL_SHRINK | VMD_F_SEAL_GROW | VMD_F_SEAL_SEAL

    public init(_ descriptor: SlotDescriptor, name: String) throws {
        precondition(descriptor.size > 0 && descriptor.size % pageSize == 0, "slot size must be whole pages")
        let raw = try retryingInterrupts("memfd_create(\(name))") {
            vmd_memfd_create(name, UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING))
        }
        let memfd = FileDescriptor(adopting: raw)
        try retryingInterrupts("ftruncate(memfd, \(descriptor.size))") { ftruncate(memfd.rawValue, off_t(descriptor.size)) }
        try retryingInterrupts("fcntl(F_ADD_SEALS)") { vmd_fcntl_int(memfd.rawValue, VMD_F_ADD_SEALS, MemorySlot.requiredSeals) }
        self.descriptor = descriptor
        self.memfd = memfd
    }

    /// Creates the RAM slots of a guest with `ramBytes` bytes (design §2 layout).
    public static func ramSlots(ramBytes: UInt64, vmName: String) throws -> [MemorySlot] {
        try GuestPhysicalLayout.ramSlots(ramBytes: ramBytes).enumerated().map { index, descriptor in
            try MemorySlot(descriptor, name: "vmd-\(vmName)-ram\(index)")
        }
    }
}

public let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

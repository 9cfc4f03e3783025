import CKVM
import CLinux
import LinuxSystem

/// /dev/kvm, as handed to the vm process by vmd.
final class KVMSystem {
    let fd: FileDescriptor

    init(fd: FileDescriptor) throws {
        self.fd = fd
        let version = try kvmIoctl(fd, VMD_KVM_IOCTL_GET_API_VERSION, "KVM_GET_API_VERSION")
        guard version == KVM_API_VERSION else { throw VMSetupError.unsupported("KVM API version \(version), need \(KVM_API_VERSION)") }
        for (capability, name) in KVMSystem.requiredCapabilities {
            guard try checkExtension(capability) > 0 else { throw VMSetupError.unsupported("KVM lacks \(name)") }
        }
    }

    /// What this design relies on (design §3, §4).
    static let requiredCapabilities: [(Int32, String)] = [
        (KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"),
        (KVM_CAP_PIT2, "KVM_CAP_PIT2"),
        (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
        (KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"),
        (KVM_CAP_IRQFD, "KVM_CAP_IRQFD"),
        (KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"),
    ]

    func checkExtension(_ capability: Int32) throws -> Int32 {
        try kvmIoctl(fd, VMD_KVM_IOCTL_CHECK_EXTENSION, "KVM_CHECK_EXTENSION", value: UInt(capability))
    }

    func vcpuMapSize() throws -> Int {
        Int(try kvmIoctl(fd, VMD_KVM_IOCTL_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE"))
    }

    func supportedCPUID() throws -> [kvm_cpuid_entry2] {
        var capacity = 80
        while true {
            var table = CPUIDTable(capacity: capacity)
            do {
                try table.withRawPointer { try kvmIoctl(fd, VMD_KVM_IOCTL_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID", $0) }
                return table.entries
            } catch let error as SystemError where error.errno == E2BIG && capacity < 1024 {
                capacity *= 2
            }
        }
    }

    func createVM() throws -> FileDescriptor {
        let raw = try kvmIoctl(fd, VMD_KVM_IOCTL_CREATE_VM, "KVM_CREATE_VM", value: 0)
        return FileDescriptor(adopting: raw)
    }
}

/// Why the vm process could not build the VM (host errors, thrown).
enum VMSetupError: Error, CustomStringConvertible {
    case unsupported(String)
    case boot(String)

    var description: String {
        switch self {
        case .unsupported(let what): "unsupported host: \(what)"
        case .boot(let what): "cannot boot: \(what)"
        }
    }
}

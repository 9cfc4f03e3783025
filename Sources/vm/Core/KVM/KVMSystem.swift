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

    /// KVM_GET_MSR_INDEX_LIST: the MSRs a snapshot must carry. Asked with room for none
    /// first, which fails with E2BIG and says how many there are.
    func msrIndexList() throws -> [UInt32] {
        var count = 0
        while true {
            // struct kvm_msr_list: u32 nmsrs, then nmsrs u32 indices.
            var words = [UInt32](repeating: 0, count: 1 + count)
            words[0] = UInt32(count)
            do {
                // SAFETY: the buffer holds nmsrs and room for `count` indices, as the ioctl's size says.
                try words.withUnsafeMutableBytes { _ = try kvmIoctl(fd, VMD_KVM_IOCTL_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST", $0.baseAddress!) }
                return Array(words[1...].prefix(Int(words[0])))
            } catch let error as SystemError where error.errno == E2BIG && Int(words[0]) > count && words[0] <= 4096 {
                count = Int(words[0])
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
    case restore(String)

    var description: String {
        switch self {
        case .restore(let why): "cannot restore: \(why)"
        case .unsupported(let what): "unsupported host: \(what)"
        case .boot(let what): "cannot boot: \(what)"
        }
    }
}

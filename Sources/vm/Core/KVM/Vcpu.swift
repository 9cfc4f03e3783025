import CKVM
import CLinux
import Glibc
import GuestRAM
import LinuxSystem

/// One KVM vCPU: its fd, its kvm_run mapping, and register access.
final class Vcpu {
    let fd: FileDescriptor
    let index: Int
    private let runMapping: MemoryMapping
    /// SAFETY: the vCPU's mmap of KVM_GET_VCPU_MMAP_SIZE bytes starts with a struct kvm_run
    /// (KVM API, "KVM_RUN"), page-aligned, and lives as long as this Vcpu (`runMapping`).
    private var run: UnsafeMutablePointer<kvm_run> { runMapping.base.assumingMemoryBound(to: kvm_run.self) }

    init(fd: FileDescriptor, index: Int, mapSize: Int) throws {
        self.fd = fd
        self.index = index
        runMapping = try MemoryMapping(fd: fd, size: mapSize, writable: true)
    }

    /// Enters the guest until the next exit.
    func runOnce() throws -> VcpuExit {
        let result = vmd_ioctl_int(fd.rawValue, VMD_KVM_IOCTL_RUN, 0)
        if result == -1 {
            let error = vmd_errno()
            if error == EINTR || error == EAGAIN {
                run.pointee.immediate_exit = 0
                return .interrupted
            }
            throw SystemError("KVM_RUN", errno: error)
        }
        return VcpuExit.decode(run, mapSize: runMapping.size)
    }

    /// Hands the data of an `in` or MMIO read back to the guest before the next run.
    func completeRead(_ data: [UInt8]) {
        let raw = UnsafeMutableRawPointer(run)
        switch Int32(run.pointee.exit_reason) {
        case KVM_EXIT_IO:
            let offset = Int(run.pointee.io.data_offset)
            let length = min(data.count, Int(run.pointee.io.size) * Int(run.pointee.io.count))
            guard offset >= 0, offset + length <= runMapping.size else { return }
            // SAFETY: `offset + length` is inside the kvm_run mapping (checked above); `length`
            // is at most `data.count`; the vCPU is out of KVM_RUN, so the kernel does not write it now.
            data.withUnsafeBytes { (raw + offset).copyMemory(from: $0.baseAddress!, byteCount: length) }
        case KVM_EXIT_MMIO:
            // SAFETY: at most the 8 bytes of mmio.data, from `data` while its bytes are borrowed.
            // (This once escaped `data`'s pointer out of withUnsafeBytes; now the copy is inside it.)
            withUnsafeMutableBytes(of: &run.pointee.mmio.data) { target in
                let length = min(data.count, target.count)
                data.withUnsafeBytes { source in target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<length])) }
            }
        default:
            break
        }
    }

    /// Makes the next (or current, with a signal) KVM_RUN return at once. Any thread may call it.
    func requestImmediateExit() {
        run.pointee.immediate_exit = 1
    }

    // MARK: State

    func registers() throws -> kvm_regs {
        var regs = kvm_regs()
        try kvmIoctl(fd, VMD_KVM_IOCTL_GET_REGS, "KVM_GET_REGS", &regs)
        return regs
    }

    func setRegisters(_ regs: kvm_regs) throws {
        var copy = regs
        try kvmIoctl(fd, VMD_KVM_IOCTL_SET_REGS, "KVM_SET_REGS", &copy)
    }

    func specialRegisters() throws -> kvm_sregs {
        var sregs = kvm_sregs()
        try kvmIoctl(fd, VMD_KVM_IOCTL_GET_SREGS, "KVM_GET_SREGS", &sregs)
        return sregs
    }

    func setSpecialRegisters(_ sregs: kvm_sregs) throws {
        var copy = sregs
        try kvmIoctl(fd, VMD_KVM_IOCTL_SET_SREGS, "KVM_SET_SREGS", &copy)
    }

    func setCPUID(_ entries: [kvm_cpuid_entry2]) throws {
        var table = CPUIDTable(entries: entries)
        try table.withRawPointer { try kvmIoctl(fd, VMD_KVM_IOCTL_SET_CPUID2, "KVM_SET_CPUID2", $0) }
    }

    /// The FPU state a CPU has after reset (x87 control word, MXCSR), as firmware leaves it.
    func resetFPU() throws {
        var fpu = kvm_fpu()
        fpu.fcw = 0x37F
        fpu.mxcsr = 0x1F80
        try kvmIoctl(fd, VMD_KVM_IOCTL_SET_FPU, "KVM_SET_FPU", &fpu)
    }
}

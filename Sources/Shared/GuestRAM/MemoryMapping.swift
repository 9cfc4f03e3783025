import Glibc
import CLinux
import LinuxSystem

/// An mmap'd range with one owner that unmaps it.
///
/// Guest RAM is different: once sealed (`seal()`) a mapping can never be unmapped
/// (mseal forbids it), so sealing consumes the owner and yields a `SealedMapping`,
/// which lives as long as the process.
public struct MemoryMapping: ~Copyable {
    public let base: UnsafeMutableRawPointer
    public let size: Int

    /// Maps `size` bytes of `fd` shared. Never executable: guest RAM is data to us.
    public init(fd: FileDescriptor, size: Int, writable: Bool) throws {
        let protection = PROT_READ | (writable ? PROT_WRITE : 0)
        guard let address = mmap(nil, size, protection, MAP_SHARED, fd.rawValue, 0), address != MAP_FAILED else {
            throw SystemError.last("mmap(\(size) bytes)")
        }
        base = address
        self.size = size
    }

    /// Maps `size` bytes of fresh anonymous memory (tests, scratch buffers).
    public init(anonymousSize size: Int) throws {
        guard let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              address != MAP_FAILED else {
            throw SystemError.last("mmap(anonymous \(size) bytes)")
        }
        base = address
        self.size = size
    }

    deinit {
        // SAFETY: this value is the mapping's only owner (~Copyable); `seal()` consumes it
        // with `discard self`, so a sealed mapping never reaches this munmap.
        munmap(base, size)
    }

    /// Makes guest RAM non-inheritable (MADV_DONTFORK, Linux's MAP_INHERIT_NONE),
    /// left out of core dumps (MADV_DONTDUMP, Linux's MAP_CONCEAL), and immutable
    /// (mseal: no munmap, mprotect or mremap from here on). Design §2. On a kernel
    /// without mseal (before 6.10) the mapping stays as it is, noted in `Hardening`.
    public consuming func seal() throws -> SealedMapping {
        let (base, size) = (self.base, self.size)
        do {
            // Best effort, before the seal: 2 MiB pages where the host's shmem THP setting
            // allows them (advise or always), so KVM's nested page tables map 2 MiB too.
            _ = madvise(base, size, MADV_HUGEPAGE)
            try retryingInterrupts("madvise(MADV_DONTFORK)") { madvise(base, size, MADV_DONTFORK) }
            try retryingInterrupts("madvise(MADV_DONTDUMP)") { madvise(base, size, MADV_DONTDUMP) }
            var result: Int32
            repeat { result = KernelCalls.current.mseal(base, size) } while result == -EINTR
            if result == 0 {
                Hardening.noteApplied("RAM sealed")
            } else if Hardening.isMissing(-result) {
                if !Hardening.shortfalls.contains(where: { $0.step == "mseal" }) {
                    Hardening.note("mseal", errno: -result, consequence: "guest RAM can be unmapped or remapped by this process (Linux 6.10+ seals it)")
                }
            } else {
                throw SystemError("mseal", errno: -result)
            }
        } catch {
            _ = consume self  // deinit unmaps: nothing half-sealed is left behind
            throw error
        }
        discard self
        // SAFETY: the mapping now lives as long as the process: nothing unmaps it (mseal
        // forbids it where the kernel has mseal; elsewhere no code path does).
        return SealedMapping(base: base, size: size)
    }
}

/// A sealed mapping of guest RAM. It cannot be unmapped, so it has no owner:
/// it stays until the process exits.
public struct SealedMapping: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int
}

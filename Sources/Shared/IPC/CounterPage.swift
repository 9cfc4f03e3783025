import CLinux
import Glibc
import LinuxSystem

/// 64-bit counters shared by the process that counts (vm, a device) and vmd, which reads
/// them for `vmctl stats` and the metrics endpoint without asking the process anything.
///
/// vmd makes the page (a memfd, sealed so that no process can shrink it under vmd's
/// mapping and turn a read into SIGBUS) and maps it read-only; the counting process maps
/// it writable. What vmd reads there is the child's word, a number and nothing more:
/// a compromised device can make its own counters lie, not reach vmd.
public final class CounterPage: @unchecked Sendable {
    public let slots: Int
    private let base: UnsafeMutableRawPointer
    private let bytes: Int
    private let writable: Bool

    /// For vmd: a new page of `slots` counters, mapped read-only, and the descriptor to hand over.
    public static func create(slots: Int, name: String) throws -> (page: CounterPage, memfd: FileDescriptor) {
        guard slots > 0, slots <= Self.maximumSlots else { throw SystemError("a counter page of \(slots) slots", errno: EINVAL) }
        let bytes = Self.bytes(for: slots)
        let memfd = FileDescriptor(adopting: try retryingInterrupts("memfd_create(\(name))") {
            vmd_memfd_create(name, UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING))
        })
        try retryingInterrupts("ftruncate(\(name))") { ftruncate(memfd.rawValue, off_t(bytes)) }
        let seals = VMD_F_SEAL_SHRINK | VMD_F_SEAL_GROW | VMD_F_SEAL_SEAL
        try retryingInterrupts("fcntl(F_ADD_SEALS)") { vmd_fcntl_int(memfd.rawValue, VMD_F_ADD_SEALS, seals) }
        return (try CounterPage(memfd, slots: slots, writable: false), memfd)
    }

    /// For the counting process: maps the page vmd sent, as many counters as it holds.
    public static func adopt(_ memfd: FileDescriptor) throws -> CounterPage {
        var status = stat()
        try retryingInterrupts("fstat(counter page)") { fstat(memfd.rawValue, &status) }
        let slots = Int(status.st_size) / 8
        guard slots > 0, slots <= Self.maximumSlots else { throw SystemError("counter page of \(status.st_size) bytes", errno: EINVAL) }
        return try CounterPage(memfd, slots: slots, writable: true)
    }

    /// A private page (tests, and a device started without vmd).
    public static func anonymous(slots: Int) throws -> CounterPage {
        try adopt(create(slots: slots, name: "vmd-counters").memfd)
    }

    public static let maximumSlots = 1 << 16

    private static func bytes(for slots: Int) -> Int {
        let page = max(sysconf(Int32(_SC_PAGESIZE)), 4096)
        return (max(slots, 1) * 8 + page - 1) / page * page
    }

    private init(_ memfd: FileDescriptor, slots: Int, writable: Bool) throws {
        guard slots > 0, slots <= Self.maximumSlots else { throw SystemError("a counter page of \(slots) slots", errno: EINVAL) }
        let bytes = Self.bytes(for: slots)
        let protection = PROT_READ | (writable ? PROT_WRITE : 0)
        guard let address = mmap(nil, bytes, protection, MAP_SHARED, memfd.rawValue, 0), address != MAP_FAILED else {
            throw SystemError.last("mmap(counter page)")
        }
        // Not for children vmd or vm might start: the page is this process's business.
        _ = madvise(address, bytes, MADV_DONTFORK)
        (self.base, self.bytes, self.slots, self.writable) = (address, bytes, slots, writable)
    }

    deinit {
        // SAFETY: the mapping belongs to this object alone; nothing keeps its address.
        munmap(base, bytes)
    }

    /// Adds `amount` (atomically: several threads may count into one slot). Out-of-range slots are ignored.
    public func add(_ slot: Int, _ amount: UInt64) {
        guard writable, slot >= 0, slot < slots else { return }
        // SAFETY: slot is within the mapping (checked), 8-byte aligned (page-aligned base).
        vmd_atomic_add_u64_relaxed(base + slot * 8, amount)
    }

    /// Sets a slot that only one thread writes.
    public func store(_ slot: Int, _ value: UInt64) {
        guard writable, slot >= 0, slot < slots else { return }
        // SAFETY: as in `add`.
        vmd_atomic_store_u64_relaxed(base + slot * 8, value)
    }

    /// The slot's value; 0 for a slot out of range.
    public func load(_ slot: Int) -> UInt64 {
        guard slot >= 0, slot < slots else { return 0 }
        // SAFETY: as in `add`; the memfd is sealed against shrinking, so the page stays backed.
        return vmd_atomic_load_u64_relaxed(base + slot * 8)
    }
}

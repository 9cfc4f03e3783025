import CLinux
import Glibc
import GuestRAM
import LinuxSystem
import Snapshot

/// What a live migration's round must send again: the pages the guest wrote (KVM's dirty
/// log) and the pages vm and the device processes wrote through their own mappings (the
/// shared bitmap of `DirtyPageLog`, which KVM cannot see).
final class DirtyPageTracker {
    /// The shared bitmap: made before the sandbox (memfd_create is not allowed after), handed
    /// to each device when a migration starts.
    let file: FileDescriptor
    private let mapping: MemoryMapping
    private let slotSizes: [UInt64]

    init(memory: GuestMemory) throws {
        slotSizes = memory.slots.map(\.size)
        let bytes = DirtyPageLog.bitmapBytes(slotSizes: slotSizes)
        let raw = try retryingInterrupts("memfd_create(dirty pages)") { vmd_memfd_create("vmd-dirty-pages", UInt32(MFD_CLOEXEC)) }
        let file = FileDescriptor(adopting: raw)
        try retryingInterrupts("ftruncate(dirty pages)") { ftruncate(file.rawValue, off_t(bytes)) }
        mapping = try MemoryMapping(fd: file, size: bytes, writable: true)
        self.file = file
    }

    /// Takes every page written since the last call, per slot as runs (KVM's log and the
    /// shared bitmap are both cleared as they are read).
    func take(kvm: KVMVirtualMachine) throws -> [[PageRun]] {
        var wordOffset = 0
        return try slotSizes.enumerated().map { slot, size in
            let pages = size / SnapshotFormat.pageSize
            var words = try kvm.takeDirtyLog(slot: slot, pages: pages)
            for index in words.indices {
                // SAFETY: word `wordOffset + index` lies inside the bitmap (bitmapBytes covers every slot's words).
                words[index] |= vmd_atomic_exchange_u64(mapping.base + (wordOffset + index) * 8, 0)
            }
            wordOffset += words.count
            return Self.runs(words, pages: pages)
        }
    }

    /// The set bits of `words` as ascending, apart runs of pages.
    static func runs(_ words: [UInt64], pages: UInt64) -> [PageRun] {
        var runs: [PageRun] = []
        for (index, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                let page = UInt64(index * 64 + bits.trailingZeroBitCount)
                bits &= bits - 1
                guard page < pages else { break }
                if let last = runs.last, last.firstPage + last.pageCount == page {
                    runs[runs.count - 1].pageCount += 1
                } else {
                    runs.append(PageRun(firstPage: page, pageCount: 1))
                }
            }
        }
        return runs
    }
}

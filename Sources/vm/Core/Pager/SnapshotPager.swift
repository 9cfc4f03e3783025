import Glibc
import IPC
import LinuxSystem
import Snapshot

/// The fault handler of a lazy restore (Firecracker's UFFD handler is the model): each page
/// the guest touches first is copied in from the snapshot at once, and every other page
/// in the background, in file order, which also checks each slot's checksum.
final class SnapshotPager {
    private let uffd: UserFaultFD
    private let snapshot: FileDescriptor
    private let map: SnapshotPageMap
    /// The background copy's place: region, run, pages of that run done, and the checksum so far.
    private var region = 0, run = 0, pagesDone: UInt64 = 0
    private var checksum = SnapshotChecksum()
    private var page = [UInt8](repeating: 0, count: Int(SnapshotFormat.pageSize))
    private var chunk = [UInt8](repeating: 0, count: SnapshotPager.chunkPages * Int(SnapshotFormat.pageSize))
    private(set) var pagesCopied: UInt64 = 0
    private(set) var faultsServed: UInt64 = 0

    /// The background copy's step: 256 KiB, so a fault waits at most that long behind it.
    static let chunkPages = 64

    /// Reads the snapshot's tables (its state sections are vm's, skipped here) and checks
    /// its shape is `shape`, as vm did.
    init(uffd: UserFaultFD, snapshot: FileDescriptor, shape: SnapshotShape, hostAddresses: [UInt64]) throws {
        self.uffd = uffd
        self.snapshot = snapshot
        var reader = try SnapshotReader(source: PositionedFileStream(snapshot), expecting: shape)
        var deferred: [Int: DeferredPages] = [:]
        while let section = try reader.next() {
            if case .memory = section {
                let pages = try reader.skipPages()
                deferred[pages.slot] = pages
            }
        }
        guard hostAddresses.count == shape.slots.count else {
            throw SnapshotError.malformed("\(hostAddresses.count) slot addresses for \(shape.slots.count) slots")
        }
        map = SnapshotPageMap(regions: try shape.slots.indices.map { index in
            guard let pages = deferred[index] else { throw SnapshotError.malformed("memory slot \(index) is missing") }
            return (hostAddresses[index], shape.slots[index].size, pages)
        })
        startRegion()
    }

    var backgroundDone: Bool { region >= map.regions.count }

    /// Serves every fault waiting now. Throws only when the snapshot cannot be read.
    func serveFaults() throws {
        while let address = try uffd.nextFault() {
            faultsServed += 1
            let (start, where_) = map.page(at: address)
            let size = SnapshotFormat.pageSize
            switch where_ {
            case .file(let offset):
                try page.withUnsafeMutableBytes { try PositionedFileStream.read(snapshot, into: $0, at: offset) }
                let copied = try page.withUnsafeBytes { try uffd.copy($0, to: start) }
                if copied { pagesCopied += 1 } else { try uffd.wake(address: start, length: size) }
            case .zero:
                if !(try uffd.zero(address: start, length: size)) { try uffd.wake(address: start, length: size) }
            case .outside:
                try uffd.wake(address: start, length: size)  // not ours: let the thread go on (and fault for real)
            }
        }
    }

    /// One step of the background copy: up to `chunkPages` pages of the current run, read,
    /// added to the checksum and copied in (pages a fault filled first are left as they are).
    func copyNextChunk() throws {
        guard !backgroundDone else { return }
        let current = map.regions[region]
        guard run < current.pages.runs.count else { return try finishRegion() }
        let pageRun = current.pages.runs[run]
        let count = min(UInt64(Self.chunkPages), pageRun.pageCount - pagesDone)
        let size = Int(count * SnapshotFormat.pageSize)
        let fileOffset = current.pages.fileOffset + (current.fileIndex[run] + pagesDone) * SnapshotFormat.pageSize
        let address = current.hostAddress + (pageRun.firstPage + pagesDone) * SnapshotFormat.pageSize
        try chunk.withUnsafeMutableBytes { buffer in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size])
            try PositionedFileStream.read(snapshot, into: bytes, at: fileOffset)
            checksum.update(UnsafeRawBufferPointer(bytes))
            if try uffd.copy(UnsafeRawBufferPointer(bytes), to: address) {
                pagesCopied += count
            } else {
                // Some page of the chunk is there already: the rest one by one.
                for index in 0..<Int(count) {
                    let one = UnsafeRawBufferPointer(rebasing: bytes[index * 4096..<(index + 1) * 4096])
                    if try uffd.copy(one, to: address + UInt64(index) * 4096) { pagesCopied += 1 }
                }
            }
        }
        pagesDone += count
        if pagesDone == pageRun.pageCount {
            run += 1
            pagesDone = 0
        }
    }

    private func startRegion() {
        run = 0
        pagesDone = 0
        checksum = SnapshotChecksum()
    }

    private func finishRegion() throws {
        let pages = map.regions[region].pages
        guard checksum.value == pages.expectedChecksum else { throw SnapshotError.checksumMismatch("memory slot \(pages.slot)") }
        region += 1
        startRegion()
    }
}

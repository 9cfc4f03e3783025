import DiskFormats
import Glibc
import LinuxSystem

/// A qcow2 image (QEMU's docs/interop/qcow2.rst) as a virtio-blk backend: guest offsets
/// go through the L1 and L2 tables to host clusters; an unallocated cluster reads from
/// the backing image (another backend, read-only) or as zeros; zero clusters read as
/// zeros; compressed clusters are inflated. With extended L2 entries each cluster is 32
/// subclusters, each allocated, zero or unallocated on its own; a write into a cluster
/// that is not wholly allocated gives it a whole new cluster (QEMU would allocate only the
/// subclusters written: the image stays as valid, it just holds more data).
///
/// Writes allocate on write, at the end of the file, in an order that keeps the image
/// consistent at every step: the new cluster's refcount, then its data (merged with
/// what the cluster held before, for a partial write), then the L2 entry that points
/// at it. A crash in between leaks a cluster at worst, which `qemu-img check` reports
/// as a leak, never as corruption. FLUSH is one fdatasync of the image.
///
/// A hostile image fails its request, never reads outside its file and never writes
/// over its own metadata: tables must be cluster-aligned and inside the file, and a
/// write in place into the header, the L1 table, the refcount table or a known L2 or
/// refcount block is refused.
///
/// When the file outgrows what the refcount table covers, the table moves to a larger
/// one at the end of the file (`growRefcountTable`).
///
/// An external data file (`qemu-img create -o data_file=`): data clusters are there, each at
/// its guest offset and counted by no refcount, the tables here; with `data_file_raw`, zeros
/// are written to it as well, so that it stays a raw image of the disk.
///
/// Internal snapshots: the active L1 table is read and written; a data cluster or an L2
/// table the snapshots share (refcount above 1) is copied before it changes, as QEMU does,
/// so `qemu-img snapshot -a` finds each snapshot as it was. A dirty image (lazy
/// refcounts, its writer killed) has its refcounts rebuilt before it is written.
package final class Qcow2Backend: BlockBackend {
    package let capacityBytes: UInt64
    package let readOnly: Bool
    /// Read again with the tables when the image is taken over (`takeOver`).
    package internal(set) var header: Qcow2Header
    /// Autoclear bits the image had and this writer cleared (`AutoclearFeature`).
    package private(set) var clearedAutoclearFeatures: UInt64 = 0
    /// The image was dirty and its refcounts were rebuilt (`repairRefcounts`).
    package internal(set) var repairedRefcounts = false
    let file: FileDescriptor
    /// Open O_DIRECT (`cache none`): metadata moves through aligned buffers, read-modify-write.
    let direct: Bool
    /// Where data clusters are: `file`, or the external data file.
    let data: FileDescriptor
    let dataDirect: Bool
    /// Data clusters are in an external data file (`data` is not `file`).
    var externalData: Bool { header.externalDataFile != nil }
    private let backing: BlockBackend?
    var l1: [UInt64] = []
    var refcountTable: [UInt64] = [] {
        didSet { refcountBlockOffsets = Set(refcountTable) }
    }
    /// The refcount table's entries as a set: every guest write under `cache none` checks
    /// that its cluster is none of them (`checkNotMetadata`), and a scan of the table (8192
    /// entries at 64 KiB clusters) was a quarter of the device's CPU at 4 KiB QD32.
    private var refcountBlockOffsets: Set<UInt64> = []
    /// Where the refcount table is now: it moves when it grows.
    var refcountTableOffset: UInt64 = 0
    private var l2Tables: [UInt64: [UInt64]] = [:]
    /// The L2 table the last lookup used, and where it is: one table maps 512 MiB at 64 KiB
    /// clusters, so the next request is most likely in it, and hashing its offset into
    /// `l2Tables` for every request was 7 % of the device's own time at 4 KiB QD32.
    /// Shares its storage with `l2Tables`; `setL2Entry` lets go of it before changing a table.
    private var recentL2: (offset: UInt64, table: [UInt64])?
    /// Refcount blocks as their on-disk bytes, read through `refcountWidth`.
    var refcountBlocks: [UInt64: [UInt8]] = [:]
    let refcountWidth: Qcow2RefcountWidth
    /// The end of the file, cluster-aligned: where the next cluster is allocated.
    var fileEnd: UInt64 = 0
    /// The last cluster inflated, by its descriptor.
    private var inflated: (entry: UInt64, bytes: [UInt8])?
    private let decompressor: Qcow2Decompressor
    /// The snapshot table and the snapshots' L1 tables, which no write in place may touch.
    private(set) var snapshotExtents = Qcow2SnapshotExtents.none

    static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    static let copiedFlag: UInt64 = 1 << 63
    static let compressedFlag: UInt64 = 1 << 62
    static let zeroFlag: UInt64 = 1
    /// Table memory kept before a cache starts over: 32 MiB each for L2 tables and refcount
    /// blocks (512 tables at 64 KiB clusters, 16 at 2 MiB).
    static let cacheBytes: UInt64 = 32 << 20

    /// `dataFile`: the image's external data file, which vmd opened (needed where the header names one).
    package init(file: FileDescriptor, readOnly: Bool, backing: BlockBackend?, dataFile: FileDescriptor? = nil) throws {
        let size = try Qcow2Backend.fileSize(file)
        direct = AlignedBuffer.isDirect(file)
        header = try Qcow2Header(bytes: try Qcow2Backend.read(file, direct: direct, count: Qcow2Header.bytesNeeded, offset: 0), fileSize: size)
        self.file = file
        if let name = header.externalDataFile {
            guard let dataFile else { throw Qcow2Error.unsupported("its external data file \(name) was not opened") }
            data = dataFile
        } else {
            guard dataFile == nil else { throw Qcow2Error.corrupt("an external data file for an image that names none") }
            data = file
        }
        dataDirect = AlignedBuffer.isDirect(data)
        self.readOnly = readOnly
        self.backing = backing
        capacityBytes = header.size & ~(VirtioBlock.sectorSize - 1)
        refcountWidth = Qcow2RefcountWidth(order: header.refcountOrder)
        decompressor = Qcow2Decompressor(type: header.compressionType)
        try loadTables(fileSize: size)
    }

    /// Takes the image over as another writer left it: a live migration's sender kept
    /// allocating after this process opened the image, so the tables read then are stale
    /// and the file longer. The header, the L1 and refcount tables, the snapshot extents
    /// and the file's end are read again, and every table kept is dropped. Called at each
    /// activation, with nothing in flight (in memory, nothing is ahead of the file). What a
    /// VM's disk cannot change while it runs (its size, clusters, refcount width,
    /// compression, subclusters, data file) must be as it was.
    package func takeOver() throws {
        guard !readOnly else { return }  // no one writes a read-only disk or a backing image
        let size = try Qcow2Backend.fileSize(file)
        let now = try Qcow2Header(bytes: try Qcow2Backend.read(file, direct: direct, count: Qcow2Header.bytesNeeded, offset: 0), fileSize: size)
        guard now.size == header.size, now.clusterBits == header.clusterBits, now.refcountOrder == header.refcountOrder,
              now.compressionType == header.compressionType, now.extendedL2 == header.extendedL2,
              now.externalDataFile == header.externalDataFile, now.version == header.version else {
            throw Qcow2Error.corrupt("the image changed its shape while this device had it open")
        }
        header = now
        try loadTables(fileSize: size)
    }

    /// Reads what the header points at and forgets every table kept: from `init`, and again
    /// when the image is taken over.
    private func loadTables(fileSize size: UInt64) throws {
        fileEnd = (size + header.clusterSize - 1) & ~(header.clusterSize - 1)
        l1 = Qcow2Backend.decode64(try readMetadata(count: Int(header.l1Entries) * 8, offset: header.l1TableOffset))
        guard l1.count == Int(header.l1Entries) else { throw Qcow2Error.truncated("the L1 table") }
        refcountTable = Qcow2Backend.decode64(try readMetadata(count: Int(UInt64(header.refcountTableClusters) * header.clusterSize),
                                                               offset: header.refcountTableOffset))
        refcountTableOffset = header.refcountTableOffset
        (l2Tables, recentL2, refcountBlocks, inflated) = ([:], nil, [:], nil)
        snapshotExtents = readOnly ? .none : try Qcow2SnapshotExtents(header: header, fileSize: size) { count, offset in
            try readMetadata(count: count, offset: offset)
        }
        // Before anything is written: a bit promising what this writer does not keep (the
        // dirty bitmaps) is cleared and synced, as the spec asks, or QEMU would trust
        // bitmaps that miss our writes.
        let unkept = readOnly ? 0 : header.autoclearFeatures & ~Qcow2Header.AutoclearFeature.kept
        if unkept != 0 {
            header.autoclearFeatures &= Qcow2Header.AutoclearFeature.kept
            try writeMetadata(Qcow2Backend.encode64(header.autoclearFeatures), offset: Qcow2Header.autoclearOffset)
            try retryingInterrupts("fdatasync") { fdatasync(file.rawValue) }
            clearedAutoclearFeatures |= unkept
        }
        if !readOnly, header.isDirty { try repairRefcounts() }
    }

    private static func fileSize(_ file: FileDescriptor) throws -> UInt64 {
        UInt64(try retryingInterrupts("lseek(SEEK_END)") { lseek(file.rawValue, 0, SEEK_END) })
    }

    // MARK: Mapping

    enum Mapping {
        case unallocated
        /// Reads as zeros; `preallocated`: a host cluster it still holds (qemu-img's
        /// preallocation=metadata), freed when the guest cluster is remapped.
        case zero(preallocated: UInt64?)
        case data(host: UInt64, copied: Bool)
        case compressed(entry: UInt64)
        /// Extended L2 entries, a cluster partly allocated: `allocated` and `zeroes` say which
        /// subclusters (bit x for subcluster x) read from `host` and which as zeros; the
        /// rest read from the backing image. `host` may be 0 where none is allocated.
        case subclusters(host: UInt64, allocated: UInt32, zeroes: UInt32)
    }

    /// An extended L2 entry's second word for a wholly allocated cluster, and for one that reads as zeros.
    static let allSubclustersAllocated: UInt64 = 0xFFFF_FFFF
    static let allSubclustersZero: UInt64 = 0xFFFF_FFFF << 32

    func mapping(ofGuestCluster cluster: UInt64) throws -> Mapping {
        let l1Index = Int(cluster / header.l2Entries)
        guard l1Index < l1.count else { throw Qcow2Error.corrupt("guest cluster \(cluster) beyond the L1 table") }
        let l2Offset = l1[l1Index] & Qcow2Backend.offsetMask
        guard l2Offset != 0 else { return .unallocated }
        let (entry, bitmap) = try l2Entry(Int(cluster % header.l2Entries), ofTableAt: l2Offset)
        if entry & Qcow2Backend.compressedFlag != 0 {
            guard !externalData else { throw Qcow2Error.corrupt("a compressed cluster with an external data file") }
            return .compressed(entry: entry)
        }
        let host = entry & Qcow2Backend.offsetMask
        // An external data file holds each cluster at its guest offset; 0 is a real offset
        // there, allocated when the COPIED bit says so.
        if externalData, host != 0 || entry & Qcow2Backend.copiedFlag != 0, host != cluster * header.clusterSize {
            throw Qcow2Error.corrupt("guest cluster \(cluster) at \(host) in the external data file, not at its guest offset")
        }
        if header.extendedL2 {
            return try subclusterMapping(host: host, copied: entry & Qcow2Backend.copiedFlag != 0, bitmap: bitmap, cluster: cluster)
        }
        if header.version >= 3, entry & Qcow2Backend.zeroFlag != 0 {
            guard host % header.clusterSize == 0 else { throw Qcow2Error.corrupt("a zero cluster's host cluster at \(host) is not aligned") }
            return .zero(preallocated: host == 0 ? nil : host)
        }
        guard host != 0 || (externalData && entry & Qcow2Backend.copiedFlag != 0) else { return .unallocated }
        guard host % header.clusterSize == 0 else { throw Qcow2Error.corrupt("a data cluster at \(host) is not aligned") }
        return .data(host: host, copied: entry & Qcow2Backend.copiedFlag != 0)
    }

    /// A cluster's mapping from its extended L2 entry: wholly allocated or wholly zero as
    /// without subclusters, anything in between as `subclusters`.
    private func subclusterMapping(host: UInt64, copied: Bool, bitmap: UInt64, cluster: UInt64) throws -> Mapping {
        let allocated = UInt32(truncatingIfNeeded: bitmap), zeroes = UInt32(truncatingIfNeeded: bitmap >> 32)
        guard allocated & zeroes == 0 else { throw Qcow2Error.corrupt("subclusters both allocated and zero (bitmap 0x\(String(bitmap, radix: 16)))") }
        let host = externalData && allocated != 0 ? cluster * header.clusterSize : host
        guard host % header.clusterSize == 0, allocated == 0 || host != 0 || externalData else {
            throw Qcow2Error.corrupt("allocated subclusters in a cluster at \(host)")
        }
        switch (allocated, zeroes) {
        case (.max, 0): return .data(host: host, copied: copied)
        case (0, .max): return .zero(preallocated: host == 0 ? nil : host)
        case (0, 0) where host == 0: return .unallocated
        default: return .subclusters(host: host, allocated: allocated, zeroes: zeroes)
        }
    }

    /// Entry `index` of the L2 table at `offset`, and its subcluster bitmap (0 without extended L2 entries).
    private func l2Entry(_ index: Int, ofTableAt offset: UInt64) throws -> (entry: UInt64, bitmap: UInt64) {
        let table: [UInt64]
        if let recent = recentL2, recent.offset == offset {
            table = recent.table
        } else {
            table = try l2Table(at: offset)
            recentL2 = (offset, table)
        }
        let words = header.l2EntryWords
        return (table[index * words], words == 2 ? table[index * 2 + 1] : 0)
    }

    func l2Table(at offset: UInt64) throws -> [UInt64] {
        if let table = l2Tables[offset] { return table }
        try checkMetadataCluster(offset, "an L2 table")
        let table = Qcow2Backend.decode64(try readMetadata(count: Int(header.clusterSize), offset: offset))
        guard table.count == Int(header.l2Entries) * header.l2EntryWords else { throw Qcow2Error.truncated("the L2 table at \(offset)") }
        remember(table, at: offset, in: &l2Tables)
        return table
    }

    func checkMetadataCluster(_ offset: UInt64, _ what: String) throws {
        guard offset % header.clusterSize == 0, offset + header.clusterSize <= fileEnd else {
            throw Qcow2Error.corrupt("\(what) at \(offset) is not an aligned cluster inside the file")
        }
    }

    // MARK: Reads

    package func read(into vectors: inout [iovec], at offset: UInt64) throws {
        try forEachPiece(offset: offset, length: UInt64(IOVectors.totalLength(vectors))) { cluster, within in
            let piece = IOVectors.takePrefix(&vectors, length: within.count)
            try readPiece(piece, cluster: cluster, within: within)
        }
    }

    /// Reads `within` (byte offsets inside guest cluster `cluster`) into `piece`.
    private func readPiece(_ piece: [iovec], cluster: UInt64, within: Range<Int>) throws {
        switch try mapping(ofGuestCluster: cluster) {
        case .zero:
            IOVectors.fillZero(piece)
        case .unallocated:
            try readBacking(piece, at: cluster * header.clusterSize + UInt64(within.lowerBound))
        case .data(let host, _):
            var vectors = piece
            try PositionalIO.read(data, into: &vectors, at: host + UInt64(within.lowerBound), direct: dataDirect, zeroPastEnd: true)
        case .compressed(let entry):
            IOVectors.copy(try inflate(entry)[within], into: piece)
        case .subclusters(let host, let allocated, let zeroes):
            try readSubclusters(piece, cluster: cluster, within: within, host: host, allocated: allocated, zeroes: zeroes)
        }
    }

    /// Reads a partly allocated cluster run by run of subclusters in the same state.
    private func readSubclusters(_ piece: [iovec], cluster: UInt64, within: Range<Int>, host: UInt64, allocated: UInt32, zeroes: UInt32) throws {
        let subcluster = Int(header.clusterSize / 32)
        func state(_ position: Int) -> Int { allocated >> (position / subcluster) & 1 != 0 ? 1 : zeroes >> (position / subcluster) & 1 != 0 ? 2 : 0 }
        var rest = piece
        var position = within.lowerBound
        while position < within.upperBound {
            let kind = state(position)
            var end = min((position / subcluster + 1) * subcluster, within.upperBound)
            while end < within.upperBound, state(end) == kind { end = min(end + subcluster, within.upperBound) }
            var part = IOVectors.takePrefix(&rest, length: end - position)
            switch kind {
            case 1: try PositionalIO.read(data, into: &part, at: host + UInt64(position), direct: dataDirect, zeroPastEnd: true)
            case 2: IOVectors.fillZero(part)
            default: try readBacking(part, at: cluster * header.clusterSize + UInt64(position))
            }
            position = end
        }
    }

    /// The backing image's bytes where it has them, zeros past its end or without one.
    private func readBacking(_ piece: [iovec], at offset: UInt64) throws {
        var rest = piece
        if let backing, offset < backing.capacityBytes {
            let covered = Int(min(UInt64(IOVectors.totalLength(piece)), backing.capacityBytes - offset))
            var below = IOVectors.takePrefix(&rest, length: covered)
            try backing.read(into: &below, at: offset)
        }
        IOVectors.fillZero(rest)
    }

    /// Where a compressed cluster's bytes are: from its host offset to the end of its last
    /// sector. The descriptor's sector count cannot claim more than two clusters; its
    /// offset must lie inside the file.
    func compressedExtent(_ entry: UInt64) throws -> (host: UInt64, end: UInt64) {
        let offsetBits = 62 - (UInt64(header.clusterBits) - 8)
        let host = entry & ((1 << offsetBits) - 1)
        let sectors = (entry & ~(Qcow2Backend.compressedFlag | Qcow2Backend.copiedFlag)) >> offsetBits
        let end = (host & ~511) + (sectors + 1) * 512
        guard host < fileEnd, end - host <= 2 * header.clusterSize else {
            throw Qcow2Error.corrupt("a compressed cluster of \(end - host) bytes at \(host)")
        }
        return (host, end)
    }

    /// A compressed cluster's data, decompressed from its host offset over its sectors.
    private func inflate(_ entry: UInt64) throws -> [UInt8] {
        if let inflated, inflated.entry == entry { return inflated.bytes }
        let (host, end) = try compressedExtent(entry)
        let input = try readMetadata(count: Int(end - host), offset: host)
        let output = try decompressor.decompress(input, clusterSize: Int(header.clusterSize), host: host)
        inflated = (entry, output)
        return output
    }

    // MARK: Writes

    package func write(from vectors: inout [iovec], at offset: UInt64) throws {
        guard !readOnly else { throw SystemError("qcow2 write", errno: EROFS) }
        try forEachPiece(offset: offset, length: UInt64(IOVectors.totalLength(vectors))) { cluster, within in
            var piece = IOVectors.takePrefix(&vectors, length: within.count)
            try writePiece(&piece, cluster: cluster, within: within)
        }
    }

    private func writePiece(_ piece: inout [iovec], cluster: UInt64, within: Range<Int>) throws {
        let current = try mapping(ofGuestCluster: cluster)
        if case .data(let host, let copied) = current, try externalData || copied || refcount(ofHostCluster: host) == 1 {
            if !externalData { try checkNotMetadata(host) }
            return try PositionalIO.write(data, from: &piece, at: host + UInt64(within.lowerBound), direct: dataDirect)
        }
        // A new cluster at the end of the image, or its own place in the external data file.
        let fresh = externalData ? cluster * header.clusterSize : try allocateCluster()
        if within.count == Int(header.clusterSize) {
            try PositionalIO.write(data, from: &piece, at: fresh, direct: dataDirect)
        } else {
            var merged = try contents(of: current, cluster: cluster)
            merged.replaceSubrange(within, with: IOVectors.gather(piece))
            try Qcow2Backend.write(merged, to: data, direct: dataDirect, offset: fresh)
        }
        try setL2Entry(cluster, fresh | Qcow2Backend.copiedFlag, bitmap: Qcow2Backend.allSubclustersAllocated)
        try release(current)
    }

    /// What a guest cluster reads as now, whole.
    private func contents(of mapping: Mapping, cluster: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(header.clusterSize))
        switch mapping {
        case .zero: break
        case .compressed(let entry): bytes = try inflate(entry)
        case .unallocated, .data, .subclusters:
            try bytes.withUnsafeMutableBytes { raw in
                // SAFETY: the iovec names this array's storage for the duration of the read.
                try readPiece([iovec(iov_base: raw.baseAddress, iov_len: raw.count)], cluster: cluster, within: 0..<raw.count)
            }
        }
        return bytes
    }

    /// Drops the reference the guest cluster held before it was remapped.
    private func release(_ mapping: Mapping) throws {
        guard !externalData else { return }  // its data clusters are counted by no refcount
        switch mapping {
        case .data(let host, _):
            try adjustRefcount(ofHostCluster: host, by: -1)
        case .compressed(let entry):
            let (host, end) = try compressedExtent(entry)
            let last = (end - 1) & ~(header.clusterSize - 1)
            for cluster in stride(from: host & ~(header.clusterSize - 1), through: last, by: Int(header.clusterSize)) {
                try adjustRefcount(ofHostCluster: cluster, by: -1)
            }
        case .zero(let preallocated?):
            try adjustRefcount(ofHostCluster: preallocated, by: -1)
        case .subclusters(let host, _, _) where host != 0:
            try adjustRefcount(ofHostCluster: host, by: -1)
        case .zero(nil), .unallocated, .subclusters:
            break
        }
    }

    /// Points guest cluster `cluster` at `entry`, allocating its L2 table first if it has none.
    /// `bitmap`: the subcluster bitmap, written only where entries are extended.
    private func setL2Entry(_ cluster: UInt64, _ entry: UInt64, bitmap: UInt64) throws {
        let words = header.l2EntryWords
        let l1Index = Int(cluster / header.l2Entries)
        var l2Offset = l1[l1Index] & Qcow2Backend.offsetMask
        if l2Offset != 0, l1[l1Index] & Qcow2Backend.copiedFlag == 0, try refcount(ofHostCluster: l2Offset) > 1 {
            l2Offset = try copySharedL2Table(l1Index: l1Index, from: l2Offset)
        }
        if l2Offset == 0 {
            l2Offset = try allocateCluster()
            try writeMetadata([UInt8](repeating: 0, count: Int(header.clusterSize)), offset: l2Offset)
            remember([UInt64](repeating: 0, count: Int(header.l2Entries) * words), at: l2Offset, in: &l2Tables)
            l1[l1Index] = l2Offset | Qcow2Backend.copiedFlag
            try writeMetadata(Qcow2Backend.encode64(l1[l1Index]), offset: header.l1TableOffset + UInt64(l1Index) * 8)
        }
        _ = try l2Table(at: l2Offset)  // loaded into l2Tables if it was not
        let index = Int(cluster % header.l2Entries)
        recentL2 = nil  // so that the table below is changed in place, not copied
        l2Tables[l2Offset]![index * words] = entry
        if words == 2 { l2Tables[l2Offset]![index * 2 + 1] = bitmap }
        try writeMetadata(Qcow2Backend.encode64(entry) + (words == 2 ? Qcow2Backend.encode64(bitmap) : []),
                          offset: l2Offset + UInt64(index * words) * 8)
    }

    /// Gives the active L1 table a copy of an L2 table it shares with snapshots, before an
    /// entry in it changes. The copy is written whole before the L1 entry points at it, and
    /// the shared table's refcount drops after: a crash leaves a leak at worst. The data
    /// clusters keep their refcounts, which count the snapshot's table and the copy.
    private func copySharedL2Table(l1Index: Int, from shared: UInt64) throws -> UInt64 {
        let copy = try allocateCluster()
        try writeMetadata(try readMetadata(count: Int(header.clusterSize), offset: shared), offset: copy)
        l1[l1Index] = copy | Qcow2Backend.copiedFlag
        try writeMetadata(Qcow2Backend.encode64(l1[l1Index]), offset: header.l1TableOffset + UInt64(l1Index) * 8)
        try adjustRefcount(ofHostCluster: shared, by: -1)
        return copy
    }

    /// Refuses a write in place over the image's own structures.
    func checkNotMetadata(_ host: UInt64) throws {
        let size = header.clusterSize
        func overlaps(_ start: UInt64, _ length: UInt64) -> Bool { host < start + length && start < host + size }
        if host < size || overlaps(header.l1TableOffset, UInt64(header.l1Entries) * 8)
            || overlaps(refcountTableOffset, UInt64(refcountTable.count) * 8)
            || l2Tables[host] != nil || refcountBlocks[host] != nil || refcountBlockOffsets.contains(host)
            || snapshotExtents.ranges.contains(where: { overlaps($0.lowerBound, UInt64($0.count)) }) {
            throw Qcow2Error.corrupt("a data cluster at \(host) overlaps the image's metadata")
        }
    }

    // MARK: Flush, discard, write-zeroes

    package func flush() throws {
        // The data before the tables that point at it.
        if externalData { try retryingInterrupts("fdatasync") { fdatasync(data.rawValue) } }
        try retryingInterrupts("fdatasync") { fdatasync(file.rawValue) }
    }

    /// A hint (virtio 1.2 §5.2.6.2): whole clusters without a backing file become zero
    /// clusters (version 3) or unallocated (version 2); anything else is left as it is.
    package func discard(offset: UInt64, length: UInt64) throws {
        guard !readOnly else { throw SystemError("qcow2 discard", errno: EROFS) }
        guard backing == nil || header.version >= 3 else { return }
        try forEachPiece(offset: offset, length: length) { cluster, within in
            guard within.count == Int(header.clusterSize) else { return }
            try dropCluster(cluster)
        }
    }

    package func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) throws {
        guard !readOnly else { throw SystemError("qcow2 write-zeroes", errno: EROFS) }
        try forEachPiece(offset: offset, length: length) { cluster, within in
            if within.count == Int(header.clusterSize), backing == nil || header.version >= 3 {
                return try dropCluster(cluster)
            }
            var zeroes = [UInt8](repeating: 0, count: within.count)
            try zeroes.withUnsafeMutableBytes { raw in
                // SAFETY: the iovec names this array's storage for the duration of the write.
                var piece = [iovec(iov_base: raw.baseAddress, iov_len: raw.count)]
                try writePiece(&piece, cluster: cluster, within: within)
            }
        }
    }

    /// Makes a whole guest cluster read as zeros and frees what it held.
    private func dropCluster(_ cluster: UInt64) throws {
        let current = try mapping(ofGuestCluster: cluster)
        if case .unallocated = current, backing == nil { return }
        if case .zero(nil) = current { return }
        if header.externalDataIsRaw {
            // The data file stays a raw image of the disk: the zeros are written there too.
            let start = cluster * header.clusterSize
            let zeros = [UInt8](repeating: 0, count: Int(min(header.clusterSize, capacityBytes - start)))
            try Qcow2Backend.write(zeros, to: data, direct: dataDirect, offset: start)
        }
        if header.extendedL2 {
            try setL2Entry(cluster, 0, bitmap: Qcow2Backend.allSubclustersZero)
        } else {
            try setL2Entry(cluster, header.version >= 3 ? Qcow2Backend.zeroFlag : 0, bitmap: 0)
        }
        try release(current)
    }

    // MARK: Helpers

    /// Reads `count` bytes at `offset` (fewer at the end of the file). Under O_DIRECT the
    /// covering sectors go through an aligned buffer.
    static func read(_ file: FileDescriptor, direct: Bool, count: Int, offset: UInt64) throws -> [UInt8] {
        guard direct else { return try file.pread(count: count, offset: Int64(offset)) }
        let sector = UInt64(AlignedBuffer.sector)
        let start = offset & ~(sector - 1), end = (offset + UInt64(count) + sector - 1) & ~(sector - 1)
        let bounce = try AlignedBuffer(count: Int(end - start))
        let got = try bounce.fill(from: file, at: start)
        let skip = Int(offset - start)
        return bounce.bytes(skip..<(skip + max(0, min(count, got - skip))))
    }

    func readMetadata(count: Int, offset: UInt64) throws -> [UInt8] {
        try Qcow2Backend.read(file, direct: direct, count: count, offset: offset)
    }

    /// Writes `bytes` at `offset` of the image.
    func writeMetadata(_ bytes: [UInt8], offset: UInt64) throws {
        try Qcow2Backend.write(bytes, to: file, direct: direct, offset: offset)
    }

    /// Writes `bytes` at `offset`; under O_DIRECT the covering sectors are read, patched
    /// and written back (a refcount or an L2 entry is smaller than a sector).
    static func write(_ bytes: [UInt8], to file: FileDescriptor, direct: Bool, offset: UInt64) throws {
        guard direct else { return try file.pwriteAll(bytes, offset: offset) }
        let sector = UInt64(AlignedBuffer.sector)
        let start = offset & ~(sector - 1), end = (offset + UInt64(bytes.count) + sector - 1) & ~(sector - 1)
        let bounce = try AlignedBuffer(count: Int(end - start))
        if start != offset || end != offset + UInt64(bytes.count) { _ = try bounce.fill(from: file, at: start) }
        bounce.replace(at: Int(offset - start), with: bytes)
        var vectors = [bounce.vector]
        try PositionalIO.write(file, from: &vectors, at: start)
    }

    /// Calls `body` for each guest cluster the range touches, with the bytes inside it.
    func forEachPiece(offset: UInt64, length: UInt64, _ body: (UInt64, Range<Int>) throws -> Void) throws {
        let (end, overflow) = offset.addingReportingOverflow(length)
        precondition(!overflow && end <= capacityBytes, "the parser let a range beyond the disk through")
        var position = offset
        while position < end {
            let cluster = position / header.clusterSize
            let start = Int(position % header.clusterSize)
            let count = Int(min(header.clusterSize - UInt64(start), end - position))
            try body(cluster, start..<(start + count))
            position += UInt64(count)
        }
    }

    func remember<Table>(_ table: Table, at offset: UInt64, in cache: inout [UInt64: Table]) {
        if UInt64(cache.count) >= max(4, Qcow2Backend.cacheBytes / header.clusterSize) { cache.removeAll(keepingCapacity: true) }
        cache[offset] = table
    }

    static func decode64(_ bytes: [UInt8]) -> [UInt64] {
        stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map { start in bytes[start..<(start + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
    }

    static func encode64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) } }

    static func encode32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) } }
}

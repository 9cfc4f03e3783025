import DiskFormats

/// Where a qcow2 image's internal snapshots keep what is theirs alone: the snapshot table
/// and each snapshot's L1 table (qcow2.txt, "Snapshots"). A write in place never lands in
/// them (`Qcow2Backend.checkNotMetadata`). Read once, when an image with snapshots is
/// opened for writing, and as hostile as the header: every entry and table inside the
/// file, within QEMU's limits.
struct Qcow2SnapshotExtents {
    /// QEMU's limits: QCOW_MAX_SNAPSHOTS and QCOW_MAX_SNAPSHOTS_SIZE.
    static let maximumSnapshots: UInt32 = 65536
    static let maximumTableBytes: UInt64 = 64 << 20
    static let entryHeaderBytes = 40

    let ranges: [Range<UInt64>]
    /// Each snapshot's L1 table (of those that have one), as bytes of the image: a repair
    /// counts what they point at (`Qcow2Backend.repairRefcounts`).
    let l1Tables: [Range<UInt64>]

    /// For an image opened read-only, which never checks.
    static let none = Qcow2SnapshotExtents(ranges: [], l1Tables: [])

    private init(ranges: [Range<UInt64>], l1Tables: [Range<UInt64>]) {
        self.ranges = ranges
        self.l1Tables = l1Tables
    }

    /// `read(count, offset)`: the image's bytes there (fewer at the end of the file).
    init(header: Qcow2Header, fileSize: UInt64, read: (Int, UInt64) throws -> [UInt8]) throws {
        guard header.snapshotCount > 0 else {
            (ranges, l1Tables) = ([], [])
            return
        }
        guard header.snapshotCount <= Self.maximumSnapshots else {
            throw Qcow2Error.unsupported("\(header.snapshotCount) snapshots (at most \(Self.maximumSnapshots))")
        }
        guard header.snapshotsOffset % header.clusterSize == 0, header.snapshotsOffset != 0, header.snapshotsOffset < fileSize else {
            throw Qcow2Error.corrupt("the snapshot table at \(header.snapshotsOffset) is not a cluster inside the file")
        }
        var found: [Range<UInt64>] = []
        var position = header.snapshotsOffset
        for index in 0..<header.snapshotCount {
            let bytes = try read(Self.entryHeaderBytes, position)
            guard bytes.count == Self.entryHeaderBytes else { throw Qcow2Error.truncated("snapshot \(index)'s table entry") }
            func u64(_ at: Int) -> UInt64 { bytes[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
            func u32(_ at: Int) -> UInt64 { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt64($1) } }
            func u16(_ at: Int) -> UInt64 { bytes[at..<(at + 2)].reduce(0) { $0 << 8 | UInt64($1) } }
            let (l1Offset, l1Bytes) = (u64(0), u32(8) * 8)
            // Compared without adding: the offset is the file's word, and may be near 2^64.
            guard l1Offset % header.clusterSize == 0, l1Bytes <= Qcow2Header.maximumL1Bytes, l1Offset <= fileSize,
                  l1Bytes <= fileSize - l1Offset else {
                throw Qcow2Error.corrupt("snapshot \(index)'s L1 table (\(l1Bytes) bytes at \(l1Offset))")
            }
            if l1Bytes > 0 { found.append(l1Offset..<(l1Offset + l1Bytes)) }
            // The entry (header, extra data, ID, name), then padding to 8 bytes, which the
            // file may end without after the last entry.
            let end = position + UInt64(Self.entryHeaderBytes) + u32(36) + u16(12) + u16(14)
            guard end - header.snapshotsOffset <= Self.maximumTableBytes, end <= fileSize else {
                throw Qcow2Error.corrupt("the snapshot table runs past \(end)")
            }
            position = (end + 7) & ~7
        }
        l1Tables = found
        found.append(header.snapshotsOffset..<position)
        ranges = found
    }
}

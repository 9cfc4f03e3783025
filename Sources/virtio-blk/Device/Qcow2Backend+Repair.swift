import DiskFormats
import Glibc
import LinuxSystem

/// A dirty image's repair. With lazy refcounts (`qemu-img create -o lazy_refcounts=on`)
/// QEMU defers refcount updates and sets the dirty bit; killed before it caught up, it
/// leaves refcounts that miss clusters the tables use, and a writer allocating by them
/// would hand those clusters out again. QEMU rebuilds them when it next opens the image
/// for writing; so does this backend, before its first write:
///
/// 1. every cluster the image's structures point at is counted: the header, the L1
///    tables (the active one and each snapshot's), the L2 tables under them, the data
///    clusters (a compressed cluster's every host cluster), the refcount table and blocks
///    and the snapshot table;
/// 2. each refcount that differs is set to that count (a cluster nothing points at to 0:
///    leaks are freed too), then each COPIED flag of the active tables to whether its
///    cluster's count is 1;
/// 3. synced, then the dirty bit cleared and synced. A crash before the end leaves the
///    image dirty: it is repaired again at the next open.
extension Qcow2Backend {
    func repairRefcounts() throws {
        let cluster = header.clusterSize
        let end = fileEnd
        var counts = try countReferences(below: end)
        // The refcount table's own clusters first: growing the table frees them, which
        // needs their counts right; a growth moves the table, so its old clusters lose the
        // reference counted above.
        func clusters(ofTableAt offset: UInt64, entries: Int) -> Range<UInt64> {
            (offset / cluster)..<((offset + UInt64(entries) * 8 + cluster - 1) / cluster)
        }
        let tableClusters = clusters(ofTableAt: refcountTableOffset, entries: refcountTable.count)
        for number in Array(tableClusters) + (0..<(end / cluster)).filter({ !tableClusters.contains($0) }) {
            let wanted = counts[number] ?? 0
            let now = try refcount(ofHostCluster: number * cluster)
            guard wanted != now else { continue }
            guard wanted <= refcountWidth.maximum, wanted <= UInt64(Int.max), now <= UInt64(Int.max) else {
                throw Qcow2Error.corrupt("cluster \(number * cluster) is used \(wanted) times, more than \(refcountWidth.bits)-bit refcounts hold")
            }
            let table = (offset: refcountTableOffset, count: refcountTable.count)
            try adjustRefcount(ofHostCluster: number * cluster, by: Int(wanted) - Int(now))
            if refcountTableOffset != table.offset {
                for old in clusters(ofTableAt: table.offset, entries: table.count) {
                    if let count = counts[old], count > 0 { counts[old] = count - 1 }
                }
            }
        }
        try repairCopiedFlags()
        try retryingInterrupts("fdatasync") { fdatasync(file.rawValue) }
        header.incompatibleFeatures &= ~Qcow2Header.IncompatibleFeature.dirty
        try writeMetadata(Qcow2Backend.encode64(header.incompatibleFeatures), offset: Qcow2Header.incompatibleOffset)
        try retryingInterrupts("fdatasync") { fdatasync(file.rawValue) }
        repairedRefcounts = true
    }

    /// How many of the image's structures point at each host cluster below `end` (by
    /// cluster number; none listed: none). An L2 table several L1 entries point at (shared
    /// with snapshots) is read once and its clusters counted once per entry.
    private func countReferences(below end: UInt64) throws -> [UInt64: UInt64] {
        let cluster = header.clusterSize
        var counts: [UInt64: UInt64] = [:]
        // Offsets are the file's word: compared with the end before anything is added to them.
        func count(_ start: UInt64, _ length: UInt64, times: UInt64 = 1, _ what: @autoclosure () -> String) throws {
            guard length > 0 else { return }
            guard start <= end, length <= end - start else { throw Qcow2Error.corrupt("\(what()) at \(start) runs past the end of the file") }
            for number in (start / cluster)...((start + length - 1) / cluster) {
                let (sum, overflow) = counts[number, default: 0].addingReportingOverflow(times)
                guard !overflow else { throw Qcow2Error.corrupt("cluster \(number * cluster) is used too many times") }
                counts[number] = sum
            }
        }
        try count(0, cluster, "the header")
        try count(header.l1TableOffset, UInt64(l1.count) * 8, "the L1 table")
        try count(refcountTableOffset, UInt64(refcountTable.count) * 8, "the refcount table")
        for entry in refcountTable where entry & ~UInt64(511) != 0 {
            let block = entry & ~UInt64(511)
            guard block % cluster == 0 else { throw Qcow2Error.corrupt("a refcount block at \(block) is not aligned") }
            try count(block, cluster, "a refcount block")
        }
        for range in snapshotExtents.ranges { try count(range.lowerBound, UInt64(range.count), "the snapshot table or a snapshot's L1 table") }

        var l1Tables = [l1]
        for range in snapshotExtents.l1Tables {
            l1Tables.append(Qcow2Backend.decode64(try readMetadata(count: range.count, offset: range.lowerBound)))
        }
        var uses: [UInt64: UInt64] = [:]
        for table in l1Tables {
            for entry in table where entry & Qcow2Backend.offsetMask != 0 { uses[entry & Qcow2Backend.offsetMask, default: 0] += 1 }
        }
        let words = header.l2EntryWords
        for (offset, times) in uses {
            guard offset % cluster == 0 else { throw Qcow2Error.corrupt("an L2 table at \(offset) is not aligned") }
            try count(offset, cluster, times: times, "an L2 table")
            let table = Qcow2Backend.decode64(try readMetadata(count: Int(cluster), offset: offset))
            guard table.count == Int(header.l2Entries) * words else { throw Qcow2Error.truncated("the L2 table at \(offset)") }
            for index in 0..<Int(header.l2Entries) {
                let entry = table[index * words]
                if entry & Qcow2Backend.compressedFlag != 0 {
                    let (host, extentEnd) = try compressedExtent(entry)
                    try count(host, extentEnd - host, times: times, "a compressed cluster")
                    continue
                }
                // An external data file's clusters have no refcounts.
                let host = entry & Qcow2Backend.offsetMask
                guard !externalData, host != 0 else { continue }
                guard host % cluster == 0 else { throw Qcow2Error.corrupt("a data cluster at \(host) is not aligned") }
                try count(host, cluster, times: times, "a data cluster")
            }
        }
        return counts
    }

    /// Sets each COPIED flag of the active L1 table and its L2 tables to whether the cluster
    /// it marks has refcount 1 (written in place only then), as `qemu-img check -r all`
    /// does. A compressed cluster's is never set.
    private func repairCopiedFlags() throws {
        let words = header.l2EntryWords
        for l1Index in l1.indices where l1[l1Index] & Qcow2Backend.offsetMask != 0 {
            let l2Offset = l1[l1Index] & Qcow2Backend.offsetMask
            let wanted = try refcount(ofHostCluster: l2Offset) == 1 ? Qcow2Backend.copiedFlag : 0
            if l1[l1Index] & Qcow2Backend.copiedFlag != wanted {
                l1[l1Index] = l1[l1Index] & ~Qcow2Backend.copiedFlag | wanted
                try writeMetadata(Qcow2Backend.encode64(l1[l1Index]), offset: header.l1TableOffset + UInt64(l1Index) * 8)
            }
            guard !externalData else { continue }  // there COPIED says a cluster is allocated
            let table = Qcow2Backend.decode64(try readMetadata(count: Int(header.clusterSize), offset: l2Offset))
            for index in 0..<Int(header.l2Entries) {
                let entry = table[index * words]
                let compressed = entry & Qcow2Backend.compressedFlag != 0
                let host = entry & Qcow2Backend.offsetMask
                guard compressed || host != 0 else { continue }  // unallocated or plain zero: no cluster to mark
                let flag = try !compressed && refcount(ofHostCluster: host) == 1 ? Qcow2Backend.copiedFlag : 0
                guard entry & Qcow2Backend.copiedFlag != flag else { continue }
                try writeMetadata(Qcow2Backend.encode64(entry & ~Qcow2Backend.copiedFlag | flag),
                                  offset: l2Offset + UInt64(index * words) * 8)
            }
        }
    }
}

import DiskFormats
import Glibc
import LinuxSystem

/// The qcow2 backend's host-cluster bookkeeping: allocation at the end of the file,
/// refcounts (of the image's width, `Qcow2RefcountWidth`) in refcount blocks listed by the
/// refcount table, and the table's growth when the file outgrows it.
extension Qcow2Backend {
    /// A new host cluster at the end of the file, its refcount already 1.
    func allocateCluster() throws -> UInt64 {
        let cluster = fileEnd
        fileEnd += header.clusterSize
        try adjustRefcount(ofHostCluster: cluster, by: 1)
        return cluster
    }

    func refcount(ofHostCluster host: UInt64) throws -> UInt64 {
        let (tableIndex, index) = refcountPosition(host)
        guard tableIndex < refcountTable.count else { return 0 }
        let blockOffset = refcountTable[tableIndex] & ~UInt64(511)
        guard blockOffset != 0 else { return 0 }
        return refcountWidth.value(at: index, in: try refcountBlock(at: blockOffset))
    }

    private func refcountPosition(_ host: UInt64) -> (table: Int, index: Int) {
        let cluster = host / header.clusterSize
        return (Int(cluster / header.refcountBlockEntries), Int(cluster % header.refcountBlockEntries))
    }

    /// The block's bytes as on disk (`refcountWidth` reads and changes its entries).
    private func refcountBlock(at offset: UInt64) throws -> [UInt8] {
        if let block = refcountBlocks[offset] { return block }
        try checkMetadataCluster(offset, "a refcount block")
        let block = try readMetadata(count: Int(header.clusterSize), offset: offset)
        guard block.count == Int(header.clusterSize) else { throw Qcow2Error.truncated("the refcount block at \(offset)") }
        remember(block, at: offset, in: &refcountBlocks)
        return block
    }

    /// Sets entry `index` of the block at `offset` in the cache and on disk (only the bytes that hold it).
    private func storeRefcount(_ value: UInt64, at index: Int, in block: inout [UInt8], blockOffset: UInt64) throws {
        refcountWidth.set(value, at: index, in: &block)
        refcountBlocks[blockOffset] = block
        let bytes = refcountWidth.byteRange(of: index)
        try writeMetadata(Array(block[bytes]), offset: blockOffset + UInt64(bytes.lowerBound))
    }

    func adjustRefcount(ofHostCluster host: UInt64, by delta: Int) throws {
        let (tableIndex, index) = refcountPosition(host)
        if tableIndex >= refcountTable.count {
            guard delta > 0 else { throw Qcow2Error.corrupt("freeing cluster \(host), beyond the refcount table") }
            try growRefcountTable(toCover: tableIndex)
        }
        var blockOffset = refcountTable[tableIndex] & ~UInt64(511)
        var block: [UInt8]
        if blockOffset == 0 {
            guard delta > 0 else { throw Qcow2Error.corrupt("freeing cluster \(host), which has no refcount block") }
            // A new refcount block, allocated here; when it covers itself it counts itself.
            blockOffset = fileEnd
            fileEnd += header.clusterSize
            block = [UInt8](repeating: 0, count: Int(header.clusterSize))
            let (selfTable, selfIndex) = refcountPosition(blockOffset)
            if selfTable == tableIndex { refcountWidth.set(1, at: selfIndex, in: &block) }
            try writeMetadata(block, offset: blockOffset)
            refcountTable[tableIndex] = blockOffset
            try writeMetadata(Qcow2Backend.encode64(blockOffset), offset: refcountTableOffset + UInt64(tableIndex) * 8)
            if selfTable != tableIndex { try adjustRefcount(ofHostCluster: blockOffset, by: 1) }
        } else {
            block = try refcountBlock(at: blockOffset)
        }
        let current = refcountWidth.value(at: index, in: block)
        let magnitude = UInt64(delta.magnitude)
        guard delta >= 0 ? refcountWidth.maximum - current >= magnitude : current >= magnitude else {
            throw Qcow2Error.corrupt("refcount \(current) of cluster \(host) cannot change by \(delta) (\(refcountWidth.bits)-bit refcounts)")
        }
        try storeRefcount(delta >= 0 ? current + magnitude : current - magnitude, at: index, in: &block, blockOffset: blockOffset)
    }

    /// Moves the refcount table to a larger one at the end of the file, so that it has an
    /// entry `tableIndex`. The new table and the refcount blocks that count its clusters
    /// (and themselves) are written first; then the header points at the new table (one
    /// 12-byte write); then the old table's clusters are freed. A crash before the header
    /// write leaves the old, consistent table and some unreferenced clusters past it.
    private func growRefcountTable(toCover tableIndex: Int) throws {
        let cluster = header.clusterSize
        let entriesPerCluster = Int(cluster / 8)
        let mostEntries = Int(Qcow2Header.maximumRefcountTableBytes / 8)
        var entries = max(min(refcountTable.count * 2, mostEntries), tableIndex + 1)
        let start = fileEnd
        var tableClusters = 0, newBlocks: [Int] = []
        // The new clusters (the table, then the blocks) need counting too: grow the set of
        // new blocks until it covers itself and the table, and the table until it lists them.
        while true {
            tableClusters = (entries + entriesPerCluster - 1) / entriesPerCluster
            var count = 0
            while true {
                let first = refcountPosition(start).table
                let last = refcountPosition(start + UInt64(tableClusters + count - 1) * cluster).table
                let needed = (first...last).filter { $0 >= refcountTable.count || refcountTable[$0] == 0 }
                if needed.count == count { newBlocks = needed; break }
                count = needed.count
            }
            guard let highest = newBlocks.max(), highest >= entries else { break }
            entries = highest + 1
        }
        // QEMU's limit, which the header parser holds every image to.
        guard UInt64(tableClusters) * cluster <= Qcow2Header.maximumRefcountTableBytes else {
            throw SystemError("qcow2: the refcount table would pass 8 MiB", errno: ENOSPC)
        }
        var table = refcountTable + [UInt64](repeating: 0, count: tableClusters * entriesPerCluster - refcountTable.count)
        var blocks: [Int: [UInt8]] = [:]
        for (position, index) in newBlocks.enumerated() {
            table[index] = start + UInt64(tableClusters + position) * cluster
            blocks[index] = [UInt8](repeating: 0, count: Int(cluster))
        }
        // Count the new clusters: in the new blocks, or in a block that already exists.
        for number in 0..<(tableClusters + newBlocks.count) {
            let (index, slot) = refcountPosition(start + UInt64(number) * cluster)
            if blocks[index] != nil {
                refcountWidth.set(1, at: slot, in: &blocks[index]!)
            } else {
                let offset = refcountTable[index] & ~UInt64(511)
                var block = try refcountBlock(at: offset)
                try storeRefcount(1, at: slot, in: &block, blockOffset: offset)
            }
        }
        fileEnd = start + UInt64(tableClusters + newBlocks.count) * cluster
        for (index, block) in blocks {
            try writeMetadata(block, offset: table[index])
            remember(block, at: table[index], in: &refcountBlocks)
        }
        try writeMetadata(table.flatMap(Qcow2Backend.encode64), offset: start)
        let oldOffset = refcountTableOffset, oldClusters = (refcountTable.count + entriesPerCluster - 1) / entriesPerCluster
        try writeMetadata(Qcow2Backend.encode64(start) + Qcow2Backend.encode32(UInt32(tableClusters)), offset: 48)
        refcountTable = table
        refcountTableOffset = start
        for number in 0..<oldClusters { try adjustRefcount(ofHostCluster: oldOffset + UInt64(number) * cluster, by: -1) }
    }
}

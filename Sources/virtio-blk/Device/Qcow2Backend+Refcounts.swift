import DiskFormats
import Glibc
import LinuxSystem

/// The qcow2 backend's host-cluster bookkeeping: allocation at the end of the file,
/// 16-bit refcounts in refcount blocks listed by the refcount table, and the table's
/// growth when the file outgrows it.
extension Qcow2Backend {
    /// A new host cluster at the end of the file, its refcount already 1.
    func allocateCluster() throws -> UInt64 {
        let cluster = fileEnd
        fileEnd += header.clusterSize
        try adjustRefcount(ofHostCluster: cluster, by: 1)
        return cluster
    }

    func refcount(ofHostCluster host: UInt64) throws -> UInt16 {
        let (tableIndex, index) = refcountPosition(host)
        guard tableIndex < refcountTable.count else { return 0 }
        let blockOffset = refcountTable[tableIndex] & ~UInt64(511)
        guard blockOffset != 0 else { return 0 }
        return try refcountBlock(at: blockOffset)[index]
    }

    private func refcountPosition(_ host: UInt64) -> (table: Int, index: Int) {
        let cluster = host / header.clusterSize
        return (Int(cluster / header.refcountBlockEntries), Int(cluster % header.refcountBlockEntries))
    }

    private func refcountBlock(at offset: UInt64) throws -> [UInt16] {
        if let block = refcountBlocks[offset] { return block }
        try checkMetadataCluster(offset, "a refcount block")
        let bytes = try readMetadata(count: Int(header.clusterSize), offset: offset)
        guard bytes.count == Int(header.clusterSize) else { throw Qcow2Error.truncated("the refcount block at \(offset)") }
        let block = stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        remember(block, at: offset, in: &refcountBlocks)
        return block
    }

    func adjustRefcount(ofHostCluster host: UInt64, by delta: Int) throws {
        let (tableIndex, index) = refcountPosition(host)
        if tableIndex >= refcountTable.count {
            guard delta > 0 else { throw Qcow2Error.corrupt("freeing cluster \(host), beyond the refcount table") }
            try growRefcountTable(toCover: tableIndex)
        }
        var blockOffset = refcountTable[tableIndex] & ~UInt64(511)
        var block: [UInt16]
        if blockOffset == 0 {
            guard delta > 0 else { throw Qcow2Error.corrupt("freeing cluster \(host), which has no refcount block") }
            // A new refcount block, allocated here; when it covers itself it counts itself.
            blockOffset = fileEnd
            fileEnd += header.clusterSize
            block = [UInt16](repeating: 0, count: Int(header.refcountBlockEntries))
            let (selfTable, selfIndex) = refcountPosition(blockOffset)
            if selfTable == tableIndex { block[selfIndex] = 1 }
            try writeMetadata(Qcow2Backend.encode16(block), offset: blockOffset)
            refcountTable[tableIndex] = blockOffset
            try writeMetadata(Qcow2Backend.encode64(blockOffset), offset: refcountTableOffset + UInt64(tableIndex) * 8)
            if selfTable != tableIndex { try adjustRefcount(ofHostCluster: blockOffset, by: 1) }
        } else {
            block = try refcountBlock(at: blockOffset)
        }
        let value = Int(block[index]) + delta
        guard (0...Int(UInt16.max)).contains(value) else { throw Qcow2Error.corrupt("refcount of cluster \(host) would be \(value)") }
        block[index] = UInt16(value)
        refcountBlocks[blockOffset] = block
        try writeMetadata([UInt8(value >> 8), UInt8(value & 0xFF)], offset: blockOffset + UInt64(index) * 2)
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
        var blocks: [Int: [UInt16]] = [:]
        for (position, index) in newBlocks.enumerated() {
            table[index] = start + UInt64(tableClusters + position) * cluster
            blocks[index] = [UInt16](repeating: 0, count: Int(header.refcountBlockEntries))
        }
        // Count the new clusters: in the new blocks, or in a block that already exists.
        for number in 0..<(tableClusters + newBlocks.count) {
            let (index, slot) = refcountPosition(start + UInt64(number) * cluster)
            if blocks[index] != nil {
                blocks[index]![slot] = 1
            } else {
                let offset = refcountTable[index] & ~UInt64(511)
                var block = try refcountBlock(at: offset)
                block[slot] = 1
                refcountBlocks[offset] = block
                try writeMetadata([0, 1], offset: offset + UInt64(slot) * 2)
            }
        }
        fileEnd = start + UInt64(tableClusters + newBlocks.count) * cluster
        for (index, block) in blocks {
            try writeMetadata(Qcow2Backend.encode16(block), offset: table[index])
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

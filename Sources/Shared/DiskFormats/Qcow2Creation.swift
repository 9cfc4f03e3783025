/// The first bytes of a new, empty qcow2 image (version 3, 64 KiB clusters, 16-bit
/// refcounts), laid out as `qemu-img create` does: the header cluster (with the backing
/// file's format extension and name), the refcount table, one refcount block, the L1
/// table. Every data cluster is unallocated, so the image reads as zeros or as its
/// backing file. Pure: the caller writes the bytes to a new file.
public enum Qcow2Creation {
    public static let clusterBits: UInt32 = 16
    static let clusterSize = 1 << 16

    public enum CreationError: Error, Equatable, CustomStringConvertible {
        case size(UInt64)
        case backingName(String)

        public var description: String {
            switch self {
            case .size(let size): "a qcow2 image of \(size) bytes: the size must be a multiple of 512, from 512 bytes to 64 TiB"
            case .backingName(let name): "a backing file name of \(name.utf8.count) bytes (1 to 1023 are allowed)"
            }
        }
    }

    public static func initialBytes(size: UInt64, backing: (name: String, format: String)? = nil) throws(CreationError) -> [UInt8] {
        guard size > 0, size % 512 == 0, size <= Qcow2Header.maximumSize else { throw .size(size) }
        let cluster = UInt64(clusterSize)
        let l2Coverage = cluster * (cluster / 8)
        let l1Entries = (size + l2Coverage - 1) / l2Coverage
        let l1Clusters = (l1Entries * 8 + cluster - 1) / cluster
        // Clusters: 0 header, 1 refcount table, 2 refcount block, 3... L1 table.
        let refcountTable: UInt64 = 1, refcountBlock: UInt64 = 2, l1Table: UInt64 = 3
        let clusters = Int(l1Table + max(l1Clusters, 1))

        var bytes = [UInt8](repeating: 0, count: clusters * clusterSize)
        func put(_ value: UInt64, _ count: Int, at offset: Int) {
            for index in 0..<count { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(count - 1 - index))) }
        }
        bytes.replaceSubrange(0..<4, with: Qcow2Header.magic)
        put(3, 4, at: 4)                                    // version
        put(UInt64(clusterBits), 4, at: 20)
        put(size, 8, at: 24)
        put(l1Entries, 4, at: 36)
        put(l1Table * cluster, 8, at: 40)
        put(refcountTable * cluster, 8, at: 48)
        put(1, 4, at: 56)                                   // refcount table clusters
        put(4, 4, at: 96)                                   // refcount order: 16 bits
        put(104, 4, at: 100)                                // header length
        var offset = 104
        if let backing {
            let name = Array(backing.name.utf8), format = Array(backing.format.utf8)
            guard (1...Int(Qcow2Header.maximumBackingNameBytes)).contains(name.count), !name.contains(0) else { throw .backingName(backing.name) }
            put(UInt64(Qcow2Header.ExtensionType.backingFormat), 4, at: offset)
            put(UInt64(format.count), 4, at: offset + 4)
            bytes.replaceSubrange((offset + 8)..<(offset + 8 + format.count), with: format)
            offset += 8 + (format.count + 7) & ~7
            offset += 8                                     // the end-of-extensions marker (zeros)
            put(UInt64(offset), 8, at: 8)
            put(UInt64(name.count), 4, at: 16)
            bytes.replaceSubrange(offset..<(offset + name.count), with: name)
        }
        put(refcountBlock * cluster, 8, at: Int(refcountTable * cluster))
        for index in 0..<clusters {                         // each metadata cluster counts once
            put(1, 2, at: Int(refcountBlock * cluster) + 2 * index)
        }
        return bytes
    }
}

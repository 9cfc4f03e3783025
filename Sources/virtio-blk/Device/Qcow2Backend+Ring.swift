import Glibc
import LinuxSystem

/// qcow2 through the io_uring: a read of data clusters, or a write into clusters it may
/// write in place, goes to the ring as runs of the image file; everything that needs the
/// tables to change, or other bytes than the file's (zero and unallocated clusters, the
/// backing image, compressed data), is served by the backend itself, after the ring has
/// gone quiet when it changes the layout.
extension Qcow2Backend: RingBackend {
    var ringFile: FileDescriptor { data }
    var ringDirect: Bool { dataDirect }
    var ringFlushIsEnough: Bool { !externalData }
    var layoutChangesWaitForTheRing: Bool { true }

    func fileExtents(at offset: UInt64, length: Int, forWriting: Bool, limit: Int) throws -> [FileExtent]? {
        if forWriting, readOnly { return nil }
        var extents: [FileExtent] = []
        var direct = true
        try forEachPiece(offset: offset, length: UInt64(length)) { cluster, within in
            guard direct else { return }
            guard case .data(let host, let copied) = try mapping(ofGuestCluster: cluster) else {
                direct = false
                return
            }
            if forWriting, !externalData {
                guard try copied || refcount(ofHostCluster: host) == 1 else {
                    direct = false  // shared with a snapshot or another table: copied on write
                    return
                }
                try checkNotMetadata(host)
            }
            let start = host + UInt64(within.lowerBound)
            if let last = extents.last, last.host + UInt64(last.length) == start {
                extents[extents.count - 1].length += within.count
            } else if extents.count < limit {
                extents.append(FileExtent(host: start, length: within.count))
            } else {
                direct = false
            }
        }
        return direct ? extents : nil
    }

    /// The image's last data cluster may end before the file does: what is past the end
    /// reads as zeros, as `read` has it.
    func finishShortTransfer(reading: Bool, _ vectors: inout [iovec], at host: UInt64) throws {
        if reading {
            try PositionalIO.read(data, into: &vectors, at: host, direct: dataDirect, zeroPastEnd: true)
        } else {
            try PositionalIO.write(data, from: &vectors, at: host, direct: dataDirect)
        }
    }
}

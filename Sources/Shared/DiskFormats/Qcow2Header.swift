/// The header of a qcow2 image (QEMU's docs/interop/qcow2.rst, versions 2 and 3),
/// parsed from the image's first bytes and checked against the file's size before any
/// table is read: every table must lie inside the file, cluster-aligned, and of a size
/// that a disk of `size` bytes needs. Pure: it reads only the bytes it is given, so it
/// runs in vmd (to find the backing file) and in the fuzzer alike.
///
/// What this implementation takes: cluster sizes from 4 KiB to 2 MiB, refcounts of any
/// width (1 to 64 bits), deflate and zstd compression, extended L2 entries (subclusters),
/// backing files, external data files. What it refuses, with the reason: encryption, the
/// corrupt bit, and any incompatible feature or compression type it does not know.
public struct Qcow2Header: Equatable, Sendable {
    public static let magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]
    public static let clusterBitsRange: ClosedRange<UInt32> = 12...21
    /// QEMU's limits: an L1 table of at most 32 MiB, a refcount table of at most 8 MiB.
    public static let maximumL1Bytes: UInt64 = 32 << 20
    public static let maximumRefcountTableBytes: UInt64 = 8 << 20
    public static let maximumBackingNameBytes: UInt32 = 1023
    /// A virtual disk of at most 64 TiB: enough, and far from any overflow.
    public static let maximumSize: UInt64 = 1 << 46
    /// Where a version 3 header keeps its incompatible feature bits (the dirty bit among them).
    public static let incompatibleOffset: UInt64 = 72
    /// Where a version 3 header keeps its autoclear bits.
    public static let autoclearOffset: UInt64 = 88

    public enum IncompatibleFeature {
        public static let dirty: UInt64 = 1 << 0
        public static let corrupt: UInt64 = 1 << 1
        public static let externalData: UInt64 = 1 << 2
        public static let compressionType: UInt64 = 1 << 3
        public static let extendedL2: UInt64 = 1 << 4
    }

    /// How compressed clusters are compressed (header byte 104, with the compression type feature).
    public enum CompressionType: UInt8, Sendable {
        /// Raw deflate (RFC 1951), the only kind before QEMU 5.1 and still qemu-img's default.
        case deflate = 0
        /// One zstd frame per cluster (`qemu-img convert -c -o compression_type=zstd`).
        case zstd = 1
    }

    public enum ExtensionType {
        public static let end: UInt32 = 0
        public static let backingFormat: UInt32 = 0xE279_2ACA
        public static let externalDataFile: UInt32 = 0x4441_5441
    }

    /// Bits a program may set only while it keeps what they promise: one that writes an
    /// image must first clear every bit it does not keep (qcow2.rst).
    public enum AutoclearFeature {
        /// The persistent dirty bitmaps (`qemu-img bitmap --add`) are consistent. Not kept
        /// here: cleared before a write, so QEMU drops them rather than trust stale ones.
        public static let bitmaps: UInt64 = 1 << 0
        /// The external data file is a raw image of the disk, kept so (zeros written, not only flagged).
        public static let rawExternalData: UInt64 = 1 << 1
        /// What a writer here keeps true.
        public static let kept = rawExternalData
    }

    public var version: UInt32
    public var clusterBits: UInt32
    /// The virtual disk's size in bytes.
    public var size: UInt64
    public var l1Entries: UInt32
    public var l1TableOffset: UInt64
    public var refcountTableOffset: UInt64
    public var refcountTableClusters: UInt32
    public var snapshotCount: UInt32
    /// Where the snapshot table is (`snapshotCount` entries).
    public var snapshotsOffset: UInt64
    public var incompatibleFeatures: UInt64
    public var compatibleFeatures: UInt64
    public var autoclearFeatures: UInt64
    /// Refcounts are 1 << refcountOrder bits wide (0-6: 1 to 64 bits; qemu-img's default 4 is 16).
    public var refcountOrder: UInt32
    public var headerLength: UInt32
    /// The backing file as written in the image (a path, often relative to the image).
    public var backingFile: String?
    /// The backing file's format from the header extension ("raw", "qcow2"), if given.
    public var backingFormat: String?
    /// Where the guest's data is when it is not in this file (incompatible feature bit 2):
    /// the external data file's name, as written (often relative to the image).
    public var externalDataFile: String?
    /// The external data file is itself a raw image of the disk (autoclear bit 1).
    public var externalDataIsRaw: Bool { externalDataFile != nil && autoclearFeatures & AutoclearFeature.rawExternalData != 0 }

    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    /// L2 entries per L2 table (one cluster): 8 bytes each, or 16 with extended L2 entries.
    public var l2Entries: UInt64 { clusterSize / UInt64(8 * l2EntryWords) }
    /// Extended L2 entries (incompatible feature bit 4): each cluster is 32 subclusters, and
    /// its L2 entry has a second word, which subclusters are allocated and which read as zeros.
    public var extendedL2: Bool { incompatibleFeatures & IncompatibleFeature.extendedL2 != 0 }
    /// 64-bit words per L2 entry.
    public var l2EntryWords: Int { extendedL2 ? 2 : 1 }
    /// Refcounts per refcount block (one cluster).
    public var refcountBlockEntries: UInt64 { (clusterSize * 8) >> UInt64(refcountOrder) }
    public var compressionType: CompressionType
    /// The image needs its refcounts rebuilt before it may be written (lazy refcounts):
    /// its writer stopped with refcount updates still deferred. The device does it
    /// (`Qcow2Backend.repairRefcounts`), as QEMU does at open.
    public var isDirty: Bool { incompatibleFeatures & IncompatibleFeature.dirty != 0 }

    /// How many bytes of the image's start `init(bytes:fileSize:)` wants: the header
    /// cluster is enough (extensions and the backing name live in it), and 64 KiB more
    /// than the largest header QEMU writes.
    public static let bytesNeeded = 1 << 16

    public static func hasMagic(_ bytes: [UInt8]) -> Bool { bytes.starts(with: magic) }

    /// Where a file an image names (its backing file, its external data file) is: the name
    /// itself if absolute, else relative to the directory of the image that names it, as
    /// QEMU takes a backing file's name. vmd and vmctl both open a chain by it.
    public static func path(of name: String, namedBy image: String) -> String {
        guard !name.hasPrefix("/") else { return name }
        guard let slash = image.lastIndex(of: "/") else { return "./" + name }
        return String(image[...slash]) + name
    }

    /// `bytes` is the image's start (up to `bytesNeeded`), `fileSize` its length.
    public init(bytes: [UInt8], fileSize: UInt64) throws(Qcow2Error) {
        guard Qcow2Header.hasMagic(bytes) else { throw .notQcow2 }
        guard bytes.count >= 72 else { throw .truncated("a header of \(bytes.count) bytes") }
        func u32(_ offset: Int) -> UInt32 { bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        func u64(_ offset: Int) -> UInt64 { bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }

        version = u32(4)
        guard version == 2 || version == 3 else { throw .unsupported("version \(version) (2 and 3 are)") }
        clusterBits = u32(20)
        guard Qcow2Header.clusterBitsRange.contains(clusterBits) else {
            throw .unsupported("clusters of 2^\(clusterBits) bytes (4 KiB to 2 MiB are)")
        }
        let clusterSize = UInt64(1) << UInt64(clusterBits)
        size = u64(24)
        guard size <= Qcow2Header.maximumSize else { throw .unsupported("a virtual size of \(size) bytes (at most 64 TiB)") }
        guard u32(32) == 0 else { throw .unsupported("encryption (method \(u32(32)))") }
        l1Entries = u32(36)
        l1TableOffset = u64(40)
        refcountTableOffset = u64(48)
        refcountTableClusters = u32(56)
        snapshotCount = u32(60)
        snapshotsOffset = u64(64)

        if version == 3 {
            guard bytes.count >= 104 else { throw .truncated("a version 3 header of \(bytes.count) bytes") }
            incompatibleFeatures = u64(72)
            compatibleFeatures = u64(80)
            autoclearFeatures = u64(Int(Qcow2Header.autoclearOffset))
            refcountOrder = u32(96)
            headerLength = u32(100)
            guard headerLength >= 104, UInt64(headerLength) <= clusterSize, Int(headerLength) <= bytes.count else {
                throw .corrupt("header length \(headerLength)")
            }
        } else {
            (incompatibleFeatures, compatibleFeatures, autoclearFeatures) = (0, 0, 0)
            refcountOrder = 4
            headerLength = 72
        }
        let known = IncompatibleFeature.dirty | IncompatibleFeature.corrupt | IncompatibleFeature.externalData
            | IncompatibleFeature.compressionType | IncompatibleFeature.extendedL2
        if incompatibleFeatures & ~known != 0 { throw .unsupported("incompatible features 0x\(String(incompatibleFeatures & ~known, radix: 16))") }
        if incompatibleFeatures & IncompatibleFeature.corrupt != 0 { throw .corrupt("the image is marked corrupt (qemu-img check -r all repairs it)") }
        let type = incompatibleFeatures & IncompatibleFeature.compressionType != 0 && headerLength > 104 ? bytes[104] : 0
        guard let compression = CompressionType(rawValue: type) else { throw .unsupported("compression type \(type) (deflate and zstd are)") }
        compressionType = compression
        guard refcountOrder <= 6 else { throw .corrupt("refcount order \(refcountOrder) (0 to 6 are valid)") }

        // The tables: aligned, inside the file, and as large as the disk needs.
        let clustersNeeded = (size + clusterSize - 1) / clusterSize
        let l1Needed = (clustersNeeded + l2Entries - 1) / l2Entries
        let l1Bytes = UInt64(l1Entries) * 8
        guard UInt64(l1Entries) >= l1Needed else { throw .corrupt("an L1 table of \(l1Entries) entries for a disk that needs \(l1Needed)") }
        guard l1Bytes <= Qcow2Header.maximumL1Bytes else { throw .unsupported("an L1 table of \(l1Bytes) bytes (at most 32 MiB)") }
        try Qcow2Header.checkTable("the L1 table", offset: l1TableOffset, bytes: l1Bytes, clusterSize: clusterSize, fileSize: fileSize)
        let refcountBytes = UInt64(refcountTableClusters) * clusterSize
        guard refcountTableClusters >= 1, refcountBytes <= Qcow2Header.maximumRefcountTableBytes else {
            throw .corrupt("a refcount table of \(refcountTableClusters) clusters")
        }
        try Qcow2Header.checkTable("the refcount table", offset: refcountTableOffset, bytes: refcountBytes, clusterSize: clusterSize, fileSize: fileSize)

        // The backing file's name, in the header cluster.
        let backingOffset = u64(8), backingLength = u32(16)
        if backingOffset != 0 {
            guard backingLength >= 1, backingLength <= Qcow2Header.maximumBackingNameBytes,
                  backingOffset < UInt64(bytes.count), backingOffset + UInt64(backingLength) <= min(UInt64(bytes.count), clusterSize) else {
                throw .corrupt("a backing file name of \(backingLength) bytes at \(backingOffset)")
            }
            let name = Array(bytes[Int(backingOffset)..<Int(backingOffset + UInt64(backingLength))])
            guard !name.contains(0), let text = String(validating: name, as: UTF8.self) else { throw .corrupt("the backing file name is not text") }
            backingFile = text
        } else {
            backingFile = nil
        }

        // Header extensions, from the end of the header to the end marker.
        backingFormat = nil
        externalDataFile = nil
        var offset = Int(headerLength)
        let limit = min(bytes.count, Int(clusterSize))
        while offset + 8 <= limit {
            let type = u32(offset), length = Int(u32(offset + 4))
            if type == ExtensionType.end { break }
            let end = offset + 8 + length
            guard length <= limit, end <= limit else { throw .corrupt("header extension 0x\(String(type, radix: 16)) runs past the header cluster") }
            if type == ExtensionType.backingFormat {
                guard let format = String(validating: bytes[(offset + 8)..<end], as: UTF8.self) else { throw .corrupt("the backing format is not text") }
                backingFormat = format
            }
            if type == ExtensionType.externalDataFile, incompatibleFeatures & IncompatibleFeature.externalData != 0 {
                let name = Array(bytes[(offset + 8)..<end])
                guard !name.isEmpty, name.count <= Qcow2Header.maximumBackingNameBytes, !name.contains(0),
                      let text = String(validating: name, as: UTF8.self) else { throw .corrupt("the external data file's name is not a name") }
                externalDataFile = text
            }
            offset = (end + 7) & ~7
        }
        if incompatibleFeatures & IncompatibleFeature.externalData != 0, externalDataFile == nil {
            throw .unsupported("an external data file that the image does not name")
        }
        if externalDataFile != nil, snapshotCount > 0 { throw .corrupt("internal snapshots with an external data file") }
    }

    private static func checkTable(_ name: String, offset: UInt64, bytes: UInt64, clusterSize: UInt64, fileSize: UInt64) throws(Qcow2Error) {
        guard offset % clusterSize == 0, offset != 0 else { throw .corrupt("\(name) at \(offset) is not cluster-aligned") }
        let (end, overflow) = offset.addingReportingOverflow(bytes)
        guard !overflow, end <= fileSize else { throw .corrupt("\(name) (\(bytes) bytes at \(offset)) lies outside the file of \(fileSize) bytes") }
    }
}

import CZlib

/// The layout of a VM snapshot (`vmctl send`), version 1. Little-endian throughout:
///
///     header:  "SVMDSNAP" | u32 version | u32 shape length | shape | u32 CRC-32 of the shape
///     section: u32 kind | u32 index | u64 length | payload | u32 CRC-32 of kind, index, length and payload
///     ...      one `machine` section, a `vcpu` section per vCPU, a `device` section per virtio
///              device, a `memory` section per RAM slot, then `end` (payload: u32 sections before it)
///
/// A memory section's payload is u64 page size | u32 run count | runs (u64 first page, u64 page
/// count), ascending and apart | the pages of every run, in order. Pages that are all zero are in
/// no run: a restored VM's fresh RAM is zero already.
public enum SnapshotFormat {
    public static let magic: [UInt8] = Array("SVMDSNAP".utf8)
    public static let version: UInt32 = 1
    public static let pageSize: UInt64 = 4096

    /// A state section's payload is small (vCPU registers, device registers): anything bigger is not ours.
    public static let maximumStateSection = 1 << 20
    public static let maximumShape = 64 * 1024
}

/// What a section holds.
public enum SnapshotSectionKind: UInt32, Sendable {
    case machine = 1
    case vcpu = 2
    case device = 3
    case memory = 4
    case end = 0xFFFF_FFFF
}

/// A range of guest pages within one slot, in page numbers from the slot's base.
public struct PageRun: Equatable, Sendable {
    public var firstPage: UInt64
    public var pageCount: UInt64

    public init(firstPage: UInt64, pageCount: UInt64) {
        self.firstPage = firstPage
        self.pageCount = pageCount
    }
}

/// CRC-32 (zlib's, the polynomial of gzip and PNG), carried along a stream.
public struct SnapshotChecksum {
    public private(set) var value: UInt32 = 0

    public init() {}

    /// Goes on from a CRC computed over what came before.
    public init(continuing value: UInt32) { self.value = value }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        // zlib takes a uInt length: feed it at most 1 GiB at a time.
        while !rest.isEmpty {
            let piece = min(rest.count, 1 << 30)
            // SAFETY: `piece` bytes of `rest` are readable for the call.
            value = UInt32(truncatingIfNeeded: crc32(UInt(value), rest.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(piece)))
            rest = UnsafeRawBufferPointer(rebasing: rest[piece...])
        }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }
}

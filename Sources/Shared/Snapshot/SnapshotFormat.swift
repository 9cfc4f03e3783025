import CXXHash

/// The layout of a VM snapshot (`vmctl send`), version 1. Little-endian throughout:
///
///     header:  "SVMDSNAP" | u32 version | u32 shape length | shape | u64 XXH3 of the shape
///     section: u32 kind | u32 index | u64 length | payload | u64 XXH3 of kind, index, length and payload
///     ...      one `machine` section, a `vcpu` section per vCPU, a `device` section per virtio
///              device, a `memory` section per RAM slot, then `end` (payload: u32 sections before it)
///
/// A memory section's payload is u64 page size | u32 run count | runs (u64 first page, u64 page
/// count), ascending and apart | u64 XXH3 of the section header and the table | the pages of
/// every run, in order | u64 XXH3 of the pages (the length counts neither checksum). Pages that
/// are all zero are in no run: a restored VM's fresh RAM is zero already. A live migration's
/// stream has memory sections in rounds, a slot again and again, the later pages replacing.
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

/// XXH3-64 (Debian's libxxhash), carried along a stream: it checks a section at memory
/// speed, where CRC-32 took most of the time of saving or restoring a large guest.
public final class SnapshotChecksum {
    private let state: OpaquePointer

    public init() {
        // SAFETY: a state from the library, reset before use and freed in deinit.
        guard let state = XXH3_createState() else { preconditionFailure("XXH3_createState: out of memory") }
        self.state = state
        XXH3_64bits_reset(state)
    }

    deinit { XXH3_freeState(state) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        // SAFETY: `bytes.count` bytes at `base` are readable for the call.
        XXH3_64bits_update(state, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public var value: UInt64 { XXH3_64bits_digest(state) }
}

import LinuxSystem

/// One `disk "path" [format raw|qcow2] [readonly] [cache none|writeback] [{ limits }]`
/// statement of a vm block; the limits are `bandwidth` and `ops` (`RateLimitOption`).
public struct DiskConfig: Equatable, Sendable {
    public enum Format: String, Sendable {
        case raw
        case qcow2
    }

    /// How the images are opened: `writeback` through the host's page cache (FLUSH is
    /// fdatasync), `none` with O_DIRECT (the page cache is bypassed; FLUSH still syncs).
    public enum Cache: String, Sendable {
        case writeback
        case none
    }

    /// The image path as written; the caller resolves relative paths.
    public var path: String
    public var format: Format
    public var readOnly: Bool
    public var cache: Cache = .writeback
    /// `bandwidth` (bytes/s) and `ops` (requests/s), enforced by the disk's device process.
    public var rateLimit = RateLimit()
    /// `io limit`: the host's limit on the I/O of the VM's processes to the device holding
    /// the image (cgroup v2 io.max), as opposed to `rateLimit`, which the device enforces.
    public var ioLimit = DiskIOLimit()
    /// Where the `disk` keyword is, for errors about the image (missing, locked).
    public var location: ConfigLocation

    public init(path: String, format: Format = .raw, readOnly: Bool = false, location: ConfigLocation) {
        self.path = path
        self.format = format
        self.readOnly = readOnly
        self.location = location
    }

    /// As vmd: up to four disks per VM.
    public static let maximumPerVM = 4
}

/// A disk's `io limit [SIZE] [ops N]`: io.max's rbps/wbps and riops/wiops, each direction
/// on its own. Empty: no limit.
public struct DiskIOLimit: Equatable, Sendable {
    public var bytesPerSecond: UInt64?
    public var operationsPerSecond: UInt64?

    public init(bytesPerSecond: UInt64? = nil, operationsPerSecond: UInt64? = nil) {
        self.bytesPerSecond = bytesPerSecond
        self.operationsPerSecond = operationsPerSecond
    }

    public var isUnlimited: Bool { bytesPerSecond == nil && operationsPerSecond == nil }
}

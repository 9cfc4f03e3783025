/// Why a snapshot could not be written or read. Every defect of a file is one of these, never a crash.
public enum SnapshotError: Error, Equatable, CustomStringConvertible {
    case notASnapshot
    case unsupportedVersion(UInt32)
    case truncated(String)
    case checksumMismatch(String)
    case malformed(String)
    /// The snapshot is of another VM: the text says how it differs.
    case shapeMismatch(String)

    public var description: String {
        switch self {
        case .notASnapshot: "not a swift-vmd snapshot (bad magic)"
        case .unsupportedVersion(let version):
            "snapshot format version \(version); this swift-vmd reads version \(SnapshotFormat.version) only"
        case .truncated(let what): "snapshot ends early: \(what)"
        case .checksumMismatch(let what): "snapshot is corrupt: checksum of \(what) does not match"
        case .malformed(let what): "snapshot is malformed: \(what)"
        case .shapeMismatch(let how): "snapshot does not fit this VM: \(how)"
        }
    }
}

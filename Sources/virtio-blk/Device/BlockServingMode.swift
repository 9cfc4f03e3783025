import Glibc

/// How a disk's requests are served; see `BlockServing` for what each does.
///
/// A raw image goes through the io_uring (bench/run --only serving, README "Requests in
/// flight"): under `cache none` it kept 1.6-2.0x the workers' IOPS at queue depth 32 and
/// matched the loop at depth 1; on the page cache its reads matched the loop, and its
/// writes are served in the loop (the ring hands them to a kernel worker, 0.26-0.44x).
/// A qcow2 image is served in the loop: its tables are the backend's own.
enum BlockServingMode: String, CustomStringConvertible {
    case loop
    case workers
    case ring

    /// The environment variable that overrides the choice for raw images, so that the
    /// benchmark can put the modes side by side. Not a setting users need.
    static let overrideVariable = "VMD_BLOCK_SERVING"

    static func chosen(raw: Bool, override: String? = Self.overrideFromEnvironment()) throws(BlockServingError) -> Self {
        guard raw else { return .loop }
        guard let override else { return .ring }
        guard let mode = Self(rawValue: override) else { throw BlockServingError(value: override) }
        return mode
    }

    static func overrideFromEnvironment() -> String? {
        getenv(overrideVariable).map { String(cString: $0) }
    }

    var description: String {
        switch self {
        case .loop: "in the event loop"
        case .workers: "by worker threads"
        case .ring: "through io_uring"
        }
    }
}

struct BlockServingError: Error, Equatable, CustomStringConvertible {
    let value: String
    var description: String {
        "\(BlockServingMode.overrideVariable)=\(value): expected loop, workers or ring"
    }
}

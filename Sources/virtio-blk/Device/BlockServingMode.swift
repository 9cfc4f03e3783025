import Glibc

/// How a disk's requests are served; see `BlockServing` for what each does.
///
/// Both formats go through the io_uring (bench/run --only serving, README "Requests in
/// flight"). Raw under `cache none`: 1.6-2.0x the workers' IOPS at queue depth 32, the
/// loop's at depth 1. On the page cache its reads match the loop, and writes are served in
/// the loop (the ring hands them to a kernel worker, 0.26-0.44x). qcow2: reads of data
/// clusters and writes in place go to the ring, the rest is the backend's, in the loop.
enum BlockServingMode: String, CustomStringConvertible {
    case loop
    case workers
    case ring

    /// The environment variable that overrides the choice, so that the benchmark can put
    /// the modes side by side. Not a setting users need.
    static let overrideVariable = "VMD_BLOCK_SERVING"

    /// `raw`: a raw image; otherwise qcow2, whose tables are not shared between threads,
    /// so `workers` serves it in the loop instead.
    static func chosen(raw: Bool, override: String? = Self.overrideFromEnvironment()) throws(BlockServingError) -> Self {
        guard let override else { return .ring }
        guard let mode = Self(rawValue: override) else { throw BlockServingError(value: override) }
        return mode == .workers && !raw ? .loop : mode
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

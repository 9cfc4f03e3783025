/// A device's rate limit as vm.conf gives it (`disk ... { bandwidth 50M; ops 2000 }`,
/// `interface ... { bandwidth 100M; packets 20000 }`): up to two token buckets, one for
/// bytes and one for operations (a disk's requests, a NIC's packets), as Firecracker's
/// rate limiters. Each bucket refills at `rate` per second and holds at most `burst`.
/// vmd hands it to the device process, which enforces it (`RateLimiter`).
public struct RateLimit: Equatable, Sendable {
    public struct Bucket: Equatable, Sendable {
        /// Units (bytes or operations) per second, at least 1.
        public var rate: UInt64
        /// What the bucket holds when full, at least 1: what may go at once after a quiet spell.
        public var burst: UInt64

        public init(rate: UInt64, burst: UInt64? = nil) {
            self.rate = rate
            self.burst = burst ?? Self.defaultBurst(rate: rate)
        }

        /// A tenth of a second of the rate, as QEMU's block throttling: short enough that a
        /// limit is held over a few seconds, long enough for a request or two at once.
        public static func defaultBurst(rate: UInt64) -> UInt64 { max(rate / 10, 1) }

        /// The largest rate or burst accepted (a PiB per second): far beyond any device,
        /// small enough that the arithmetic in `TokenBucket` stays exact.
        public static let maximum: UInt64 = 1 << 50
    }

    /// `bandwidth`: bytes per second.
    public var bytes: Bucket?
    /// `ops` of a disk, `packets` of an interface: per second.
    public var operations: Bucket?

    public init(bytes: Bucket? = nil, operations: Bucket? = nil) {
        self.bytes = bytes
        self.operations = operations
    }

    /// No bucket at all: nothing to enforce.
    public var isUnlimited: Bool { bytes == nil && operations == nil }
}

extension RateLimit: CustomStringConvertible {
    /// "bandwidth 52428800/s burst 5242880, operations 2000/s burst 200", for log lines.
    public var description: String {
        guard !isUnlimited else { return "none" }
        let parts = [("bandwidth", bytes), ("operations", operations)].compactMap { name, bucket in
            bucket.map { "\(name) \($0.rate)/s burst \($0.burst)" }
        }
        return parts.joined(separator: ", ")
    }
}

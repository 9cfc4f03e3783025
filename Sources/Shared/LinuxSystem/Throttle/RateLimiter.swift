/// Enforces a `RateLimit` in a device process: its buckets, a clock, and whether the
/// device is being held back. Used on the device's event loop only.
public final class RateLimiter {
    private var bytes: TokenBucket?
    private var operations: TokenBucket?
    private let clock: () -> UInt64
    /// Times `admits` said no: how often the limit held the guest back.
    public private(set) var refusals = 0

    /// nil for a limit with no bucket: nothing to enforce, no limiter.
    public init?(_ limit: RateLimit, clock: @escaping () -> UInt64 = MonotonicClock.nanoseconds) {
        guard !limit.isUnlimited else { return nil }
        bytes = limit.bytes.map(TokenBucket.init)
        operations = limit.operations.map(TokenBucket.init)
        self.clock = clock
    }

    /// Whether the next request or packet may go now (every bucket has a positive balance).
    public func admits() -> Bool {
        let now = clock()
        let byBytes = bytes?.admits(now: now) ?? true
        let byOperations = operations?.admits(now: now) ?? true
        if byBytes && byOperations { return true }
        refusals += 1
        return false
    }

    /// Counts one operation of `byteCount` bytes that went.
    public func charge(bytes byteCount: UInt64) {
        let now = clock()
        bytes?.charge(byteCount, now: now)
        operations?.charge(1, now: now)
    }

    /// Seconds until `admits` can say yes again; 0 if it would now.
    public func secondsUntilAdmitted() -> Double {
        let now = clock()
        let wait = max(bytes?.nanosecondsUntilAdmitted(now: now) ?? 0, operations?.nanosecondsUntilAdmitted(now: now) ?? 0)
        return Double(wait) / 1e9
    }
}

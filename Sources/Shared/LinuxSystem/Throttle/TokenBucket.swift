/// One token bucket of a `RateLimit`: `rate` tokens a second, up to `capacity`. Pure: the
/// caller passes the time (monotonic nanoseconds), so tests run it without sleeping.
///
/// Something may go while the balance holds a whole token. Its charge may take the balance
/// below zero (a 1 MiB write against a bucket of 100 KiB); nothing more is admitted until
/// that is paid back. So a request larger than the bucket
/// still goes, and the long-run rate is `rate` exactly, whatever the request sizes.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let capacity: Double
    /// Tokens available; negative while a charge is being paid back.
    public private(set) var balance: Double
    private var refilledAt: UInt64?

    /// The bucket never holds less than this much of its rate: a device that waits for
    /// tokens wakes from its event loop up to a millisecond late (libevent rounds timeouts
    /// up to milliseconds), and what a smaller bucket overflowed meanwhile would be lost,
    /// so the device would fall short of its limit.
    public static let minimumCapacitySeconds = 0.002

    /// Starts full, as Firecracker's buckets do.
    public init(_ bucket: RateLimit.Bucket) {
        rate = Double(max(bucket.rate, 1))
        capacity = max(Double(max(bucket.burst, 1)), rate * Self.minimumCapacitySeconds)
        balance = capacity
    }

    /// Whether something may go now: the balance, refilled to `now`, holds a whole token.
    public mutating func admits(now: UInt64) -> Bool {
        refill(now: now)
        return balance >= 1
    }

    /// Takes `cost` tokens (after `admits` said yes).
    public mutating func charge(_ cost: UInt64, now: UInt64) {
        refill(now: now)
        balance -= Double(cost)
    }

    /// Nanoseconds from `now` until the balance holds a whole token again; 0 if it does.
    public mutating func nanosecondsUntilAdmitted(now: UInt64) -> UInt64 {
        refill(now: now)
        guard balance < 1 else { return 0 }
        return UInt64(((1 - balance) / rate * 1e9).rounded(.up))
    }

    private mutating func refill(now: UInt64) {
        if let refilledAt, now > refilledAt {
            balance = min(capacity, balance + Double(now - refilledAt) * rate / 1e9)
        }
        refilledAt = max(refilledAt ?? now, now)
    }
}

/// A token bucket for log lines (Firecracker's rate limiters are the model): `burst`
/// lines at once, refilled at `perSecond`. Pure; the caller passes the time, so it is
/// tested without sleeping.
public struct LineRateLimiter: Sendable {
    public let burst: Double
    public let perSecond: Double
    private var tokens: Double
    private var last: Double?

    public init(burst: Int, perSecond: Int) {
        self.burst = Double(burst)
        self.perSecond = Double(perSecond)
        tokens = Double(burst)
    }

    /// Takes one token if there is one. `now` is a monotonic time in seconds.
    public mutating func admit(now: Double) -> Bool {
        if let last, now > last { tokens = min(burst, tokens + (now - last) * perSecond) }
        last = max(last ?? now, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

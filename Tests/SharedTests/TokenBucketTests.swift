import XCTest
import LinuxSystem

/// The token buckets behind `disk { bandwidth; ops }` and `interface { bandwidth; packets }`,
/// run on a clock the test moves.
final class TokenBucketTests: XCTestCase {
    private let millisecond: UInt64 = 1_000_000

    func testStartsFullAndRefusesOnceEmpty() {
        var bucket = TokenBucket(.init(rate: 1000, burst: 100))
        var admitted = 0
        while bucket.admits(now: 0) {
            bucket.charge(1, now: 0)
            admitted += 1
        }
        XCTAssertEqual(admitted, 100)
        // One token comes every millisecond, and only a whole one admits.
        XCTAssertEqual(bucket.nanosecondsUntilAdmitted(now: 0), millisecond)
        XCTAssertFalse(bucket.admits(now: millisecond / 2))
        XCTAssertTrue(bucket.admits(now: millisecond))
        // Refill stops at the burst: a quiet minute buys no more than 100.
        XCTAssertEqual(TokenBucket(.init(rate: 1000, burst: 100)).capacity, 100)
        var rested = TokenBucket(.init(rate: 1000, burst: 100))
        rested.charge(100, now: 0)
        _ = rested.admits(now: 60_000 * millisecond)
        XCTAssertEqual(rested.balance, 100)
    }

    func testALargeChargeGoesAndIsPaidBack() {
        var bucket = TokenBucket(.init(rate: 1 << 20, burst: 64 << 10))  // 1 MiB/s, 64 KiB
        XCTAssertTrue(bucket.admits(now: 0))
        bucket.charge(1 << 20, now: 0)  // a 1 MiB write against a 64 KiB bucket
        XCTAssertFalse(bucket.admits(now: 0))
        let wait = bucket.nanosecondsUntilAdmitted(now: 0)
        // 960 KiB of debt at 1 MiB/s: 0.9375 s, plus one byte.
        XCTAssertEqual(Double(wait) / 1e9, 0.9375, accuracy: 1e-5)
        XCTAssertFalse(bucket.admits(now: wait - millisecond))
        XCTAssertTrue(bucket.admits(now: wait))
    }

    func testTheTimeGoingBackwardsAddsNothing() {
        var bucket = TokenBucket(.init(rate: 10, burst: 1))
        bucket.charge(1, now: 5_000 * millisecond)
        XCTAssertFalse(bucket.admits(now: 1_000 * millisecond))
        XCTAssertFalse(bucket.admits(now: 5_050 * millisecond))
        XCTAssertTrue(bucket.admits(now: 5_100 * millisecond))
    }

    /// A greedy device for ten simulated seconds, waking as late as libevent can (its
    /// timeouts are rounded up to milliseconds, plus the kernel's slack): what went is the
    /// rate, within the burst, for sizes around and above the bucket's, and for a bucket of
    /// one (the minimum capacity keeps late wake-ups from losing tokens).
    func testAGreedyDeviceGetsTheRateAndNoMore() {
        for (rate, burst, sizes) in [(UInt64(2000), UInt64(200), [UInt64(1)]), (2000, 1, [1]),
                                     (50 << 20, 5 << 20, [4096, 131_072, 8 << 20]), (1000, 1, [1]), (100 << 20, 4096, [1514, 64])] {
            var bucket = TokenBucket(.init(rate: rate, burst: burst))
            var now: UInt64 = 0
            var sent: UInt64 = 0
            var index = 0
            let end = 10_000 * millisecond
            while now < end {
                if bucket.admits(now: now) {
                    let size = sizes[index % sizes.count]
                    index += 1
                    bucket.charge(size, now: now)
                    sent += size
                } else {
                    let wait = bucket.nanosecondsUntilAdmitted(now: now)
                    now += (wait + millisecond - 1) / millisecond * millisecond + 60_000
                }
            }
            let expected = Double(rate) * 10
            let slack = Double(bucket.capacity) + Double(sizes.max()!)
            XCTAssertLessThanOrEqual(Double(sent), expected + slack, "rate \(rate) burst \(burst)")
            XCTAssertGreaterThanOrEqual(Double(sent), expected * 0.99, "rate \(rate) burst \(burst) fell short")
        }
    }

    func testTheLimiterHoldsToTheStricterBucket() throws {
        var now: UInt64 = 0
        let limit = RateLimit(bytes: .init(rate: 1000, burst: 1000), operations: .init(rate: 10, burst: 2))
        let limiter = try XCTUnwrap(RateLimiter(limit, clock: { now }))
        XCTAssertNil(RateLimiter(RateLimit()))
        // Two operations go (the operations bucket's burst), though bytes remain.
        XCTAssertTrue(limiter.admits())
        limiter.charge(bytes: 10)
        XCTAssertTrue(limiter.admits())
        limiter.charge(bytes: 10)
        XCTAssertFalse(limiter.admits())
        XCTAssertEqual(limiter.refusals, 1)
        XCTAssertEqual(limiter.secondsUntilAdmitted(), 0.1, accuracy: 1e-6)
        now = 100 * millisecond
        XCTAssertTrue(limiter.admits())
        // Now bytes are the limit: 2000 bytes against 1000/s.
        limiter.charge(bytes: 2000)
        now = 300 * millisecond
        XCTAssertFalse(limiter.admits())
        XCTAssertEqual(limiter.secondsUntilAdmitted(), 0.801, accuracy: 1e-6)
        XCTAssertEqual(limiter.refusals, 2)
    }

    func testDefaultBurstIsATenthOfTheRate() {
        XCTAssertEqual(RateLimit.Bucket(rate: 2000).burst, 200)
        XCTAssertEqual(RateLimit.Bucket(rate: 5).burst, 1)
        XCTAssertEqual("\(RateLimit(bytes: .init(rate: 100, burst: 7)))", "bandwidth 100/s burst 7")
    }
}

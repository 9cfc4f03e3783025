import Glibc
import LinuxSystem

/// How long a device watches a queue's available ring after a busy round, with
/// notifications still off, before it re-enables them and sleeps: each kick it avoids
/// saves the guest an exit (10–30 µs here). Adaptive, in the manner of KVM's halt polling:
/// a kick that comes soon after the device went to sleep means polling would have caught
/// it, so the window grows; a long quiet spell shrinks it back to nothing, so an idle or
/// single-request queue does not burn a core.
///
/// The largest window is 50 µs by default; `VMD_POLL_WINDOW_NS` sets another, 0 turns
/// polling off. QEMU's I/O threads use 32 µs, but here a guest's round trip (an interrupt
/// taken in emulated ring 0, then the next request) is 20–30 µs, and a 32 µs window never
/// grew. Measured here with 50 µs (issue 8): 4 KiB reads at QD1 went from 34 k to 50 k
/// IOPS, at the cost of a busy device's CPU; deep queues and idle devices do not poll.
/// A device model may refuse polling (`VirtioDeviceModel.pollsQueues`; virtio-net does).
public struct PollingWindow {
    public static let defaultMaximum: UInt64 = 50_000
    /// At most a second, whatever the variable says (a deadline must not overflow).
    public static let configuredMaximum: UInt64 =
        min(getenv("VMD_POLL_WINDOW_NS").flatMap { UInt64(String(cString: $0)) } ?? defaultMaximum, 1_000_000_000)

    public let maximum: UInt64
    /// The window for the next busy round, in nanoseconds; 0 polls not at all.
    public private(set) var current: UInt64 = 0
    /// When the device last went to sleep after a round (for the next kick to judge).
    private var sleptAt: UInt64?

    public init(maximum: UInt64 = PollingWindow.configuredMaximum) {
        self.maximum = maximum
    }

    /// A kick woke the device at `now`: grow if it came within the largest window of going
    /// to sleep, shrink if it did not.
    public mutating func kicked(at now: UInt64) {
        guard maximum > 0, let sleptAt else { return }
        self.sleptAt = nil
        if now &- sleptAt <= maximum {
            current = min(maximum, max(current * 2, maximum / 8))
        } else {
            current /= 2
            if current <= maximum / 16 { current = 0 }
        }
    }

    /// The device found nothing more (within the window, if any) and sleeps from `now`.
    public mutating func sleeping(at now: UInt64) {
        if maximum > 0 { sleptAt = now }
    }

    /// Watches `hasMore` for up to the current window; true as soon as it is.
    public func poll(_ hasMore: () throws -> Bool) rethrows -> Bool {
        guard current > 0 else { return false }
        let deadline = Self.now() + current
        repeat {
            if try hasMore() { return true }
        } while Self.now() < deadline
        return false
    }

    public static func now() -> UInt64 { MonotonicClock.nanoseconds() }
}

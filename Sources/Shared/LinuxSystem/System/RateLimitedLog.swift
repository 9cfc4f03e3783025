import Glibc
import Logging
import Synchronization

/// Logs guest-caused events at a limited rate (design §7: guest faults fail the
/// request and are logged, but a guest must not be able to flood the host log).
public final class RateLimitedLog: Sendable {
    private let logger: Logger
    private let perSecond: Int
    private struct Window { var start: Int = 0; var emitted = 0; var suppressed = 0 }
    private let window = Mutex(Window())

    public init(logger: Logger, perSecond: Int = 10) {
        self.logger = logger
        self.perSecond = perSecond
    }

    public func note(_ message: @autoclosure () -> String) {
        let now = Int(time(nil))
        let (emit, dropped): (Bool, Int) = window.withLock { state in
            var dropped = 0
            if state.start != now {
                dropped = state.suppressed
                state = Window(start: now)
            }
            if state.emitted < perSecond {
                state.emitted += 1
                return (true, dropped)
            }
            state.suppressed += 1
            return (false, dropped)
        }
        if dropped > 0 { logger.warning("\(dropped) similar guest events suppressed") }
        if emit { logger.warning("\(message())") }
    }
}

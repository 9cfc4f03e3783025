import Logging
import Synchronization

/// Notes guest accesses that hit no device. Probing for hardware that is not there is
/// normal (Linux reads COM2–COM4's scratch registers at boot), so each address is noted
/// once, at info level, and after `distinctLimit` addresses one last line says that
/// further ones go unlogged: a guest cannot fill the log by sweeping the port space.
final class UnassignedAccessLog: Sendable {
    static let distinctLimit = 16
    private let sink: @Sendable (String) -> Void
    private struct Seen { var addresses: Set<String> = []; var full = false }
    private let seen = Mutex(Seen())

    init(sink: @escaping @Sendable (String) -> Void) {
        self.sink = sink
    }

    convenience init(logger: Logger) {
        self.init { logger.info("\($0)") }
    }

    func note(bus: String, address: UInt64, access: String) {
        let key = "\(bus) 0x\(String(address, radix: 16))"
        let line: String? = seen.withLock { seen in
            guard !seen.full, !seen.addresses.contains(key) else { return nil }
            guard seen.addresses.count < UnassignedAccessLog.distinctLimit else {
                seen.full = true
                return "guest accesses at \(UnassignedAccessLog.distinctLimit) addresses hit no device; further ones are not logged"
            }
            seen.addresses.insert(key)
            return "\(bus) \(access) at 0x\(String(address, radix: 16)) hits no device (reads as all ones; not logged again)"
        }
        if let line { sink(line) }
    }
}

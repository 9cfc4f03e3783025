import CEvent
import Glibc

/// The libevent loop every swift-vmd process runs (design §1). Handlers run on
/// the loop's thread; other threads wake it through an eventfd they signal.
public final class EventLoop {
    fileprivate let base: OpaquePointer

    public init() throws {
        guard let base = event_base_new() else { throw SystemError("event_base_new", errno: ENOMEM) }
        self.base = base
    }

    deinit {
        event_base_free(base)
    }

    /// Calls `handler` each time `fd` becomes readable, until the watch is cancelled.
    public func watchReadable(_ fd: Int32, _ handler: @escaping () -> Void) throws -> EventWatch {
        try EventWatch(loop: self, fd: fd, what: Int16(EV_READ | EV_PERSIST), timeout: nil, handler: handler)
    }

    /// Calls `handler` each time `fd` can take more writing, until the watch is cancelled.
    public func watchWritable(_ fd: Int32, _ handler: @escaping () -> Void) throws -> EventWatch {
        try EventWatch(loop: self, fd: fd, what: Int16(EV_WRITE | EV_PERSIST), timeout: nil, handler: handler)
    }

    /// Calls `handler` once after `seconds`.
    public func after(seconds: Double, _ handler: @escaping () -> Void) throws -> EventWatch {
        try EventWatch(loop: self, fd: -1, what: 0, timeout: seconds, handler: handler)
    }

    /// Calls `handler` on the loop's thread whenever `signal` is delivered to the process.
    public func onSignal(_ signal: Int32, _ handler: @escaping () -> Void) throws -> EventWatch {
        try EventWatch(loop: self, fd: signal, what: Int16(EV_SIGNAL | EV_PERSIST), timeout: nil, handler: handler)
    }

    /// Runs until `stop()` or until nothing is watched any more.
    public func run() throws {
        guard event_base_dispatch(base) >= 0 else { throw SystemError("event_base_dispatch", errno: EINVAL) }
    }

    public func stop() {
        event_base_loopbreak(base)
    }
}

/// One registration with an `EventLoop`; cancelled when cancelled or released.
public final class EventWatch {
    private var event: OpaquePointer?
    private let handler: () -> Void

    fileprivate init(loop: EventLoop, fd: Int32, what: Int16, timeout: Double?, handler: @escaping () -> Void) throws {
        self.handler = handler
        // SAFETY: unretained: the event is freed in `cancel()`, which `deinit` calls, so
        // libevent never calls back with a context whose watch is gone.
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard let event = event_new(loop.base, fd, what, { _, _, context in
            Unmanaged<EventWatch>.fromOpaque(context!).takeUnretainedValue().fire()
        }, context) else {
            throw SystemError("event_new", errno: ENOMEM)
        }
        self.event = event
        var interval = timeval()
        if let timeout {
            interval.tv_sec = Int(timeout)
            interval.tv_usec = Int((timeout - Double(Int(timeout))) * 1_000_000)
        }
        let added = timeout == nil ? event_add(event, nil) : event_add(event, &interval)
        guard added == 0 else { throw SystemError("event_add", errno: EINVAL) }
    }

    private func fire() {
        // Keep self alive during the handler even if it cancels this watch.
        withExtendedLifetime(self) { handler() }
    }

    /// Takes the watch out of the loop until `resume()`; what arrives meanwhile waits
    /// (a readable descriptor stays readable, an eventfd keeps its count).
    public func suspend() {
        if let event { event_del(event) }
    }

    public func resume() {
        if let event { event_add(event, nil) }
    }

    public func cancel() {
        if let event {
            event_free(event)  // also removes it from the loop
            self.event = nil
        }
    }

    deinit {
        cancel()
    }
}

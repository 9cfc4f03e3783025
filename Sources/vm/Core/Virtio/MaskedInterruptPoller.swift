import Glibc
import LinuxSystem
import Synchronization

/// Watches the call eventfds of queues whose MSI-X vector is masked (design §4):
/// while masked, KVM's irqfd is unbound and this thread notices the device's
/// signal so the transport can set the pending bit. One thread per VM, off the
/// event loop so that vCPU threads can add and remove fds without waiting on it.
final class MaskedInterruptPoller: @unchecked Sendable {
    private let wakeup: FileDescriptor
    private let watched = Mutex<[Int32: @Sendable () -> Void]>([:])
    private var thread: pthread_t?

    init() throws {
        wakeup = try FileDescriptor.eventFD()
    }

    func start() throws {
        // SAFETY: retained once for the thread, which takes that reference back (takeRetainedValue);
        // if the thread is not created the reference is released here.
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { context in
            Unmanaged<MaskedInterruptPoller>.fromOpaque(context!).takeRetainedValue().loop()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<MaskedInterruptPoller>.fromOpaque(context).release()
            throw SystemError("pthread_create", errno: result)
        }
        pthread_detach(handle)
        thread = handle
    }

    /// Calls `handler` (on the poller thread) whenever `fd` becomes readable, until `unwatch`.
    func watch(_ fd: Int32, _ handler: @escaping @Sendable () -> Void) {
        watched.withLock { $0[fd] = handler }
        try? wakeup.signalEvent()
    }

    func unwatch(_ fd: Int32) {
        watched.withLock { $0[fd] = nil }
        try? wakeup.signalEvent()
    }

    private func loop() {
        while true {
            let current = watched.withLock { $0 }
            var fds = [pollfd(fd: wakeup.rawValue, events: Int16(POLLIN), revents: 0)]
            fds += current.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 { continue }  // EINTR
            if fds[0].revents != 0 { _ = wakeup.drainEvent() }
            for entry in fds.dropFirst() where entry.revents != 0 {
                // Still watched? It may have been rebound to KVM meanwhile; the handler decides.
                if let handler = watched.withLock({ $0[entry.fd] }) { handler() }
            }
        }
    }
}

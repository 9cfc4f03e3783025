import Glibc

/// Parks vCPU threads while the VM is paused. `pause()` returns once every
/// vCPU thread is parked (each one was kicked out of KVM_RUN first), so the
/// guest really does not run while vmctl says it is paused.
final class PauseGate: @unchecked Sendable {
    // SAFETY: pthread objects must not move, so they live in their own allocations,
    // initialized in init and destroyed and freed in deinit, when no thread waits on them.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var paused = false
    private var parked = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Called by a vCPU thread between runs: blocks while paused.
    func waitWhilePaused() {
        pthread_mutex_lock(mutex)
        while paused {
            parked += 1
            pthread_cond_broadcast(condition)
            pthread_cond_wait(condition, mutex)
            parked -= 1
        }
        pthread_mutex_unlock(mutex)
    }

    /// Closes the gate, runs `kick` (which makes every vCPU leave KVM_RUN), and
    /// waits until `threads` vCPUs are parked.
    func pause(threads: Int, kick: () -> Void) {
        pthread_mutex_lock(mutex)
        paused = true
        pthread_mutex_unlock(mutex)
        kick()
        pthread_mutex_lock(mutex)
        while parked < threads { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
    }

    func resume() {
        pthread_mutex_lock(mutex)
        paused = false
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Opens the gate for good (the VM is stopping): parked threads go on to see their stop flag.
    func release() { resume() }
}

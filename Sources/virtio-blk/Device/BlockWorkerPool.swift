import Glibc
import LinuxSystem

/// The threads that execute a disk's requests, so that several are in flight at once
/// (the guest's queue depth reaches the host). Jobs run in the order submitted, each on
/// whichever worker is free, and are told which worker runs them (each worker has its
/// own request model: a model's scratch state is not shared). The event loop submits,
/// and collects what finished through `BlockVirtioDevice`'s completion eventfd.
final class BlockWorkerPool: @unchecked Sendable {
    typealias Job = (_ worker: Int) -> Void

    // SAFETY: pthread objects must not move, so they live in their own allocations,
    // initialized in init and destroyed and freed in deinit, when no thread uses them
    // (the workers hold a reference to the pool as long as they run).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let idle = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    private var next = 0
    private var running = 0
    let workers: Int

    init(workers: Int) {
        self.workers = workers
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(idle, nil)
    }

    deinit {
        pthread_cond_destroy(idle)
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        wake.deallocate()
        idle.deallocate()
    }

    /// Starts the threads; after `Sandbox.enter`, so that they run under the same sandbox.
    func start() throws {
        for worker in 0..<workers {
            // SAFETY: the context is retained once for the thread, which takes that reference
            // back; if the thread is not created the reference is released here.
            let context = Unmanaged.passRetained(WorkerContext(pool: self, worker: worker)).toOpaque()
            var handle = pthread_t()
            let result = pthread_create(&handle, nil, { context in
                let work = Unmanaged<WorkerContext>.fromOpaque(context!).takeRetainedValue()
                work.pool.serve(worker: work.worker)
                return nil
            }, context)
            guard result == 0 else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                throw SystemError("pthread_create", errno: result)
            }
            pthread_detach(handle)
        }
    }

    func submit(_ job: @escaping Job) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(wake)
        pthread_mutex_unlock(mutex)
    }

    /// Returns once every submitted job has finished (pause and reset wait here, so no
    /// request is in flight while the VM is paused or its queues are gone).
    func waitIdle() {
        pthread_mutex_lock(mutex)
        while next < jobs.count || running > 0 { pthread_cond_wait(idle, mutex) }
        pthread_mutex_unlock(mutex)
    }

    private func serve(worker: Int) {
        pthread_mutex_lock(mutex)
        while true {
            while next >= jobs.count { pthread_cond_wait(wake, mutex) }
            let job = jobs[next]
            next += 1
            if next == jobs.count { jobs.removeAll(keepingCapacity: true); next = 0 }
            running += 1
            pthread_mutex_unlock(mutex)
            job(worker)
            pthread_mutex_lock(mutex)
            running -= 1
            if running == 0 && next >= jobs.count { pthread_cond_broadcast(idle) }
        }
    }

    private final class WorkerContext {
        let pool: BlockWorkerPool
        let worker: Int
        init(pool: BlockWorkerPool, worker: Int) { (self.pool, self.worker) = (pool, worker) }
    }
}

import Glibc
import Synchronization
import XCTest
@testable import BlockDevice

/// The request workers: every job runs once, on a worker of the pool, several at a
/// time, and `waitIdle` returns only when all of them are done (pause and reset rely on it).
final class BlockWorkerPoolTests: XCTestCase {
    func testEveryJobRunsOnceAndWaitIdleWaitsForAll() throws {
        let pool = BlockWorkerPool(workers: 4)
        try pool.start()
        let state = Mutex((done: [Int](), running: 0, mostAtOnce: 0, workers: Set<Int>()))
        for job in 0..<64 {
            pool.submit { worker in
                state.withLock { $0.running += 1; $0.mostAtOnce = max($0.mostAtOnce, $0.running); $0.workers.insert(worker) }
                usleep(2_000)  // a request's worth of waiting, so that jobs overlap
                state.withLock { $0.running -= 1; $0.done.append(job) }
            }
        }
        pool.waitIdle()
        let result = state.withLock { $0 }
        XCTAssertEqual(result.done.sorted(), Array(0..<64), "each job ran once, all before waitIdle returned")
        XCTAssertEqual(result.running, 0)
        XCTAssertGreaterThan(result.mostAtOnce, 1, "jobs were in flight together")
        XCTAssertTrue(result.workers.isSubset(of: Set(0..<4)), "\(result.workers)")
        pool.waitIdle()  // idle already: returns at once
    }
}

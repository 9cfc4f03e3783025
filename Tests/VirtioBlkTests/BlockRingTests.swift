import CLinux
import CURing
import Glibc
import XCTest
@testable import BlockDevice
@testable import GuestRAM
@testable import LinuxSystem
@testable import MemorySlots
@testable import VirtioCore

/// The io_uring path: the ring's lock-down, and requests served through it.
final class BlockRingTests: XCTestCase {
    private var image: FileDescriptor!
    private var memory: GuestMemory!
    private var model: BlockDeviceModel!
    private var backend: RawFileBackend!

    override func setUpWithError() throws {
        image = try makeTemporaryImage(size: 1 << 20, fill: 0xAA)
        memory = try makeMemory()
        backend = try RawFileBackend(file: image, readOnly: false)
        model = try BlockDeviceModel(backend: backend, queueCount: 2)
    }

    private func makeServer() throws -> BlockRingServer {
        try BlockRingServer(model: model, backend: backend, capacity: 8)
    }

    /// Submits what `ring` prepared and returns each completion's (tag, result).
    private func complete(_ ring: RestrictedIOUring, expecting count: Int) throws -> [UInt64: Int32] {
        try ring.submit()
        var results: [UInt64: Int32] = [:]
        while results.count < count {
            try ring.waitForCompletion()
            ring.drainCompletions { results[$0] = $1 }
        }
        return results
    }

    // MARK: The restrictions

    func testReadWriteAndFsyncOfTheRegisteredFileWork() throws {
        let ring = try RestrictedIOUring(file: image, entries: 4)
        let data = pattern(4096, seed: 2)
        var back = [UInt8](repeating: 0, count: 4096)
        let results = try data.withUnsafeBytes { source in
            try back.withUnsafeMutableBytes { target in
                var write = iovec(iov_base: UnsafeMutableRawPointer(mutating: source.baseAddress!), iov_len: 4096)
                XCTAssertTrue(ring.prepareWrite(&write, count: 1, offset: 8192, tag: 1))
                XCTAssertTrue(ring.prepareDataSync(tag: 2))
                _ = try complete(ring, expecting: 2)
                var read = iovec(iov_base: target.baseAddress!, iov_len: 4096)
                XCTAssertTrue(ring.prepareRead(&read, count: 1, offset: 8192, tag: 3))
                return try complete(ring, expecting: 1)
            }
        }
        XCTAssertEqual(results[3], 4096)
        XCTAssertEqual(back, data)
        XCTAssertEqual(try image.pread(count: 4096, offset: 8192), data)
    }

    /// Its operations do not pass seccomp, so the ring itself refuses all but readv,
    /// writev and fsync.
    func testAnOperationOutsideTheAllowedThreeIsRefused() throws {
        let ring = try RestrictedIOUring(file: image, entries: 4)
        let path = Array("/etc/passwd".utf8CString)
        let results = try path.withUnsafeBufferPointer { name in
            XCTAssertTrue(ring.prepare(tag: 9) { io_uring_prep_openat($0, AT_FDCWD, name.baseAddress!, O_RDONLY, 0) })
            return try complete(ring, expecting: 1)
        }
        XCTAssertEqual(results[9], -EACCES, "openat through the ring")
    }

    /// No SQE flag passes: not a link (which would chain an operation to a refused one's
    /// fate), not forced async, not a fixed file.
    func testAnOperationWithAFlagIsRefused() throws {
        let ring = try RestrictedIOUring(file: image, entries: 4)
        var buffer = [UInt8](repeating: 0, count: 512)
        let results = try buffer.withUnsafeMutableBytes { target in
            var vector = iovec(iov_base: target.baseAddress!, iov_len: 512)
            XCTAssertTrue(ring.prepare(tag: 4) {
                io_uring_prep_readv($0, self.image.rawValue, &vector, 1, 0)
                $0.pointee.flags |= UInt8(1 << IOSQE_ASYNC_BIT)
            })
            return try complete(ring, expecting: 1)
        }
        XCTAssertEqual(results[4], -EACCES, "a readv with IOSQE_ASYNC")
        XCTAssertEqual(buffer, [UInt8](repeating: 0, count: 512))
    }

    func testNoRegisterOperationIsAllowedOnceEnabled() throws {
        let ring = try RestrictedIOUring(file: image, entries: 4)
        let other = try makeTemporaryImage(size: 4096)
        var files = [other.rawValue]
        let result = io_uring_register(UInt32(ring.descriptor), UInt32(IORING_REGISTER_FILES), &files, 1)
        XCTAssertEqual(result, -EACCES, "registering a file")
        let probe = io_uring_register(UInt32(ring.descriptor), UInt32(IORING_REGISTER_PERSONALITY), nil, 0)
        XCTAssertEqual(probe, -EACCES, "registering a personality (credentials)")
    }

    // MARK: Requests through the server

    /// Under `cache none` both go to the ring, each completing on the queue it came from.
    func testAWriteAndAReadGoThroughTheRingOnTheirQueues() throws {
        // The same file again, O_DIRECT (`cache none`).
        let direct = try RawFileBackend(file: try FileDescriptor.open("/proc/self/fd/\(image.rawValue)", flags: O_RDWR | VMD_O_DIRECT),
                                        readOnly: false)
        XCTAssertTrue(direct.direct)
        model = try BlockDeviceModel(backend: direct, queueCount: 2)
        let server = try BlockRingServer(model: model, backend: direct, capacity: 8)
        let data = pattern(2048, seed: 4)
        var write = ChainBuilder(memory: memory)
        try write.readable(requestHeader(type: 1, sector: 4))
        write.next = 0x4000  // whole sectors, aligned: what O_DIRECT takes
        try write.readable(Array(data[0..<1024]))
        write.next = 0x5000
        try write.readable(Array(data[1024...]))
        try write.writable(1)
        XCTAssertNil(server.start(write.chain, queue: 1, memory: memory), "in flight")
        XCTAssertFalse(server.idle)
        let written = try server.submit(memory: memory) + server.waitIdle(memory: memory)
        XCTAssertEqual(written.map(\.queue), [1])
        XCTAssertEqual(written.map(\.head), [7])
        XCTAssertEqual(written.map(\.length), [1])
        XCTAssertEqual(try write.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(try image.pread(count: 2048, offset: 4 * 512), data)

        let read = try ChainBuilder.read(memory, sector: 4, count: 2048, at: 0x8_0000, alignedData: true)
        XCTAssertNil(server.start(read.chain, queue: 0, memory: memory))
        let done = try server.submit(memory: memory) + server.waitIdle(memory: memory)
        XCTAssertEqual(done.map(\.queue), [0])
        XCTAssertEqual(done.map(\.length), [2049])
        XCTAssertEqual(Array(try read.writableBytes()[0..<2048]), data)
        XCTAssertEqual(model.counters.reads, 1)
        XCTAssertEqual(model.counters.writes, 1)
        XCTAssertEqual(model.counters.bytesRead, 2048)
        XCTAssertTrue(server.idle)
    }

    /// The server over the same file opened O_DIRECT (`cache none`).
    private func makeDirectServer() throws -> BlockRingServer {
        let direct = try RawFileBackend(file: try FileDescriptor.open("/proc/self/fd/\(image.rawValue)", flags: O_RDWR | VMD_O_DIRECT),
                                        readOnly: false)
        model = try BlockDeviceModel(backend: direct, queueCount: 2)
        return try BlockRingServer(model: model, backend: direct, capacity: 8)
    }

    /// Reads of one pass that are adjacent in the file go to the kernel as one readv (a
    /// sequential reader's requests), each still completing on its own queue with its own
    /// bytes; one that is not adjacent goes on its own.
    func testAdjacentReadsOfOnePassGoAsOneSubmission() throws {
        let data = pattern(3 * 4096, seed: 9)
        try image.pwriteAll(data, at: 8 * 512)
        let server = try makeDirectServer()
        var reads: [ChainBuilder] = []
        // Sectors 16 and 8 (adjacent, out of order), and 40 (apart).
        for (index, sector) in [UInt64(16), 8, 40].enumerated() {
            var read = try ChainBuilder.read(memory, sector: sector, count: 4096, at: 0x4_0000 + UInt64(index) * 0x4000,
                                             alignedData: true)
            read.head = UInt16(index)
            XCTAssertNil(server.start(read.chain, queue: index % 2, memory: memory))
            reads.append(read)
        }
        let done = try server.submit(memory: memory) + server.waitIdle(memory: memory)
        XCTAssertEqual(server.submissionCount, 2, "8+16 merged, 40 alone")
        XCTAssertEqual(Set(done.map { [Int($0.queue), Int($0.head), Int($0.length)] }),
                       [[0, 0, 4097], [1, 1, 4097], [0, 2, 4097]])
        XCTAssertEqual(Array(try reads[0].writableBytes()[0..<4096]), Array(data[4096..<8192]))
        XCTAssertEqual(Array(try reads[1].writableBytes()[0..<4096]), Array(data[0..<4096]))
        XCTAssertEqual(try reads[2].status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(model.counters.reads, 3)
        XCTAssertTrue(server.idle)
    }

    /// Each tag keeps its iovec array for the next submission: a read of many buffers (more
    /// than the array a tag keeps), then reads of fewer on the same tags, all read right.
    func testReadsOfManyBuffersThenFewReuseTheTagsArrays() throws {
        let data = pattern(100 * 512, seed: 11)
        try image.pwriteAll(data, at: 0)
        let server = try makeServer()
        for (round, buffers) in [1, 100, 3, 70, 2].enumerated() {
            var read = ChainBuilder(memory: memory)
            read.next = 0x2_0000
            try read.readable(requestHeader(type: 0, sector: 0))
            for _ in 0..<buffers { try read.writable(512) }
            try read.writable(1)
            read.head = UInt16(round)
            XCTAssertNil(server.start(read.chain, queue: 0, memory: memory), "round \(round)")
            let done = try server.submit(memory: memory) + server.waitIdle(memory: memory)
            XCTAssertEqual(done.map(\.head), [UInt16(round)], "round \(round)")
            XCTAssertEqual(done.first?.length, UInt32(buffers * 512 + 1), "round \(round)")
            let bytes = try read.writableBytes()
            XCTAssertEqual(Array(bytes[0..<(buffers * 512)]), Array(data[0..<(buffers * 512)]), "round \(round)")
            XCTAssertEqual(try read.status(), BlockStatus.ok.rawValue, "round \(round)")
        }
        XCTAssertEqual(model.counters.reads, 5)
        XCTAssertTrue(server.idle)
    }

    /// Adjacent writes of one pass merge too, and land where each asked.
    func testAdjacentWritesOfOnePassMergeAndLand() throws {
        let server = try makeDirectServer()
        let data = pattern(8192, seed: 10)
        for (index, half) in [data[0..<4096], data[4096...]].enumerated() {
            var write = ChainBuilder(memory: memory)
            let base = 0x6_0000 + UInt64(index) * 0x4000
            write.next = base
            try write.readable(requestHeader(type: 1, sector: 64 + UInt64(index) * 8))
            write.next = base + 0x1000  // whole, aligned sectors: what O_DIRECT takes
            try write.readable(Array(half))
            try write.writable(1)
            write.head = UInt16(index)
            XCTAssertNil(server.start(write.chain, queue: 0, memory: memory))
        }
        let done = try server.submit(memory: memory) + server.waitIdle(memory: memory)
        XCTAssertEqual(server.submissionCount, 1)
        XCTAssertEqual(Set(done.map(\.head)), [0, 1])
        XCTAssertEqual(try image.pread(count: 8192, offset: 64 * 512), data)
        XCTAssertEqual(model.counters.writes, 2)
    }

    /// On the page cache a write is served at once (through the ring it would go to a
    /// kernel worker thread); a read goes to the ring.
    func testOnThePageCacheAWriteIsServedAtOnceAndAReadGoesToTheRing() throws {
        let server = try makeServer()
        let data = pattern(1024, seed: 5)
        var write = ChainBuilder(memory: memory)
        try write.readable(requestHeader(type: 1, sector: 2))
        try write.readable(data)
        try write.writable(1)
        XCTAssertEqual(server.start(write.chain, queue: 0, memory: memory), 1)
        XCTAssertEqual(try image.pread(count: 1024, offset: 2 * 512), data)

        let read = try ChainBuilder.read(memory, sector: 2, count: 1024, at: 0x8_0000)
        XCTAssertNil(server.start(read.chain, queue: 1, memory: memory))
        let done = try server.submit(memory: memory) + server.waitIdle(memory: memory)
        XCTAssertEqual(done.map(\.queue), [1])
        XCTAssertEqual(Array(try read.writableBytes()[0..<1024]), data)
    }

    func testAFlushGoesThroughTheRing() throws {
        let server = try makeServer()
        let flush = try ChainBuilder.flush(memory, at: 0x1000)
        XCTAssertNil(server.start(flush.chain, queue: 0, memory: memory))
        XCTAssertEqual(try (server.submit(memory: memory) + server.waitIdle(memory: memory)).map(\.length), [1])
        XCTAssertEqual(try flush.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(model.counters.flushes, 1)
    }

    /// GET_ID, and a request the parser refuses, are answered at once, as `process` does.
    func testOtherRequestsAndRefusalsAreServedAtOnce() throws {
        let server = try makeServer()
        var getID = ChainBuilder(memory: memory)
        try getID.readable(requestHeader(type: 8))
        try getID.writable(20)
        try getID.writable(1)
        XCTAssertEqual(server.start(getID.chain, queue: 0, memory: memory), 21)
        XCTAssertEqual(try getID.status(), BlockStatus.ok.rawValue)

        let beyond = try ChainBuilder.read(memory, sector: 2048, count: 512, at: 0x8_0000)
        XCTAssertEqual(server.start(beyond.chain, queue: 0, memory: memory), 1)
        XCTAssertEqual(try beyond.status(), BlockStatus.ioError.rawValue)
        XCTAssertTrue(server.idle)
    }

    /// More requests than the server has room for (a driver that lies about its queue
    /// size cannot get there, but a full ring must not break it): the next is served at
    /// once, after what is in flight.
    func testARequestBeyondTheRoomIsServedAfterWhatIsInFlight() throws {
        let server = try BlockRingServer(model: model, backend: backend, capacity: 1)
        let read = try ChainBuilder.read(memory, sector: 0, count: 512)
        XCTAssertNil(server.start(read.chain, queue: 1, memory: memory), "the one slot")
        let flush = try ChainBuilder.flush(memory, at: 0x8_0000)
        XCTAssertEqual(server.start(flush.chain, queue: 0, memory: memory), 1, "no slot left: served at once")
        XCTAssertEqual(try flush.status(), BlockStatus.ok.rawValue)
        XCTAssertTrue(server.idle, "the read was waited for first")
        XCTAssertEqual(try server.submit(memory: memory).map(\.queue), [1], "and its completion comes with the next batch")
        XCTAssertEqual(Array(try read.writableBytes()[0..<512]), [UInt8](repeating: 0xAA, count: 512))
    }

    // MARK: Completions

    /// A read the model hands to the ring, not submitted: the test plays the kernel.
    private func readForTheRing(sector: UInt64, count: Int) throws -> (ChainBuilder, BlockRingRequest) {
        let read = try ChainBuilder.read(memory, sector: sector, count: count)
        guard case .submit(let request) = model.start(read.chain, memory: memory, backend: backend, maximumPieces: 1) else {
            throw NotForTheRing()  // fails the test: a read on a raw disk goes to the ring
        }
        return (read, request)
    }

    private struct NotForTheRing: Error {}

    /// A short transfer (which regular files only give at the end of the file) is finished
    /// by the backend from where the ring stopped.
    func testAShortReadIsFinishedByTheBackend() throws {
        let data = pattern(1024, seed: 6)
        try image.pwriteAll(data, at: 512)
        var (read, request) = try readForTheRing(sector: 1, count: 1024)
        request.pieces[0].result = 300
        XCTAssertEqual(model.finish(&request, backend: backend, memory: memory), 1025)
        let bytes = try read.writableBytes()
        XCTAssertEqual(Array(bytes[0..<300]), [UInt8](repeating: ChainBuilder.sentinel, count: 300),
                       "what the ring (here: nobody) moved is not read again")
        XCTAssertEqual(Array(bytes[300..<1024]), Array(data[300...]))
        XCTAssertEqual(bytes[1024], BlockStatus.ok.rawValue)
    }

    func testAnErrorFromTheRingIsAnIOError() throws {
        var (read, request) = try readForTheRing(sector: 0, count: 512)
        request.pieces[0].result = -EIO
        XCTAssertEqual(model.finish(&request, backend: backend, memory: memory), 1, "no data on an error")
        XCTAssertEqual(try read.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(model.counters.ioErrors, 1)
        XCTAssertEqual(model.counters.reads, 0)
    }

    /// Under `cache none` an unaligned guest buffer cannot go to the ring: `process` bounces it.
    func testUnderDirectIOAnUnalignedBufferIsServedAtOnce() throws {
        let direct = try RawFileBackend(file: try FileDescriptor.open("/proc/self/fd/\(image.rawValue)", flags: O_RDWR | VMD_O_DIRECT),
                                        readOnly: false)
        model = try BlockDeviceModel(backend: direct)
        let server = try BlockRingServer(model: model, backend: direct, capacity: 8)
        let read = try ChainBuilder.read(memory, sector: 0, count: 512, at: 0x1003)
        XCTAssertEqual(server.start(read.chain, queue: 0, memory: memory), 513, "served at once, bounced")
        XCTAssertEqual(Array(try read.writableBytes()[0..<512]), [UInt8](repeating: 0xAA, count: 512))
        XCTAssertTrue(server.idle)
    }
}

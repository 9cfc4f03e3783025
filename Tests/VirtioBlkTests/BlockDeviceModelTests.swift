import Glibc
import CLinux
import XCTest
@testable import BlockDevice
@testable import GuestRAM
@testable import LinuxSystem
@testable import MemorySlots
@testable import VirtioCore

/// The device model over a raw image in a temporary file: parse, execute, status, used length.
final class BlockDeviceModelTests: XCTestCase {
    private static let imageSize = 1 << 20   // 2048 sectors

    private var image: FileDescriptor!
    private var memory: GuestMemory!
    private var device: BlockDeviceModel!

    override func setUpWithError() throws {
        image = try makeTemporaryImage(size: Self.imageSize, fill: 0xAA)
        memory = try makeMemory()
        device = try BlockDeviceModel(backend: RawFileBackend(file: image, readOnly: false), serial: "vmd-disk-0")
    }

    private func imageBytes(at offset: Int, count: Int) throws -> [UInt8] {
        try image.pread(count: count, offset: Int64(offset))
    }

    // MARK: Read and write

    func testWriteThenReadRoundTripOverSplitBuffers() throws {
        let data = pattern(1024, seed: 3)
        var write = ChainBuilder(memory: memory)
        try write.readable(requestHeader(type: 1, sector: 10))
        try write.readable(Array(data[0..<300]))
        try write.readable(Array(data[300..<800]))
        try write.readable(Array(data[800...]))
        try write.writable(1)
        XCTAssertEqual(device.process(write.chain, memory: memory), 1)
        XCTAssertEqual(try write.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(try imageBytes(at: 10 * 512, count: 1024), data)
        XCTAssertEqual(try imageBytes(at: 10 * 512 - 1, count: 1), [0xAA], "nothing before the sector")
        XCTAssertEqual(try imageBytes(at: 12 * 512, count: 1), [0xAA], "nothing after the data")

        var read = ChainBuilder(memory: memory)
        read.next = 0x8_0000
        try read.readable(requestHeader(type: 0, sector: 10))
        try read.writable(700)
        try read.writable(324)
        try read.writable(1)
        XCTAssertEqual(device.process(read.chain, memory: memory), 1025)
        XCTAssertEqual(try read.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(Array(try read.writableBytes()[0..<1024]), data)
        let after = GuestAddress(read.writable[0].address.value + 700)
        XCTAssertEqual(try memory.read(UInt8.self, at: after), ChainBuilder.sentinel, "no byte past a buffer")
        XCTAssertEqual(device.counters.reads, 1)
        XCTAssertEqual(device.counters.writes, 1)
        XCTAssertEqual(device.counters.bytesRead, 1024)
        XCTAssertEqual(device.counters.bytesWritten, 1024)
    }

    func testHeaderSplitAcrossTwoBuffers() throws {
        let header = requestHeader(type: 1, sector: 3)
        var write = ChainBuilder(memory: memory)
        try write.readable(Array(header[0..<9]))
        try write.readable(Array(header[9...]) + pattern(512, seed: 9))
        try write.writable(1)
        XCTAssertEqual(device.process(write.chain, memory: memory), 1)
        XCTAssertEqual(try write.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(try imageBytes(at: 3 * 512, count: 512), pattern(512, seed: 9))
    }

    func testStatusByteIsTheLastByteOfADataBuffer() throws {
        try image.pwriteAll(pattern(1024, seed: 5), at: 0)
        var read = ChainBuilder(memory: memory)
        try read.readable(requestHeader(type: 0, sector: 0))
        try read.writable(512)
        try read.writable(513)
        XCTAssertEqual(device.process(read.chain, memory: memory), 1025)
        let bytes = try read.writableBytes()
        XCTAssertEqual(Array(bytes[0..<1024]), pattern(1024, seed: 5))
        XCTAssertEqual(bytes[1024], BlockStatus.ok.rawValue)
    }

    func testManyDataBuffersBeyondIOVMax() throws {
        // More iovecs than one preadv/pwritev takes (IOV_MAX = 1024): the backend must batch.
        let count = Int(UIO_MAXIOV) + 100
        let data = pattern(count * 512, seed: 11)
        var write = ChainBuilder(memory: try makeMemory(size: 4 << 20))
        let memory = write.memory
        try write.readable(requestHeader(type: 1, sector: 0))
        for index in 0..<count { try write.readable(Array(data[(index * 512)..<((index + 1) * 512)])) }
        try write.writable(1)
        let device = try BlockDeviceModel(
            backend: RawFileBackend(file: try makeTemporaryImage(size: 1 << 20), readOnly: false))
        XCTAssertEqual(device.process(write.chain, memory: memory), 1)
        XCTAssertEqual(try write.status(), BlockStatus.ok.rawValue)

        var read = ChainBuilder(memory: memory)
        read.next = write.next
        try read.readable(requestHeader(type: 0, sector: 0))
        for _ in 0..<count { try read.writable(512) }
        try read.writable(1)
        XCTAssertEqual(device.process(read.chain, memory: memory), UInt32(count * 512 + 1))
        XCTAssertEqual(Array(try read.writableBytes()[0..<(count * 512)]), data)
    }

    // MARK: Flush, GET_ID

    func testFlush() throws {
        var flush = ChainBuilder(memory: memory)
        try flush.readable(requestHeader(type: 4))
        try flush.writable(1)
        XCTAssertEqual(device.process(flush.chain, memory: memory), 1)
        XCTAssertEqual(try flush.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(device.counters.flushes, 1)
    }

    func testBackendFailureIsAnIOError() throws {
        // A host error (here fdatasync's EIO) fails the request with IOERR; it is not a crash.
        final class FailingBackend: BlockBackend {
            let capacityBytes: UInt64 = 1 << 20
            let readOnly = false
            func read(into vectors: inout [iovec], at offset: UInt64) throws { throw SystemError("preadv", errno: EIO) }
            func write(from vectors: inout [iovec], at offset: UInt64) throws { throw SystemError("pwritev", errno: EIO) }
            func flush() throws { throw SystemError("fdatasync", errno: EIO) }
            func discard(offset: UInt64, length: UInt64) throws {}
            func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) throws {}
        }
        let device = try BlockDeviceModel(backend: FailingBackend())
        var flush = ChainBuilder(memory: memory)
        try flush.readable(requestHeader(type: 4))
        try flush.writable(1)
        var failures: [String] = []
        device.onFailure = { failures.append($0) }
        XCTAssertEqual(device.process(flush.chain, memory: memory), 1)
        XCTAssertEqual(try flush.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(device.counters.ioErrors, 1)
        XCTAssertEqual(device.counters.flushes, 0)
        XCTAssertEqual(failures.count, 1)

        var read = ChainBuilder(memory: memory)
        read.next = 0x8_0000
        try read.readable(requestHeader(type: 0))
        try read.writable(513)
        XCTAssertEqual(device.process(read.chain, memory: memory), 1, "a failed read reports only the status")
        XCTAssertEqual(try read.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(device.counters.ioErrors, 2)
    }

    func testGetIDSplitOverTwoBuffers() throws {
        var getID = ChainBuilder(memory: memory)
        try getID.readable(requestHeader(type: 8))
        try getID.writable(7)
        try getID.writable(14)   // 13 more ID bytes, then the status
        XCTAssertEqual(device.process(getID.chain, memory: memory), 21)
        let bytes = try getID.writableBytes()
        XCTAssertEqual(Array(bytes[0..<20]), Array("vmd-disk-0".utf8) + [UInt8](repeating: 0, count: 10))
        XCTAssertEqual(bytes[20], BlockStatus.ok.rawValue)
        XCTAssertEqual(device.counters.getIDs, 1)
    }

    func testSerialIsValidated() throws {
        let backend = try RawFileBackend(file: image, readOnly: false)
        XCTAssertThrowsError(try BlockDeviceModel(backend: backend, serial: String(repeating: "x", count: 21))) {
            XCTAssertEqual($0 as? BlockDeviceConfigurationError, .serialTooLong(21))
        }
        XCTAssertThrowsError(try BlockDeviceModel(backend: backend, serial: "disk\u{7}")) {
            XCTAssertEqual($0 as? BlockDeviceConfigurationError, .serialNotASCII)
        }
        XCTAssertNoThrow(try BlockDeviceModel(backend: backend, serial: String(repeating: "x", count: 20)))
    }

    // MARK: Discard, write-zeroes

    func testDiscardPunchesAHole() throws {
        let blocksBefore = image.allocatedBlocks
        var discard = ChainBuilder(memory: memory)
        // 64 KiB at 64 KiB: sectors 128..<256.
        try discard.readable(requestHeader(type: 11) + segment(sector: 128, count: 128))
        try discard.writable(1)
        XCTAssertEqual(device.process(discard.chain, memory: memory), 1)
        XCTAssertEqual(try discard.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(lseek(image.rawValue, 0x1_0000, VMD_SEEK_HOLE), 0x1_0000, "a hole starts at the range")
        XCTAssertEqual(lseek(image.rawValue, 0x1_0000, VMD_SEEK_DATA), 0x2_0000, "data resumes after it")
        XCTAssertLessThan(image.allocatedBlocks, blocksBefore)
        XCTAssertEqual(try image.fileSize(), Int64(Self.imageSize), "KEEP_SIZE")
        XCTAssertEqual(try imageBytes(at: 0x1_0000 - 1, count: 1), [0xAA])
        XCTAssertEqual(device.counters.discards, 1)
    }

    func testWriteZeroes() throws {
        var zeroes = ChainBuilder(memory: memory)
        // Two segments: 3 sectors at 5 (keeps the blocks), 8 sectors at 64 with unmap (a hole).
        try zeroes.readable(requestHeader(type: 13) + segment(sector: 5, count: 3) + segment(sector: 64, count: 8, flags: 1))
        try zeroes.writable(1)
        XCTAssertEqual(device.process(zeroes.chain, memory: memory), 1)
        XCTAssertEqual(try zeroes.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(try imageBytes(at: 5 * 512, count: 3 * 512), [UInt8](repeating: 0, count: 3 * 512))
        XCTAssertEqual(try imageBytes(at: 5 * 512 - 1, count: 1), [0xAA])
        XCTAssertEqual(try imageBytes(at: 8 * 512, count: 1), [0xAA])
        XCTAssertEqual(try imageBytes(at: 64 * 512, count: 8 * 512), [UInt8](repeating: 0, count: 8 * 512))
        XCTAssertEqual(try imageBytes(at: 72 * 512, count: 1), [0xAA])
        XCTAssertEqual(lseek(image.rawValue, 64 * 512, VMD_SEEK_HOLE), 64 * 512, "unmap punched a hole")
        XCTAssertEqual(device.counters.writeZeroes, 1)
    }

    // MARK: Refusals

    func testUnsupportedType() throws {
        var request = ChainBuilder(memory: memory)
        try request.readable(requestHeader(type: 10))   // GET_LIFETIME: not offered
        try request.writable(1)
        XCTAssertEqual(device.process(request.chain, memory: memory), 1)
        XCTAssertEqual(try request.status(), BlockStatus.unsupported.rawValue)
        XCTAssertEqual(device.counters.unsupported, 1)
    }

    func testReadOnlyDiskRefusesWritesAndAdvertisesRO() throws {
        let device = try BlockDeviceModel(backend: RawFileBackend(file: image, readOnly: true))
        XCTAssertNotEqual(device.deviceFeatures & VirtioBlockFeature.readOnly, 0)
        XCTAssertEqual(device.deviceFeatures & (VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes), 0)
        var write = ChainBuilder(memory: memory)
        try write.readable(requestHeader(type: 1, sector: 0) + pattern(512))
        try write.writable(1)
        var failures: [String] = []
        device.onFailure = { failures.append($0) }
        XCTAssertEqual(device.process(write.chain, memory: memory), 1)
        XCTAssertEqual(try write.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(try imageBytes(at: 0, count: 512), [UInt8](repeating: 0xAA, count: 512), "nothing written")
        XCTAssertEqual(device.counters.malformed, 1)
        XCTAssertEqual(failures.count, 1)
        var none: [iovec] = []
        XCTAssertThrowsError(try RawFileBackend(file: image, readOnly: true).write(from: &none, at: 0)) {
            XCTAssertEqual(($0 as? SystemError)?.errno, EROFS)
        }
    }

    func testRequestBeyondCapacity() throws {
        var read = ChainBuilder(memory: memory)
        try read.readable(requestHeader(type: 0, sector: 2047))
        try read.writable(1024 + 1)
        XCTAssertEqual(device.process(read.chain, memory: memory), 1)
        XCTAssertEqual(try read.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(try read.writableBytes()[0], ChainBuilder.sentinel, "no data written")
        XCTAssertEqual(device.counters.malformed, 1)
    }

    func testSectorPlusLengthOverflow() throws {
        var write = ChainBuilder(memory: memory)
        try write.readable(requestHeader(type: 1, sector: UInt64.max - 1) + pattern(2048))
        try write.writable(1)
        XCTAssertEqual(device.process(write.chain, memory: memory), 1)
        XCTAssertEqual(try write.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(device.counters.writes, 0)
    }

    func testDataNotAMultipleOf512() throws {
        var write = ChainBuilder(memory: memory)
        try write.readable(requestHeader(type: 1) + pattern(700))
        try write.writable(1)
        XCTAssertEqual(device.process(write.chain, memory: memory), 1)
        XCTAssertEqual(try write.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(try imageBytes(at: 0, count: 700), [UInt8](repeating: 0xAA, count: 700))
    }

    func testMissingStatusWritesNothingAndReturnsZero() throws {
        var flush = ChainBuilder(memory: memory)
        try flush.readable(requestHeader(type: 4))
        let before = try memory.readBytes(at: GuestAddress(0), count: 0x2000)
        XCTAssertEqual(device.process(flush.chain, memory: memory), 0)
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0), count: 0x2000), before)
        XCTAssertEqual(device.counters.dropped, 1)
        XCTAssertEqual(device.counters.flushes, 0)
    }

    func testSegmentCountTooHigh() throws {
        let count = Int(BlockDeviceModel.maxDiscardSegments) + 1
        var discard = ChainBuilder(memory: memory)
        try discard.readable(requestHeader(type: 11) + (0..<count).flatMap { segment(sector: UInt64($0) * 8, count: 8) })
        try discard.writable(1)
        let blocksBefore = image.allocatedBlocks
        XCTAssertEqual(device.process(discard.chain, memory: memory), 1)
        XCTAssertEqual(try discard.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(image.allocatedBlocks, blocksBefore, "nothing discarded")
        XCTAssertEqual(device.counters.discards, 0)
    }

    func testDataBufferInReadOnlyGuestMemoryFailsTheRequest() throws {
        // A read whose data buffer lies in a slot this process mapped read-only.
        let memory = try GuestMemory.anonymous([
            SlotDescriptor(guestBase: GuestAddress(0), size: 0x1_0000),
            SlotDescriptor(guestBase: GuestAddress(0x1_0000), size: 0x1_0000, access: .readOnly),
        ])
        try memory.writeBytes(requestHeader(type: 0, sector: 0), at: GuestAddress(0x100))
        let chain = DescriptorChain(head: 1, readable: [DescriptorBuffer(address: GuestAddress(0x100), length: 16)],
                                    writable: [DescriptorBuffer(address: GuestAddress(0x1_0000), length: 512),
                                               DescriptorBuffer(address: GuestAddress(0x200), length: 1)])
        XCTAssertEqual(device.process(chain, memory: memory), 1)
        XCTAssertEqual(try memory.read(UInt8.self, at: GuestAddress(0x200)), BlockStatus.ioError.rawValue)
        XCTAssertEqual(device.counters.guestMemoryErrors, 1)
    }

    // MARK: Features and configuration space

    func testFeatures() {
        let features = device.deviceFeatures
        for bit in [32, 28, 29, 1, 2, 6, 9, 12, 13, 14] {
            XCTAssertNotEqual(features & (1 << UInt64(bit)), 0, "bit \(bit) offered")
        }
        for bit in [5, 4, 10, 11] {
            XCTAssertEqual(features & (1 << UInt64(bit)), 0, "bit \(bit) not offered")
        }
        XCTAssertEqual(device.queueCount, 1)
        XCTAssertEqual(device.maximumQueueSize, 256)
    }

    func testConfigSpaceLayout() {
        let config = device.configSpace
        func le(_ offset: Int, _ size: Int) -> UInt64 {
            (0..<size).reduce(0) { $0 | UInt64(config[offset + $1]) << (8 * $1) }
        }
        XCTAssertEqual(config.count, 72)
        XCTAssertEqual(le(0, 8), 2048, "capacity in 512-byte sectors")
        XCTAssertEqual(le(8, 4), UInt64(BlockDeviceModel.segmentSizeMax), "size_max")
        XCTAssertEqual(le(12, 4), 254, "seg_max")
        XCTAssertEqual(le(16, 4), 0, "geometry")
        XCTAssertEqual(le(20, 4), 512, "blk_size")
        XCTAssertEqual(le(24, 8), 0, "topology")
        XCTAssertEqual(le(32, 1), 0, "writeback")
        XCTAssertEqual(le(34, 2), 1, "num_queues")
        XCTAssertEqual(le(36, 4), UInt64(BlockDeviceModel.maxDiscardSectors), "max_discard_sectors")
        XCTAssertEqual(le(40, 4), UInt64(BlockDeviceModel.maxDiscardSegments), "max_discard_seg")
        XCTAssertEqual(le(44, 4), 8, "discard_sector_alignment")
        XCTAssertEqual(le(48, 4), UInt64(BlockDeviceModel.maxWriteZeroesSectors), "max_write_zeroes_sectors")
        XCTAssertEqual(le(52, 4), UInt64(BlockDeviceModel.maxWriteZeroesSegments), "max_write_zeroes_seg")
        XCTAssertEqual(le(56, 1), 1, "write_zeroes_may_unmap")
        XCTAssertEqual(le(57, 15), 0, "unused1 and secure erase")
    }

    func testNumQueuesIsTheQueueCount() throws {
        let model = try BlockDeviceModel(backend: RawFileBackend(file: image, readOnly: false), queueCount: 4)
        XCTAssertEqual(model.configSpace[34], 4, "num_queues, low byte")
        XCTAssertEqual(model.configSpace[35], 0, "num_queues, high byte")
        XCTAssertNotEqual(model.deviceFeatures & VirtioBlockFeature.multiQueue, 0)
    }

    func testCapacityIgnoresAPartialLastSector() throws {
        let odd = try makeTemporaryImage(size: 4096 + 100)
        let backend = try RawFileBackend(file: odd, readOnly: true)
        XCTAssertEqual(backend.capacityBytes, 4096)
        XCTAssertEqual(try BlockDeviceModel(backend: backend).configSpace[0], 8)
    }

    // MARK: Backend

    func testShortReadAtEndOfFileIsAnIOError() throws {
        let backend = try RawFileBackend(file: image, readOnly: false)
        try retryingInterrupts("ftruncate") { ftruncate(image.rawValue, off_t(Self.imageSize - 512)) }
        var vectors = try memory.slices(at: GuestAddress(0x1000), length: 1024, forWriting: true).map(\.iovec)
        XCTAssertThrowsError(try backend.read(into: &vectors, at: UInt64(Self.imageSize - 1024))) {
            XCTAssertEqual(($0 as? SystemError)?.errno, EIO)
        }
    }
}

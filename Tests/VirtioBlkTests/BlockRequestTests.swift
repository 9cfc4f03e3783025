import XCTest
@testable import BlockDevice
@testable import MemorySlots
@testable import VirtioCore

/// The pure parser (virtio 1.2 §5.2.6): chains in, typed requests or typed errors out.
final class BlockRequestTests: XCTestCase {
    private let limits = BlockRequestLimits(
        capacitySectors: 2048, readOnly: false,
        discard: .init(maxSectors: 256, maxSegments: 4),
        writeZeroes: .init(maxSectors: 256, maxSegments: 4))

    private func parse(_ builder: ChainBuilder, limits: BlockRequestLimits? = nil) throws -> BlockRequest {
        try BlockRequest.parse(builder.chain, memory: builder.memory, limits: limits ?? self.limits)
    }

    private func assertRefused(
        _ builder: ChainBuilder, limits: BlockRequestLimits? = nil, _ expected: BlockRequestError,
        status: BlockStatus = .ioError, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try parse(builder, limits: limits), file: file, line: line) { error in
            XCTAssertEqual(error as? BlockRequestError, expected, file: file, line: line)
            XCTAssertEqual((error as? BlockRequestError)?.status, status, file: file, line: line)
        }
    }

    func testReadDataIsTheWritableBytesBeforeTheStatus() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 0, sector: 5))
        let first = try builder.writable(512)
        let second = try builder.writable(513)   // the status shares the last data buffer
        let request = try parse(builder)
        XCTAssertEqual(request.operation, .read(sector: 5, data: [first, DescriptorBuffer(address: second.address, length: 512)]))
        XCTAssertEqual(request.status, GuestAddress(second.address.value + 512))
        XCTAssertEqual(request.writableDataLength, 1024)
    }

    func testHeaderSplitAcrossTwoBuffersAndWriteDataAfterIt() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        let header = requestHeader(type: 1, sector: 0x0304)
        try builder.readable(Array(header[0..<5]))
        let tail = try builder.readable(Array(header[5...]) + pattern(512))
        try builder.writable(1)
        let request = try parse(builder)
        guard case .write(let sector, let data) = request.operation else { return XCTFail("not a write: \(request)") }
        XCTAssertEqual(sector, 0x0304)
        XCTAssertEqual(data, [DescriptorBuffer(address: GuestAddress(tail.address.value + 11), length: 512)])
    }

    func testGetIDNeedsTwentyBytes() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 8))
        try builder.writable(20)
        assertRefused(builder, .idBufferTooShort(19))
        try builder.writable(1)
        XCTAssertEqual(try parse(builder).writableDataLength, 20)
    }

    func testUnknownTypeIsUnsupported() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 99))
        try builder.writable(1)
        assertRefused(builder, .unsupportedType(99), status: .unsupported)
    }

    func testHeaderTooShort() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(Array(requestHeader(type: 0)[0..<15]))
        try builder.writable(513)
        assertRefused(builder, .headerTooShort(readable: 15))
    }

    func testNoStatusByte() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 4))
        assertRefused(builder, .missingStatus)
        try builder.writable(0)   // a zero-length writable buffer holds no status either
        assertRefused(builder, .missingStatus)
        XCTAssertNil(BlockRequest.statusAddress(of: builder.chain))
    }

    func testDataLengthMustBeWholeSectors() throws {
        var write = ChainBuilder(memory: try makeMemory())
        try write.readable(requestHeader(type: 1) + pattern(100))
        try write.writable(1)
        assertRefused(write, .dataLengthNotSectorMultiple(100))

        var read = ChainBuilder(memory: try makeMemory())
        try read.readable(requestHeader(type: 0))
        try read.writable(513 + 7)
        assertRefused(read, .dataLengthNotSectorMultiple(519))
    }

    func testRequestBeyondCapacity() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 0, sector: 2047))
        try builder.writable(1024 + 1)
        assertRefused(builder, .beyondCapacity(sector: 2047, sectors: 2))

        var last = ChainBuilder(memory: try makeMemory())
        try last.readable(requestHeader(type: 0, sector: 2047))
        try last.writable(512 + 1)
        XCTAssertNoThrow(try parse(last), "the last sector is inside the disk")
    }

    func testSectorPlusLengthOverflowIsRefused() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 1, sector: UInt64.max) + pattern(1024))
        try builder.writable(1)
        assertRefused(builder, .beyondCapacity(sector: UInt64.max, sectors: 2))

        var discard = ChainBuilder(memory: try makeMemory())
        try discard.readable(requestHeader(type: 11) + segment(sector: UInt64.max - 1, count: 4))
        try discard.writable(1)
        assertRefused(discard, .beyondCapacity(sector: UInt64.max - 1, sectors: 4))
    }

    func testWriteToReadOnlyDiskIsRefused() throws {
        let readOnly = BlockRequestLimits(capacitySectors: 2048, readOnly: true, discard: nil, writeZeroes: nil)
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 1) + pattern(512))
        try builder.writable(1)
        assertRefused(builder, limits: readOnly, .readOnly)

        var discard = ChainBuilder(memory: try makeMemory())
        try discard.readable(requestHeader(type: 11) + segment(sector: 0, count: 8))
        try discard.writable(1)
        assertRefused(discard, limits: readOnly, .unsupportedType(11), status: .unsupported)
    }

    func testDataInTheWrongDirectionIsRefused() throws {
        var read = ChainBuilder(memory: try makeMemory())
        try read.readable(requestHeader(type: 0) + [1, 2, 3])
        try read.writable(513)
        assertRefused(read, .unexpectedData(readable: 3, writable: 512))

        var flush = ChainBuilder(memory: try makeMemory())
        try flush.readable(requestHeader(type: 4))
        try flush.writable(2)
        assertRefused(flush, .unexpectedData(readable: 0, writable: 1))
    }

    func testSegmentsAreParsed() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        // The segment list split across buffers, mid-segment.
        let payload = segment(sector: 8, count: 16) + segment(sector: 100, count: 1, flags: 1)
        try builder.readable(requestHeader(type: 13) + Array(payload[0..<20]))
        try builder.readable(Array(payload[20...]))
        try builder.writable(1)
        XCTAssertEqual(try parse(builder).operation, .writeZeroes([
            BlockSegment(sector: 8, sectorCount: 16, unmap: false),
            BlockSegment(sector: 100, sectorCount: 1, unmap: true),
        ]))
    }

    func testSegmentCountAboveTheMaximum() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 11) + (0..<5).flatMap { segment(sector: UInt64($0) * 8, count: 8) })
        try builder.writable(1)
        assertRefused(builder, .tooManySegments(5, maximum: 4))
    }

    func testSegmentSectorsAboveTheMaximum() throws {
        var builder = ChainBuilder(memory: try makeMemory())
        try builder.readable(requestHeader(type: 13) + segment(sector: 0, count: 257))
        try builder.writable(1)
        assertRefused(builder, .tooManySectors(257, maximum: 256))
    }

    func testMalformedSegmentPayload() throws {
        var empty = ChainBuilder(memory: try makeMemory())
        try empty.readable(requestHeader(type: 11))
        try empty.writable(1)
        assertRefused(empty, .malformedSegments(length: 0))

        var partial = ChainBuilder(memory: try makeMemory())
        try partial.readable(requestHeader(type: 11) + Array(segment(sector: 0, count: 8)[0..<12]))
        try partial.writable(1)
        assertRefused(partial, .malformedSegments(length: 12))
    }

    func testSegmentFlags() throws {
        // §5.2.6.2: unmap on a discard, and any reserved bit, is UNSUPP.
        var discard = ChainBuilder(memory: try makeMemory())
        try discard.readable(requestHeader(type: 11) + segment(sector: 0, count: 8, flags: 1))
        try discard.writable(1)
        assertRefused(discard, .unsupportedFlags(1), status: .unsupported)

        var zeroes = ChainBuilder(memory: try makeMemory())
        try zeroes.readable(requestHeader(type: 13) + segment(sector: 0, count: 8, flags: 0x8000_0001))
        try zeroes.writable(1)
        assertRefused(zeroes, .unsupportedFlags(0x8000_0001), status: .unsupported)
    }

    func testHeaderOutsideGuestRAMIsAGuestFault() throws {
        let memory = try makeMemory()
        let chain = DescriptorChain(
            head: 0,
            readable: [DescriptorBuffer(address: GuestAddress(0xFFFF8), length: 16)],
            writable: [DescriptorBuffer(address: GuestAddress(0x100), length: 1)])
        XCTAssertThrowsError(try BlockRequest.parse(chain, memory: memory, limits: limits)) {
            XCTAssertEqual($0 as? BlockRequestError, .guestMemory(.unmapped(GuestAddress(0x10_0000))))
        }
    }

    func testBufferWrappingTheAddressSpaceIsRefused() throws {
        let chain = DescriptorChain(
            head: 0,
            readable: [DescriptorBuffer(address: GuestAddress(UInt64.max - 3), length: 16)],
            writable: [DescriptorBuffer(address: GuestAddress(0x100), length: 1)])
        XCTAssertThrowsError(try BlockRequest.parse(chain, memory: try makeMemory(), limits: limits)) {
            XCTAssertEqual($0 as? BlockRequestError, .bufferOverflow(GuestAddress(UInt64.max - 3), length: 16))
        }
    }
}

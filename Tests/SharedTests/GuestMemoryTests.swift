import XCTest
@testable import GuestRAM
@testable import MemorySlots
@testable import VirtioCore

final class GuestMemoryTests: XCTestCase {
    /// Two adjacent slots [0, 64K) and [64K, 128K), like RAM split across slots.
    private func adjacentSlots() throws -> GuestMemory {
        try GuestMemory.anonymous([
            SlotDescriptor(guestBase: GuestAddress(0), size: 0x1_0000),
            SlotDescriptor(guestBase: GuestAddress(0x1_0000), size: 0x1_0000),
        ])
    }

    func testTypedReadWriteRoundTrip() throws {
        let memory = try adjacentSlots()
        try memory.write(UInt64(0x1122_3344_5566_7788), at: GuestAddress(0x100))
        XCTAssertEqual(try memory.read(UInt64.self, at: GuestAddress(0x100)), 0x1122_3344_5566_7788)
        XCTAssertEqual(try memory.read(UInt8.self, at: GuestAddress(0x100)), 0x88, "little-endian as the guest stores it")
        XCTAssertEqual(try memory.read(UInt16.self, at: GuestAddress(0x106)), 0x1122)
    }

    func testAccessSpanningTwoSlotsWorks() throws {
        let memory = try adjacentSlots()
        let bytes: [UInt8] = Array(1...16)
        try memory.writeBytes(bytes, at: GuestAddress(0x1_0000 - 8))
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x1_0000 - 8), count: 16), bytes)
        XCTAssertEqual(try memory.slices(at: GuestAddress(0x1_0000 - 8), length: 16, forWriting: false).map(\.count), [8, 8])
        // Bytes 7, 8 | 9, 10 on either side of the slot boundary.
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(0xFFFE)), 0x0A09_0807)
    }

    func testForEachSliceChecksTheWholeRangeBeforeCallingBack() throws {
        let memory = try adjacentSlots()
        var seen: [Int] = []
        XCTAssertEqual(try memory.forEachSlice(at: GuestAddress(0xFFF0), length: 0x20, forWriting: true) { seen.append($0.count) }, 2)
        XCTAssertEqual(seen, [0x10, 0x10])
        // Runs off the end of RAM in its second slot: refused before any slice is handed out.
        seen = []
        XCTAssertThrowsError(try memory.forEachSlice(at: GuestAddress(0xFFF0), length: 0x1_0020, forWriting: true) {
            seen.append($0.count)
        }) { XCTAssertEqual($0 as? GuestMemoryError, .unmapped(GuestAddress(0x2_0000))) }
        XCTAssertEqual(seen, [])
        XCTAssertEqual(try memory.forEachSlice(at: GuestAddress(0x10), length: 0, forWriting: false), 1, "an empty range is one empty slice")
        XCTAssertThrowsError(try memory.contiguousSlice(at: GuestAddress(0xFFF0), length: 0x20, forWriting: false)) {
            XCTAssertEqual($0 as? GuestMemoryError, .unmapped(GuestAddress(0x1_0000)), "where the range leaves its slot")
        }
    }

    func testStreamOfBuffersCopiesAndGathersAcrossBuffersAndSlots() throws {
        let memory = try adjacentSlots()
        // Three buffers; the middle one straddles the slot boundary.
        let buffers = [DescriptorBuffer(address: GuestAddress(0x100), length: 4),
                       DescriptorBuffer(address: GuestAddress(0xFFFC), length: 8),
                       DescriptorBuffer(address: GuestAddress(0x300), length: 4)]
        try memory.writeBytes([1, 2, 3, 4], at: GuestAddress(0x100))
        try memory.writeBytes([5, 6, 7, 8, 9, 10, 11, 12], at: GuestAddress(0xFFFC))
        try memory.writeBytes([13, 14, 15, 16], at: GuestAddress(0x300))
        var out = [UInt8](repeating: 0, count: 10)
        try out.withUnsafeMutableBytes { try buffers.copyBytes(from: 2, into: $0, memory: memory) }
        XCTAssertEqual(out, Array(3...12))
        XCTAssertEqual(buffers.ranges(from: 3, count: 7),
                       [DescriptorBuffer(address: GuestAddress(0x103), length: 1), DescriptorBuffer(address: GuestAddress(0xFFFC), length: 6)])
        let patch: [UInt8] = [0xAA, 0xBB, 0xCC]
        try patch.withUnsafeBytes { try buffers.writeBytes($0, at: 11, memory: memory) }
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x103), count: 1), [4])
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x1_0003), count: 1), [0xAA])
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x300), count: 3), [0xBB, 0xCC, 15])

        let vectors = IOVectorBuffer()
        XCTAssertTrue(try buffers.appendSlices(from: 1, count: 14, forWriting: false, memory: memory, to: vectors))
        let lengths = vectors.withVectors { $0.map(\.iov_len) }
        XCTAssertEqual(lengths, [3, 4, 4, 3], "one iovec per slot touched")
    }

    func testIOVectorBufferSkipsEmptySlicesAndStopsAtIOVMax() throws {
        let memory = try adjacentSlots()
        let vectors = IOVectorBuffer()
        let one = try memory.contiguousSlice(at: GuestAddress(0), length: 1, forWriting: false)
        let empty = try memory.contiguousSlice(at: GuestAddress(0), length: 0, forWriting: false)
        XCTAssertTrue(vectors.append(empty))
        XCTAssertTrue(vectors.isEmpty)
        for _ in 0..<IOVectorBuffer.maximumCount { XCTAssertTrue(vectors.append(one)) }
        XCTAssertFalse(vectors.append(one), "IOV_MAX entries is what one system call takes")
        XCTAssertEqual(vectors.count, IOVectorBuffer.maximumCount)
        let many = (0..<IOVectorBuffer.maximumCount).map { DescriptorBuffer(address: GuestAddress(UInt64($0) * 2), length: 1) }
        vectors.removeAll()
        XCTAssertTrue(vectors.append(one))  // a header's iovec, then IOV_MAX buffers: one too many
        XCTAssertFalse(try many.appendSlices(from: 0, count: UInt64(many.count), forWriting: false, memory: memory, to: vectors))
    }

    func testOutOfRangeIsAnError() throws {
        let memory = try adjacentSlots()
        XCTAssertThrowsError(try memory.read(UInt8.self, at: GuestAddress(0x2_0000))) {
            XCTAssertEqual($0 as? GuestMemoryError, .unmapped(GuestAddress(0x2_0000)))
        }
        // Starts inside, ends outside: refused whole, nothing partially read.
        XCTAssertThrowsError(try memory.readBytes(at: GuestAddress(0x1_FFFC), count: 8)) {
            XCTAssertEqual($0 as? GuestMemoryError, .unmapped(GuestAddress(0x2_0000)))
        }
    }

    func testOverflowingRangeIsAnError() throws {
        let memory = try adjacentSlots()
        XCTAssertThrowsError(try memory.slices(at: GuestAddress(UInt64.max - 3), length: 8, forWriting: false)) {
            XCTAssertEqual($0 as? GuestMemoryError, .overflow(GuestAddress(UInt64.max - 3), length: 8))
        }
        XCTAssertNil(GuestAddress(UInt64.max).adding(1))
    }

    func testRangeTouchingTheMMIOHoleFails() throws {
        // Slots laid out as for a guest with 3 GiB + 2 MiB of RAM, but only a sliver of each mapped.
        let holeStart = GuestPhysicalLayout.mmioHoleStart.value
        let memory = try GuestMemory.anonymous([
            SlotDescriptor(guestBase: GuestAddress(holeStart - 0x1000), size: 0x1000),
            SlotDescriptor(guestBase: GuestPhysicalLayout.mmioHoleEnd, size: 0x1000),
        ])
        XCTAssertNoThrow(try memory.read(UInt32.self, at: GuestAddress(holeStart - 4)))
        XCTAssertThrowsError(try memory.read(UInt64.self, at: GuestAddress(holeStart - 4))) {
            XCTAssertEqual($0 as? GuestMemoryError, .unmapped(GuestAddress(holeStart)))
        }
        XCTAssertThrowsError(try memory.read(UInt8.self, at: GuestPhysicalLayout.ioapicBase))
        XCTAssertNoThrow(try memory.read(UInt8.self, at: GuestPhysicalLayout.mmioHoleEnd))
    }

    func testReadOnlySlotRefusesWrites() throws {
        let memory = try GuestMemory.anonymous([
            SlotDescriptor(guestBase: GuestAddress(0), size: 0x1000, access: .readOnly),
            SlotDescriptor(guestBase: GuestAddress(0x1000), size: 0x1000, access: .readWrite),
        ])
        XCTAssertNoThrow(try memory.read(UInt32.self, at: GuestAddress(0x10)))
        XCTAssertThrowsError(try memory.write(UInt32(1), at: GuestAddress(0x10))) {
            XCTAssertEqual($0 as? GuestMemoryError, .readOnly(GuestAddress(0x10)))
        }
        // A write spanning into the read-only slot is refused as a whole.
        XCTAssertThrowsError(try memory.writeBytes([1, 2], at: GuestAddress(0xFFF)))
        XCTAssertNoThrow(try memory.writeBytes([1, 2], at: GuestAddress(0x1000)))
    }

    func testAtomicsNeedAlignmentAndStayInOneSlot() throws {
        let memory = try adjacentSlots()
        try memory.storeRelease(UInt16(0xBEEF), at: GuestAddress(0x2))
        XCTAssertEqual(try memory.loadAcquire(UInt16.self, at: GuestAddress(0x2)), 0xBEEF)
        try memory.storeRelease(UInt32(0xDEAD_BEEF), at: GuestAddress(0x1_0000))
        XCTAssertEqual(try memory.read(UInt32.self, at: GuestAddress(0x1_0000)), 0xDEAD_BEEF)
        XCTAssertThrowsError(try memory.loadAcquire(UInt16.self, at: GuestAddress(0x3))) {
            XCTAssertEqual($0 as? GuestMemoryError, .misaligned(GuestAddress(0x3), alignment: 2))
        }
    }

    func testRAMLayoutSplitsAroundTheHole() {
        XCTAssertEqual(GuestPhysicalLayout.ramSlots(ramBytes: 64 << 20), [SlotDescriptor(guestBase: GuestAddress(0), size: 64 << 20)])
        XCTAssertEqual(GuestPhysicalLayout.ramSlots(ramBytes: 5 << 30), [
            SlotDescriptor(guestBase: GuestAddress(0), size: 3 << 30),
            SlotDescriptor(guestBase: GuestAddress(4 << 30), size: 2 << 30),
        ])
    }

    func testSlotTableValidation() throws {
        XCTAssertThrowsError(try GuestMemory.validate([SlotDescriptor(guestBase: GuestAddress(0x800), size: 0x1000)]))
        XCTAssertThrowsError(try GuestMemory.validate([SlotDescriptor(guestBase: GuestAddress(UInt64.max - 0xFFF), size: 0x2000)]))
        XCTAssertThrowsError(try GuestMemory.validate([
            SlotDescriptor(guestBase: GuestAddress(0), size: 0x2000),
            SlotDescriptor(guestBase: GuestAddress(0x1000), size: 0x1000),
        ])) { XCTAssertTrue("\($0)".contains("overlaps")) }
        XCTAssertNoThrow(try GuestMemory.validate(GuestPhysicalLayout.ramSlots(ramBytes: 5 << 30)))
    }
}

extension GuestMemoryTests {
    /// Typed reads and writes take only plain data: a pointer read out of guest RAM would be
    /// one the guest chose, so pointer types are not GuestPlainData (and do not compile there).
    func testOnlyPlainDataIsReadAsATypedValue() {
        XCTAssertTrue((UInt64.self as Any.Type) is GuestPlainData.Type)
        XCTAssertTrue((Int16.self as Any.Type) is GuestPlainData.Type)
        XCTAssertFalse((UnsafeRawPointer.self as Any.Type) is GuestPlainData.Type)
        XCTAssertFalse((UnsafeMutablePointer<UInt8>.self as Any.Type) is GuestPlainData.Type)
        XCTAssertFalse((OpaquePointer.self as Any.Type) is GuestPlainData.Type)
    }
}

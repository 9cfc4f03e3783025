import XCTest
@testable import Shared

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

import XCTest
@testable import VMCore

/// A LAPIC timer expiry between a vCPU's park and its capture is kept in the snapshot as the
/// timer's vector pending in IRR, and nothing else is: the register page as KVM lays it out.
final class LAPICTimerCatchUpTests: XCTestCase {
    private static let periodic: UInt32 = 1 << 17, oneShot: UInt32 = 0, tscDeadline: UInt32 = 2 << 17, masked: UInt32 = 1 << 16

    private func page(lvt: UInt32, initial: UInt32 = 100_000, current: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: LAPICTimerCatchUp.pageSize)
        for (offset, value) in [(0x320, lvt), (0x380, initial), (0x390, current)] {
            withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) }
        }
        return bytes
    }

    private func irrWord(_ bytes: [UInt8], vector: Int) -> UInt32 {
        let offset = 0x200 + 0x10 * (vector / 32)
        return bytes[offset..<offset + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    private func catchUp(_ bytes: inout [UInt8], countAtPark: UInt32) -> Bool {
        bytes.withUnsafeMutableBytes { LAPICTimerCatchUp.catchUp($0, countAtPark: countAtPark) }
    }

    func testAPeriodicTimerThatStartedANewPeriodIsPendingInIRR() {
        var bytes = page(lvt: Self.periodic | 0xEC, current: 90_000)  // vector 236: IRR word 7, bit 12
        XCTAssertTrue(catchUp(&bytes, countAtPark: 3_000))
        XCTAssertEqual(irrWord(bytes, vector: 0xEC), 1 << 12)
        let untouched = page(lvt: Self.periodic | 0xEC, current: 90_000)
        let changed = bytes.indices.filter { bytes[$0] != untouched[$0] }
        XCTAssertFalse(changed.isEmpty)
        XCTAssertTrue(changed.allSatisfy { (0x270..<0x274).contains($0) }, "only the IRR word of the vector changes: \(changed)")
    }

    func testAPeriodicTimerStillInItsPeriodIsLeftAsItIs() {
        var bytes = page(lvt: Self.periodic | 0xEC, current: 2_000)
        XCTAssertFalse(catchUp(&bytes, countAtPark: 3_000))
        XCTAssertEqual(bytes, page(lvt: Self.periodic | 0xEC, current: 2_000))
    }

    func testAOneShotTimerThatReachedZeroIsPendingAndOneAlreadyDoneBeforeIsNot() {
        var expired = page(lvt: Self.oneShot | 0x30, current: 0)
        XCTAssertTrue(catchUp(&expired, countAtPark: 500))
        XCTAssertEqual(irrWord(expired, vector: 0x30), 1 << 16)
        var before = page(lvt: Self.oneShot | 0x30, current: 0)
        XCTAssertFalse(catchUp(&before, countAtPark: 0), "it fired before the park: KVM had delivered or kept it already")
        var running = page(lvt: Self.oneShot | 0x30, current: 400)
        XCTAssertFalse(catchUp(&running, countAtPark: 500))
    }

    func testMaskedStoppedTSCDeadlineAndReservedVectorsGetNothing() {
        for (lvt, initial) in [(Self.periodic | Self.masked | 0xEC, 100_000), (Self.periodic | 0xEC, 0),
                               (Self.tscDeadline | 0xEC, 100_000), (Self.periodic | 0x0F, 100_000)] as [(UInt32, UInt32)] {
            var bytes = page(lvt: lvt, initial: initial, current: 90_000)
            XCTAssertFalse(catchUp(&bytes, countAtPark: 3_000), "lvt 0x\(String(lvt, radix: 16)) initial \(initial)")
            XCTAssertEqual(bytes, page(lvt: lvt, initial: initial, current: 90_000))
        }
    }

    func testAnIRRBitAlreadySetStaysOneInterrupt() {
        var bytes = page(lvt: Self.periodic | 0x40, current: 90_000)
        bytes[0x200 + 0x10 * 2] = 0x01  // vector 64 pending already
        XCTAssertTrue(catchUp(&bytes, countAtPark: 3_000))
        XCTAssertEqual(irrWord(bytes, vector: 0x40), 1)
    }

    func testAShortPageIsNeitherReadNorWritten() {
        var short = [UInt8](repeating: 0xFF, count: 512)
        XCTAssertNil(short.withUnsafeBytes { LAPICTimerCatchUp.currentCount(of: $0) })
        XCTAssertFalse(catchUp(&short, countAtPark: 0))
    }
}

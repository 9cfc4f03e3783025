import XCTest
@testable import BlockDevice

/// Where each refcount width puts an entry in a block (qcow2.txt: big-endian from 8 bits,
/// packed from the least significant bit below that).
final class Qcow2RefcountWidthTests: XCTestCase {
    func testEntriesLandWhereTheFormatPutsThem() {
        var block = [UInt8](repeating: 0, count: 16)
        let one = Qcow2RefcountWidth(order: 0)
        one.set(1, at: 9, in: &block)
        XCTAssertEqual(block[1], 0b0000_0010, "entry 9 of 1 bit: byte 1, bit 1")
        let two = Qcow2RefcountWidth(order: 1)
        block = [UInt8](repeating: 0xFF, count: 16)
        two.set(2, at: 5, in: &block)
        XCTAssertEqual(block[1], 0b1111_1011, "entry 5 of 2 bits: byte 1, bits 2-3, the rest untouched")
        XCTAssertEqual(two.value(at: 5, in: block), 2)
        XCTAssertEqual(two.value(at: 4, in: block), 3)
        let sixteen = Qcow2RefcountWidth(order: 4)
        block = [UInt8](repeating: 0, count: 16)
        sixteen.set(0x1234, at: 3, in: &block)
        XCTAssertEqual(Array(block[6..<8]), [0x12, 0x34])
        XCTAssertEqual(sixteen.byteRange(of: 3), 6..<8)
        let sixtyFour = Qcow2RefcountWidth(order: 6)
        sixtyFour.set(.max - 1, at: 1, in: &block)
        XCTAssertEqual(Array(block[8..<16]), [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])
        XCTAssertEqual(sixtyFour.value(at: 1, in: block), .max - 1)
        XCTAssertEqual(sixtyFour.maximum, .max)
        XCTAssertEqual(Qcow2RefcountWidth(order: 2).maximum, 15)
    }

    /// Every width reads back every value it can hold, in every slot of a byte, and
    /// setting one entry leaves its neighbours alone.
    func testEveryValueRoundTripsWithoutTouchingItsNeighbours() {
        for order in UInt32(0)...6 {
            let width = Qcow2RefcountWidth(order: order)
            let entries = 64 * 8 / width.bits
            for index in [0, 1, entries / 2, entries - 1] {
                for value in [0, 1, width.maximum / 2, width.maximum] {
                    var block = [UInt8](repeating: 0xA5, count: 64)
                    let before = (0..<entries).map { width.value(at: $0, in: block) }
                    width.set(value, at: index, in: &block)
                    XCTAssertEqual(width.value(at: index, in: block), value, "\(width.bits) bits, entry \(index)")
                    for other in 0..<entries where other != index {
                        XCTAssertEqual(width.value(at: other, in: block), before[other], "\(width.bits) bits: entry \(other) changed")
                    }
                }
            }
        }
    }
}

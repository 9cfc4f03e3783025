import XCTest
@testable import VMCore

final class CMOSTests: XCTestCase {
    /// 2024-02-29 13:45:56 UTC, a Thursday.
    private let instant = 1_709_214_356

    private func read(_ cmos: CMOS, _ index: UInt8) -> UInt8 {
        _ = cmos.write(offset: 0, data: [index])
        var data: [UInt8] = [0]
        cmos.read(offset: 1, into: &data)
        return data[0]
    }

    private func write(_ cmos: CMOS, _ index: UInt8, _ value: UInt8) {
        _ = cmos.write(offset: 0, data: [index])
        _ = cmos.write(offset: 1, data: [value])
    }

    func testClockReadsTheHostTimeInBCDAnd24Hours() {
        let time = instant
        let cmos = CMOS(ramBelow4G: 256 << 20, ramAbove4G: 0, clock: { time })
        XCTAssertEqual(read(cmos, 0x00), 0x56)
        XCTAssertEqual(read(cmos, 0x02), 0x45)
        XCTAssertEqual(read(cmos, 0x04), 0x13)
        XCTAssertEqual(read(cmos, 0x06), 5, "Thursday: day 5 with Sunday = 1")
        XCTAssertEqual(read(cmos, 0x07), 0x29)
        XCTAssertEqual(read(cmos, 0x08), 0x02)
        XCTAssertEqual(read(cmos, 0x09), 0x24)
        XCTAssertEqual(read(cmos, 0x32), 0x20)
        XCTAssertEqual(read(cmos, 0x0A) & 0x80, 0, "update never in progress")
        XCTAssertEqual(read(cmos, 0x0B), 0x02, "24-hour, BCD")
        XCTAssertEqual(read(cmos, 0x0D), 0x80, "valid RAM and time")
    }

    func testStatusBSelectsBinaryAnd12HourFormats() {
        let time = instant
        let cmos = CMOS(ramBelow4G: 256 << 20, ramAbove4G: 0, clock: { time })
        write(cmos, 0x0B, 0x06)  // binary, 24-hour
        XCTAssertEqual(read(cmos, 0x00), 56)
        XCTAssertEqual(read(cmos, 0x04), 13)
        write(cmos, 0x0B, 0x00)  // BCD, 12-hour
        XCTAssertEqual(read(cmos, 0x04), 0x81, "1 PM")
        // Writes to the time registers leave the host's clock in place.
        write(cmos, 0x00, 0x11)
        XCTAssertEqual(read(cmos, 0x00), 0x56)
    }

    func testIndexIgnoresTheNMIBitAndRAMIsReadWrite() {
        let cmos = CMOS(ramBelow4G: 256 << 20, ramAbove4G: 0, clock: { 0 })
        write(cmos, 0x80 | 0x40, 0xA5)
        XCTAssertEqual(read(cmos, 0x40), 0xA5)
        write(cmos, 0x0D, 0)
        XCTAssertEqual(read(cmos, 0x0D), 0x80, "status D is read-only")
        write(cmos, 0x0A, 0xA6)
        XCTAssertEqual(read(cmos, 0x0A), 0x26, "UIP is read-only")
        var index: [UInt8] = [0]
        cmos.read(offset: 0, into: &index)
        XCTAssertEqual(index, [0xFF])
    }

    func testMemorySizeBytes() {
        // 3 GiB below the hole and 2 GiB above 4 GiB.
        let cmos = CMOS(ramBelow4G: 3 << 30, ramAbove4G: 2 << 30, clock: { 0 })
        XCTAssertEqual(UInt16(read(cmos, 0x15)) | UInt16(read(cmos, 0x16)) << 8, 640)
        XCTAssertEqual(UInt16(read(cmos, 0x30)) | UInt16(read(cmos, 0x31)) << 8, 0xFC00, "extended memory caps at 63 MiB")
        XCTAssertEqual(UInt16(read(cmos, 0x17)) | UInt16(read(cmos, 0x18)) << 8, 0xFC00)
        XCTAssertEqual(UInt32(read(cmos, 0x34)) | UInt32(read(cmos, 0x35)) << 8, UInt32(((3 << 30) - (16 << 20)) >> 16))
        XCTAssertEqual(UInt32(read(cmos, 0x5B)) | UInt32(read(cmos, 0x5C)) << 8 | UInt32(read(cmos, 0x5D)) << 16, UInt32((2 << 30) >> 16))
        let small = CMOS(ramBelow4G: 8 << 20, ramAbove4G: 0, clock: { 0 })
        XCTAssertEqual(UInt16(read(small, 0x30)) | UInt16(read(small, 0x31)) << 8, 7 * 1024)
        XCTAssertEqual(read(small, 0x34), 0)
        XCTAssertEqual(read(small, 0x5B), 0)
    }
}

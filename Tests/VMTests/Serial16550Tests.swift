import XCTest
@testable import VMCore

final class Serial16550Tests: XCTestCase {
    private var output: [UInt8] = []
    private var lineLevels: [Bool] = []

    private func makeSerial() -> Serial16550 {
        Serial16550(output: { [unowned self] in self.output += $0 }, interruptLine: { [unowned self] in self.lineLevels.append($0) })
    }

    private func read(_ serial: Serial16550, _ offset: UInt64) -> UInt8 {
        var data: [UInt8] = [0]
        serial.read(offset: offset, into: &data)
        return data[0]
    }

    func testTransmitGoesToOutputAndLineStatusSaysEmpty() {
        let serial = makeSerial()
        _ = serial.write(offset: 0, data: Array("h".utf8))
        _ = serial.write(offset: 0, data: Array("i".utf8))
        XCTAssertEqual(output, Array("hi".utf8))
        XCTAssertEqual(read(serial, 5) & 0x60, 0x60, "THRE and TEMT set")
        XCTAssertEqual(read(serial, 5) & 0x01, 0, "no data ready")
    }

    func testDivisorLatchHidesDataRegisters() {
        let serial = makeSerial()
        _ = serial.write(offset: 3, data: [0x80])   // DLAB
        _ = serial.write(offset: 0, data: [0x01])   // DLL, not a transmit
        _ = serial.write(offset: 1, data: [0x02])   // DLM
        XCTAssertEqual(read(serial, 0), 0x01)
        XCTAssertEqual(read(serial, 1), 0x02)
        XCTAssertTrue(output.isEmpty)
        _ = serial.write(offset: 3, data: [0x03])
        XCTAssertEqual(read(serial, 1), 0, "IER again once DLAB is clear")
    }

    func testReceiveRaisesDataReadyAndInterrupt() {
        let serial = makeSerial()
        _ = serial.write(offset: 1, data: [0x01])   // IER: received data
        serial.receive([0x61, 0x62])
        XCTAssertEqual(lineLevels.last, true)
        XCTAssertEqual(read(serial, 2) & 0x0F, 0x04, "IIR: received data available")
        XCTAssertEqual(read(serial, 5) & 0x01, 1)
        XCTAssertEqual(read(serial, 0), 0x61)
        XCTAssertEqual(read(serial, 0), 0x62)
        XCTAssertEqual(read(serial, 5) & 0x01, 0)
        XCTAssertEqual(lineLevels.last, false, "line drops once the FIFO is empty")
    }

    func testTransmitterEmptyInterruptIsAcknowledgedByReadingIIR() {
        let serial = makeSerial()
        _ = serial.write(offset: 1, data: [0x02])   // IER: THR empty
        XCTAssertEqual(lineLevels.last, true, "enabling THRE interrupts raises one at once")
        XCTAssertEqual(read(serial, 2) & 0x0F, 0x02)
        XCTAssertEqual(lineLevels.last, false)
        XCTAssertEqual(read(serial, 2) & 0x0F, 0x01, "no interrupt pending after the acknowledge")
        _ = serial.write(offset: 0, data: [0x41])
        XCTAssertEqual(lineLevels.last, true, "each transmit raises THRE again")
    }

    func testLoopbackDoesNotTransmit() {
        let serial = makeSerial()
        _ = serial.write(offset: 4, data: [0x10])   // MCR loopback
        _ = serial.write(offset: 0, data: [0x55])
        XCTAssertTrue(output.isEmpty)
        XCTAssertEqual(read(serial, 0), 0x55)
    }
}

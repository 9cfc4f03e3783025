import XCTest
@testable import VMCore

/// The keyboard controller answers the controller's own commands at once (a probe
/// must not wait out timeouts), resets the VM through its reset line, and has no
/// keyboard or mouse behind it.
final class I8042Tests: XCTestCase {
    private func status(_ i8042: I8042) -> UInt8 {
        var byte: [UInt8] = [0]
        i8042.read(offset: 4, into: &byte)
        return byte[0]
    }

    private func data(_ i8042: I8042) -> UInt8 {
        var byte: [UInt8] = [0]
        i8042.read(offset: 0, into: &byte)
        return byte[0]
    }

    /// Sends a command and returns the reply byte, checking the status bits around it.
    private func reply(to command: UInt8, _ i8042: I8042, file: StaticString = #filePath, line: UInt = #line) -> UInt8? {
        XCTAssertEqual(i8042.write(offset: 4, data: [command]), .none, file: file, line: line)
        guard status(i8042) & I8042.Status.outputFull != 0 else { return nil }
        let byte = data(i8042)
        XCTAssertEqual(status(i8042) & I8042.Status.outputFull, 0, "read empties the buffer", file: file, line: line)
        return byte
    }

    func testStatusSaysEmptyAndSelfTestedAtFirst() {
        let i8042 = I8042()
        XCTAssertEqual(status(i8042), I8042.Status.system)
        XCTAssertEqual(data(i8042), 0, "nothing to read")
    }

    func testSelfAndInterfaceTestsAnswer() {
        let i8042 = I8042()
        XCTAssertEqual(reply(to: 0xAA, i8042), 0x55)
        XCTAssertEqual(reply(to: 0xAB, i8042), 0x00, "keyboard interface: fine")
        XCTAssertEqual(reply(to: 0xA9, i8042), 0x01, "aux interface: clock stuck, so no mouse port")
        XCTAssertNotEqual(status(i8042) & I8042.Status.lastWasCommand, 0)
    }

    func testCommandByteIsReadWrittenAndTracksPortEnables() {
        let i8042 = I8042()
        let initial = reply(to: 0x20, i8042)
        XCTAssertEqual(initial, 0x44, "translation and system flag, no interrupts")
        XCTAssertEqual(i8042.write(offset: 4, data: [0x60]), .none)
        XCTAssertEqual(i8042.write(offset: 0, data: [0x47]), .none)
        XCTAssertEqual(reply(to: 0x20, i8042), 0x47)
        _ = i8042.write(offset: 4, data: [0xAD])  // disable keyboard
        _ = i8042.write(offset: 4, data: [0xA7])  // disable aux
        XCTAssertEqual(reply(to: 0x20, i8042), 0x47 | 0x10 | 0x20)
        _ = i8042.write(offset: 4, data: [0xAE])
        _ = i8042.write(offset: 4, data: [0xA8])
        XCTAssertEqual(reply(to: 0x20, i8042), 0x47)
    }

    func testLoopbackWritesComeBackMarkedByPort() {
        let i8042 = I8042()
        _ = i8042.write(offset: 4, data: [0xD3])
        _ = i8042.write(offset: 0, data: [0x5A])
        XCTAssertEqual(status(i8042) & (I8042.Status.outputFull | I8042.Status.auxData), I8042.Status.outputFull | I8042.Status.auxData)
        XCTAssertEqual(data(i8042), 0x5A)
        _ = i8042.write(offset: 4, data: [0xD2])
        _ = i8042.write(offset: 0, data: [0x1C])
        XCTAssertEqual(status(i8042) & I8042.Status.auxData, 0, "keyboard data")
        XCTAssertEqual(data(i8042), 0x1C)
    }

    func testBytesToTheAbsentKeyboardAreDroppedAndNeverReset() {
        let i8042 = I8042()
        for byte: UInt8 in [0xFF, 0xF2, 0xED, 0xFE] {
            XCTAssertEqual(i8042.write(offset: 0, data: [byte]), .none, "0x\(String(byte, radix: 16)) on the data port is for the keyboard")
        }
        XCTAssertEqual(status(i8042) & I8042.Status.outputFull, 0, "no keyboard answers")
    }

    func testResetLine() {
        let i8042 = I8042()
        XCTAssertEqual(i8042.write(offset: 4, data: [0xFE]), .endGuest(.reset))
        XCTAssertEqual(i8042.write(offset: 4, data: [0xFF]), .none, "pulse with no line selected")
        XCTAssertEqual(i8042.write(offset: 4, data: [0xF0]), .endGuest(.reset), "bit 0 clear pulses reset")
        XCTAssertEqual(reply(to: 0xD0, i8042), 0x01, "output port: reset line not asserted")
        XCTAssertEqual(i8042.write(offset: 4, data: [0xD1]), .none)
        XCTAssertEqual(i8042.write(offset: 0, data: [0x03]), .none, "A20 and the reset line high")
        XCTAssertEqual(i8042.write(offset: 4, data: [0xD1]), .none)
        XCTAssertEqual(i8042.write(offset: 0, data: [0x02]), .endGuest(.reset), "reset line asserted through the output port")
    }

    func testAnUnreadGuestCannotGrowTheBuffer() {
        let i8042 = I8042()
        for _ in 0..<1000 { _ = i8042.write(offset: 4, data: [0xAA]) }
        var count = 0
        while status(i8042) & I8042.Status.outputFull != 0 && count < 2000 { _ = data(i8042); count += 1 }
        XCTAssertEqual(count, 16)
    }
}

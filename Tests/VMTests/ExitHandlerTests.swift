import Synchronization
import XCTest
@testable import VMCore

/// A device that records accesses and answers reads with a fixed byte.
final class RecordingDevice: BusDevice {
    let name: String
    var writes: [(UInt64, [UInt8])] = []
    var reads: [(UInt64, Int)] = []
    let answer: UInt8
    init(name: String = "recorder", answer: UInt8 = 0x5A) { self.name = name; self.answer = answer }
    func read(offset: UInt64, into data: inout [UInt8]) {
        reads.append((offset, data.count))
        for index in data.indices { data[index] = answer }
    }
    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        writes.append((offset, data))
        return .none
    }
}

final class ExitHandlerTests: XCTestCase {
    private func buses(with device: BusDevice, port: UInt64 = 0x100, size: UInt64 = 8) throws -> Buses {
        let ports = AddressBus(name: "ports")
        try ports.register(device, base: port, size: size)
        try ports.register(DebugExitPort(), base: DebugExitPort.port, size: DebugExitPort.size)
        let mmio = AddressBus(name: "mmio")
        try mmio.register(device, base: 0xD000_0000, size: 0x1000)
        return Buses(ports: ports, mmio: mmio)
    }

    func testPortReadAndWriteReachTheDeviceAtItsOffset() throws {
        let device = RecordingDevice()
        let buses = try buses(with: device)
        XCTAssertEqual(handleExit(.portIn(port: 0x102, size: 2, count: 1), buses: buses), .completeRead([0x5A, 0x5A]))
        XCTAssertEqual(device.reads.first?.0, 2)
        XCTAssertEqual(handleExit(.portOut(port: 0x105, size: 1, data: [0x41]), buses: buses), .resume)
        XCTAssertEqual(device.writes.first?.0, 5)
        XCTAssertEqual(device.writes.first?.1, [0x41])
    }

    func testStringIOIsSplitIntoAccesses() throws {
        let device = RecordingDevice()
        let buses = try buses(with: device)
        // rep outsb of three bytes: three one-byte writes.
        XCTAssertEqual(handleExit(.portOut(port: 0x100, size: 1, data: [1, 2, 3]), buses: buses), .resume)
        XCTAssertEqual(device.writes.map(\.1), [[1], [2], [3]])
        XCTAssertEqual(handleExit(.portIn(port: 0x100, size: 2, count: 3), buses: buses), .completeRead([UInt8](repeating: 0x5A, count: 6)))
    }

    func testUnclaimedAccessesReadAllOnesAndAreIgnored() throws {
        let buses = try buses(with: RecordingDevice())
        XCTAssertEqual(handleExit(.portIn(port: 0x300, size: 4, count: 1), buses: buses), .completeRead([0xFF, 0xFF, 0xFF, 0xFF]))
        XCTAssertEqual(handleExit(.portOut(port: 0x300, size: 1, data: [1]), buses: buses), .resume)
        XCTAssertEqual(handleExit(.mmioRead(address: 0xE000_0000, size: 8), buses: buses), .completeRead([UInt8](repeating: 0xFF, count: 8)))
        // An access straddling the end of a device's range is not the device's.
        XCTAssertEqual(handleExit(.portIn(port: 0x107, size: 2, count: 1), buses: buses), .completeRead([0xFF, 0xFF]))
    }

    func testMMIOGoesToTheMMIOBus() throws {
        let device = RecordingDevice(answer: 0x11)
        let buses = try buses(with: device)
        XCTAssertEqual(handleExit(.mmioRead(address: 0xD000_0010, size: 4), buses: buses), .completeRead([0x11, 0x11, 0x11, 0x11]))
        XCTAssertEqual(handleExit(.mmioWrite(address: 0xD000_0020, data: [9, 8]), buses: buses), .resume)
        XCTAssertEqual(device.reads.first?.0, 0x10)
        XCTAssertEqual(device.writes.first?.0, 0x20)
    }

    func testDebugExitEndsTheGuestWithItsCode() throws {
        let buses = try buses(with: RecordingDevice())
        XCTAssertEqual(handleExit(.portOut(port: 0xF4, size: 1, data: [42]), buses: buses), .stop(.exitCode(42)))
        XCTAssertEqual(handleExit(.portOut(port: 0xF4, size: 4, data: [7, 0, 0, 0]), buses: buses), .stop(.exitCode(7)))
    }

    func testGuestEndingExits() throws {
        let buses = try buses(with: RecordingDevice())
        XCTAssertEqual(handleExit(.shutdown, buses: buses), .stop(.tripleFault))
        XCTAssertEqual(handleExit(.systemEvent(type: 1), buses: buses), .stop(.powerOff))
        XCTAssertEqual(handleExit(.systemEvent(type: 2), buses: buses), .stop(.reset))
        XCTAssertEqual(handleExit(.interrupted, buses: buses), .resume)
        guard case .stop(.failed) = handleExit(.failEntry(reason: 0x21), buses: buses) else { return XCTFail("fail entry must stop") }
        guard case .stop(.failed) = handleExit(.unknown(reason: 999), buses: buses) else { return XCTFail("unknown exit must stop") }
    }

    func testUnassignedPortsReadAllOnesAndAreLoggedOncePerAddress() {
        let lines = Mutex<[String]>([])
        let log = UnassignedAccessLog { line in lines.withLock { $0.append(line) } }
        let buses = Buses(ports: AddressBus(name: "port I/O"), mmio: AddressBus(name: "MMIO"))
        for _ in 0..<100 {  // Linux probing COM2's scratch register, byte by byte
            XCTAssertEqual(handleExit(.portIn(port: 0x2F9, size: 1, count: 1), buses: buses, log: log), .completeRead([0xFF]))
            XCTAssertEqual(handleExit(.portOut(port: 0x2F9, size: 1, data: [0x5A]), buses: buses, log: log), .resume)
        }
        XCTAssertEqual(lines.withLock { $0 }, ["port I/O read of 1 bytes at 0x2f9 hits no device (reads as all ones; not logged again)"])
        for port in UInt16(0x400)..<0x500 { _ = handleExit(.portIn(port: port, size: 1, count: 1), buses: buses, log: log) }
        let all = lines.withLock { $0 }
        XCTAssertEqual(all.count, UnassignedAccessLog.distinctLimit + 1, "a sweep of the port space logs a bounded number of lines")
        XCTAssertEqual(all.last, "guest accesses at 16 addresses hit no device; further ones are not logged")
    }

    func testBusRefusesOverlaps() throws {
        let bus = AddressBus(name: "ports")
        try bus.register(RecordingDevice(name: "a"), base: 0x3F8, size: 8)
        XCTAssertThrowsError(try bus.register(RecordingDevice(name: "b"), base: 0x3FF, size: 1)) {
            XCTAssertEqual("\($0)", "b overlaps a at 0x3ff")
        }
        XCTAssertNoThrow(try bus.register(RecordingDevice(name: "c"), base: 0x400, size: 1))
        XCTAssertEqual(bus.lookup(0x400, length: 1)?.device.name, "c")
        XCTAssertEqual(bus.lookup(0x3F8, length: 1)?.device.name, "a")
        XCTAssertNil(bus.lookup(0x3F0, length: 1))
    }
}

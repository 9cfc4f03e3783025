import CLinux
import XCTest
@testable import NetDevice

final class NetHeaderTests: XCTestCase {
    private typealias Header = VirtioNetHeader
    private let tx = VirtioNetFeature.checksum | VirtioNetFeature.hostTSO4 | VirtioNetFeature.hostTSO6

    func testParseAndSerializeAreLittleEndianAtTheSpecOffsets() throws {
        let bytes: [UInt8] = [0x01, 0x04, 0x36, 0x00, 0xA8, 0x05, 0x22, 0x00, 0x10, 0x00, 0x03, 0x00]
        let header = try XCTUnwrap(Header(parsing: bytes))
        XCTAssertEqual(header, Header(flags: 1, gsoType: 4, headerLength: 0x36, gsoSize: 0x5A8, checksumStart: 0x22,
                                      checksumOffset: 0x10, bufferCount: 3))
        XCTAssertEqual(header.bytes, bytes)
        XCTAssertEqual(Header(parsing: Array(bytes[0..<11])), nil, "11 bytes are not a header")
        XCTAssertEqual(Header(parsing: bytes[2...] + [0, 0])?.headerLength, 0x05A8, "parses from a slice's start")
    }

    func testTransmitChecksAcceptWhatLinuxSends() throws {
        try Header().validateForTransmit(frameLength: 60, features: 0)
        // TCP over IPv4: checksum field at 14 + 20 + 16.
        try Header(flags: 1, checksumStart: 34, checksumOffset: 16).validateForTransmit(frameLength: 54, features: tx)
        try Header(flags: 1, gsoType: 1, headerLength: 54, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
            .validateForTransmit(frameLength: 20000, features: tx)
        try Header(flags: 1, gsoType: 4, headerLength: 74, gsoSize: 1428, checksumStart: 54, checksumOffset: 16)
            .validateForTransmit(frameLength: 20000, features: tx)
        // USO (UDP_SEGMENT): UDP checksum field at 14 + 20 + 6, 1472-byte segments.
        try Header(flags: 1, gsoType: 5, headerLength: 42, gsoSize: 1472, checksumStart: 34, checksumOffset: 6)
            .validateForTransmit(frameLength: 42 + 44 * 1472, features: tx | VirtioNetFeature.hostUSO)
    }

    func testTransmitChecksRefuse() {
        func refuses(_ header: Header, _ expected: VirtioNetHeaderError, frame: Int = 1000, features: UInt64? = nil,
                     line: UInt = #line) {
            XCTAssertThrowsError(try header.validateForTransmit(frameLength: frame, features: features ?? tx), line: line) {
                XCTAssertEqual($0 as? VirtioNetHeaderError, expected, line: line)
            }
        }
        refuses(Header(flags: 2), .unknownFlags(2))
        refuses(Header(flags: 0x80), .unknownFlags(0x80))
        refuses(Header(flags: 1, checksumStart: 34, checksumOffset: 16), .checksumNotNegotiated, features: 0)
        refuses(Header(flags: 1, checksumStart: 40, checksumOffset: 15), .checksumOutsideFrame(start: 40, offset: 15, frameLength: 56),
                frame: 56)
        refuses(Header(flags: 1, checksumStart: 0xFFFF, checksumOffset: 0xFFFF),
                .checksumOutsideFrame(start: 0xFFFF, offset: 0xFFFF, frameLength: 1000))
        refuses(Header(flags: 1, gsoType: 3, gsoSize: 1000), .unknownGSOType(3))
        refuses(Header(flags: 1, gsoType: 5, gsoSize: 1000), .gsoNotNegotiated(5))
        refuses(Header(gsoType: 5, gsoSize: 1000), .gsoWithoutChecksum, features: tx | VirtioNetFeature.hostUSO)
        refuses(Header(flags: 1, gsoType: 0x81, gsoSize: 1000), .unknownGSOType(0x81))
        refuses(Header(flags: 1, gsoType: 1, gsoSize: 1000), .gsoNotNegotiated(1), features: VirtioNetFeature.checksum)
        refuses(Header(flags: 1, gsoType: 4, gsoSize: 1000), .gsoNotNegotiated(4),
                features: VirtioNetFeature.checksum | VirtioNetFeature.hostTSO4)
        refuses(Header(gsoType: 1, gsoSize: 1000), .gsoWithoutChecksum)
        refuses(Header(flags: 1, gsoType: 1, gsoSize: 0), .gsoSizeZero)
        refuses(Header(flags: 1, gsoType: 1, headerLength: 1001, gsoSize: 1), .headerLengthOutsideFrame(1001, frameLength: 1000))
    }

    func testReceiveAdjustmentFollowsTheNegotiatedOffloads() throws {
        let rx = VirtioNetFeature.guestChecksum | VirtioNetFeature.guestTSO4
        // Without GUEST_CSUM: DATA_VALID is dropped, a partial checksum cannot be delivered.
        XCTAssertEqual(try Header(flags: 2).adjustedForReceive(features: 0), Header())
        XCTAssertThrowsError(try Header(flags: 1).adjustedForReceive(features: 0)) {
            XCTAssertEqual($0 as? VirtioNetHeaderError, .checksumNotNegotiated)
        }
        XCTAssertEqual(try Header(flags: 3, checksumStart: 34, checksumOffset: 16).adjustedForReceive(features: rx),
                       Header(flags: 3, checksumStart: 34, checksumOffset: 16))
        XCTAssertEqual(try Header(flags: 4).adjustedForReceive(features: rx), Header(), "RSC_INFO never goes out")
        XCTAssertEqual(try Header(flags: 1, gsoType: 1, gsoSize: 1448).adjustedForReceive(features: rx).gsoType, 1)
        XCTAssertThrowsError(try Header(flags: 1, gsoType: 4, gsoSize: 1448).adjustedForReceive(features: rx)) {
            XCTAssertEqual($0 as? VirtioNetHeaderError, .gsoNotNegotiated(4))
        }
        XCTAssertThrowsError(try Header(flags: 1, gsoType: 3, gsoSize: 1448).adjustedForReceive(features: rx))
        // UDP_L4 says nothing of the IP version: only a driver that took both GUEST_USO bits gets it.
        let uso = VirtioNetFeature.guestChecksum | VirtioNetFeature.guestUSO4 | VirtioNetFeature.guestUSO6
        XCTAssertEqual(try Header(flags: 1, gsoType: 5, gsoSize: 1472).adjustedForReceive(features: uso).gsoType, 5)
        XCTAssertThrowsError(try Header(flags: 1, gsoType: 5, gsoSize: 1472)
            .adjustedForReceive(features: VirtioNetFeature.guestChecksum | VirtioNetFeature.guestUSO4)) {
            XCTAssertEqual($0 as? VirtioNetHeaderError, .gsoNotNegotiated(5))
        }
        XCTAssertThrowsError(try Header(flags: 1, gsoType: 5, gsoSize: 1472).adjustedForReceive(features: rx))
    }

    func testOffloadsFromTunFlagsAndBack() {
        XCTAssertEqual(NetOffloads(acceptedTunFlags: 0), [])
        XCTAssertEqual(NetOffloads(acceptedTunFlags: UInt32(VMD_TUN_F_TSO4)), [], "TSO without checksum offload is nothing")
        let tso = UInt32(VMD_TUN_F_CSUM | VMD_TUN_F_TSO4 | VMD_TUN_F_TSO6)
        XCTAssertEqual(NetOffloads(acceptedTunFlags: tso), NetOffloads.all.subtracting(.uso), "a kernel before 6.2")
        XCTAssertEqual(NetOffloads(acceptedTunFlags: tso | UInt32(VMD_TUN_F_USO4 | VMD_TUN_F_USO6)), .all)
        XCTAssertEqual(NetOffloads(acceptedTunFlags: tso | UInt32(VMD_TUN_F_USO4)), NetOffloads.all.subtracting(.uso),
                       "the tap turns on USO4 and USO6 only together")
        XCTAssertEqual(NetOffloads(acceptedTunFlags: UInt32(VMD_TUN_F_USO4 | VMD_TUN_F_USO6)), [], "USO needs the checksum offload")
        XCTAssertEqual(NetOffloads(acceptedTunFlags: UInt32(VMD_TUN_F_CSUM)), [.checksum, .guestChecksum])
        XCTAssertEqual(NetOffloads.tunFlags(forGuestFeatures: VirtioNetFeature.guestChecksum | VirtioNetFeature.guestTSO6),
                       UInt32(VMD_TUN_F_CSUM | VMD_TUN_F_TSO6))
        XCTAssertEqual(NetOffloads.tunFlags(forGuestFeatures: VirtioNetFeature.guestTSO4), 0)
        let guestUSO = VirtioNetFeature.guestChecksum | VirtioNetFeature.guestUSO4 | VirtioNetFeature.guestUSO6
        XCTAssertEqual(NetOffloads.tunFlags(forGuestFeatures: guestUSO), UInt32(VMD_TUN_F_CSUM | VMD_TUN_F_USO4 | VMD_TUN_F_USO6))
        XCTAssertEqual(NetOffloads.tunFlags(forGuestFeatures: VirtioNetFeature.guestChecksum | VirtioNetFeature.guestUSO6),
                       UInt32(VMD_TUN_F_CSUM), "one GUEST_USO bit is no USO on the tap")
        XCTAssertNotNil(NetOffloads([.guestTSO4]).missingDependency)
        XCTAssertNotNil(NetOffloads([.hostUSO, .guestChecksum]).missingDependency)
        XCTAssertNotNil(NetOffloads([.guestUSO4, .checksum]).missingDependency)
        XCTAssertNotNil(NetOffloads([.hostTSO6, .guestChecksum]).missingDependency)
        XCTAssertNil(NetOffloads.all.missingDependency)
    }

    func testInternetChecksumOfRFC1071Example() {
        // RFC 1071 §3: the sum of these words is 0xDDF2, so the checksum is 0x220D.
        XCTAssertEqual(InternetChecksum.of([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]), 0x220D)
        var pieces = InternetChecksum()
        pieces.add([0x00, 0x01, 0xF2])
        pieces.add([0x03, 0xF4, 0xF5, 0xF6, 0xF7])
        XCTAssertEqual(pieces.value, 0x220D, "odd-length pieces")
        XCTAssertEqual(InternetChecksum.of([0x01]), ~UInt16(0x0100), "odd last byte padded")
    }
}


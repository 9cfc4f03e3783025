import Glibc
import XCTest
@testable import LinuxSystem
@testable import NetDevice

/// TapBackend's readv/writev and EAGAIN handling over a datagram socket pair (which, like a
/// tap, moves one packet per call) and over a real tap where the host allows one.
final class TapBackendTests: XCTestCase {
    private func datagramPair() throws -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try retryingInterrupts("socketpair") { socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0, &fds) }
        return (FileDescriptor(adopting: fds[0]), FileDescriptor(adopting: fds[1]))
    }

    func testWouldBlockThenScatterAndGatherOnePacketPerCall() throws {
        let (mine, peer) = try datagramPair()
        let backend = try TapBackend(tap: mine)
        var first = [UInt8](repeating: 0, count: 5)
        var second = [UInt8](repeating: 0, count: 100)
        func read() throws -> NetTransfer {
            try first.withUnsafeMutableBytes { a in
                try second.withUnsafeMutableBytes { b in
                    try backend.readPacket(into: vectors(UnsafeRawBufferPointer(a), UnsafeRawBufferPointer(b)))
                }
            }
        }
        XCTAssertEqual(try read(), .wouldBlock, "non-blocking: EAGAIN is would-block")

        let packet = pattern(40, seed: 3)
        try peer.writeAll(packet)
        try peer.writeAll([9, 9])
        XCTAssertEqual(try read(), .packet(40))
        XCTAssertEqual(first + second[0..<35], packet)
        XCTAssertEqual(try read(), .packet(2), "the next packet, not the rest of a stream")
        XCTAssertEqual(try read(), .wouldBlock)

        let header = VirtioNetHeader().bytes
        let frame = ethernetFrame(60)
        let sent = try header.withUnsafeBytes { h in
            try frame.withUnsafeBytes { f in
                try backend.writePacket(from: vectors(h, f))
            }
        }
        XCTAssertEqual(sent, .packet(72))
        XCTAssertEqual(try peer.read(upTo: 1000), header + frame)
    }

    func testOtherErrorsAreThrownWithErrno() throws {
        let (mine, peer) = try datagramPair()
        let backend = try TapBackend(tap: mine)
        peer.close()
        let bytes: [UInt8] = [1]
        XCTAssertThrowsError(try bytes.withUnsafeBytes {
            try backend.writePacket(from: vectors($0))
        }) { error in
            XCTAssertNotNil(error as? SystemError)
            XCTAssertNotEqual((error as? SystemError)?.errno, EAGAIN)
        }
    }
}

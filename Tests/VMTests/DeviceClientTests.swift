import Glibc
import IPC
import LinuxSystem
import XCTest
@testable import VMCore

/// The vm side of the transport channel: a reply that comes after its request timed
/// out must not be taken as the answer to the next request (issue 14).
final class DeviceClientTests: XCTestCase {
    func testALateReplyIsDroppedNotTakenForTheNextAnswer() throws {
        let (vmSide, deviceSide) = try FileDescriptor.socketPair()
        let client = try DeviceClient(socket: vmSide, timeoutSeconds: 0.2)
        let device = Channel(socket: deviceSide)

        // The device does not answer in time: the request fails.
        XCTAssertThrowsError(try client.request(.describe))
        let first = try device.receive(Numbered<TransportRequest>.self)
        XCTAssertEqual(first.message, .describe)

        // Now it answers the first request late, then the second one.
        let second = Thread {
            guard let request = try? device.receive(Numbered<TransportRequest>.self) else { return }
            try? device.send(Numbered(id: first.id, TransportReply.refused("late answer to describe")))
            try? device.send(Numbered(id: request.id, TransportReply.done))
        }
        second.start()
        XCTAssertEqual(try client.request(.reset), .done, "the answer to reset, not the late one to describe")
        XCTAssertEqual(client.lateReplies, 1)
    }

    func testRequestsAreNumberedInOrder() throws {
        let (vmSide, deviceSide) = try FileDescriptor.socketPair()
        let client = try DeviceClient(socket: vmSide, timeoutSeconds: 2)
        let device = Channel(socket: deviceSide)
        var ids: [UInt32] = []
        let echo = Thread {
            for _ in 0..<3 {
                guard let request = try? device.receive(Numbered<TransportRequest>.self) else { return }
                ids.append(request.id)
                try? device.send(Numbered(id: request.id, TransportReply.config([UInt8(truncatingIfNeeded: request.id)])))
            }
        }
        echo.start()
        for expected in 0..<3 {
            XCTAssertEqual(try client.request(.readConfig(offset: 0, size: 1)), .config([UInt8(expected)]))
        }
        XCTAssertEqual(ids, [0, 1, 2])
        XCTAssertEqual(client.lateReplies, 0)
    }
}

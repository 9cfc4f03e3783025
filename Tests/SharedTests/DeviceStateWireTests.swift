import XCTest
@testable import IPC
import LinuxSystem

/// What a device process keeps beyond its rings (virtio-net's queue pairs in use) on its way
/// into a snapshot (`.queueState`) and back into a restored device (`.activate`).
final class DeviceStateWireTests: XCTestCase {
    private func roundTrip<Message: ChannelMessage>(_ message: Message) throws -> Message {
        let (bytes, descriptors) = try IPCFrame.encode(message)
        return try IPCFrame.decode(Message.self, bytes: bytes, descriptors: descriptors)
    }

    func testTheDeviceStateTravelsBothWays() throws {
        let queues = [QueueActivation(index: 4, size: 256, descriptorTable: 0x1000, availableRing: 0x2000, usedRing: 0x3000,
                                      resumeAt: QueueIndices(nextAvailable: 7, nextUsed: 5))]
        let activation = TransportRequest.activate(features: 1 << 22, queues: queues, deviceState: [3, 0])
        XCTAssertEqual(try roundTrip(activation), activation)
        let reply = TransportReply.queueState([QueueIndices(nextAvailable: 1, nextUsed: 2), nil], deviceState: [3, 0])
        XCTAssertEqual(try roundTrip(reply), reply)
        XCTAssertEqual(try roundTrip(TransportReply.queueState([], deviceState: [])), .queueState([], deviceState: []))
    }

    /// A peer's state larger than any device keeps is refused, not allocated.
    func testAnOversizedDeviceStateIsRefused() throws {
        let huge = TransportRequest.activate(features: 0, queues: [],
                                             deviceState: [UInt8](repeating: 1, count: TransportRequest.maximumDeviceState + 1))
        let (bytes, descriptors) = try IPCFrame.encode(huge)
        XCTAssertThrowsError(try IPCFrame.decode(TransportRequest.self, bytes: bytes, descriptors: descriptors))
        let reply = TransportReply.queueState([], deviceState: [UInt8](repeating: 1, count: TransportRequest.maximumDeviceState + 1))
        let (replyBytes, replyDescriptors) = try IPCFrame.encode(reply)
        XCTAssertThrowsError(try IPCFrame.decode(TransportReply.self, bytes: replyBytes, descriptors: replyDescriptors))
    }
}

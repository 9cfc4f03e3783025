import IPC
import LinuxSystem
import VirtioCore
import XCTest
@testable import VMCore

/// What a device process keeps beyond its rings (virtio-net's queue pairs in use) goes into
/// the transport's snapshot section and back to the restored device with its activation.
final class TransportSnapshotTests: XCTestCase {
    private func liveTransport(deviceState: [UInt8]) throws -> TransportUnderTest {
        let t = try TransportUnderTest(queues: 2)
        t.negotiate(VirtioFeature.version1 | VirtioFeature.eventIndex)
        t.setUpQueue(1, size: 64, base: 0x1_0000)
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        t.device.queueIndices = [nil, QueueIndices(nextAvailable: 3, nextUsed: 2)]
        t.device.deviceState = deviceState
        return t
    }

    func testTheDeviceStateGoesIntoTheSnapshotAndBackToTheDevice() throws {
        let fields = try liveTransport(deviceState: [3, 0]).transport.captureState()
        let restored = try TransportUnderTest(queues: 2)
        let pending = try XCTUnwrap(try restored.transport.restoreState(fields))
        XCTAssertEqual(pending.deviceState, [3, 0])
        XCTAssertEqual(pending.queues.map(\.resumeAt), [QueueIndices(nextAvailable: 3, nextUsed: 2)])
        try restored.transport.activate(pending)
        guard case .activate(_, _, let sent)? = restored.device.requests.last else { return XCTFail("no activation sent") }
        XCTAssertEqual(sent, [3, 0])
    }

    /// A device that keeps nothing writes no field, and a snapshot without one restores none.
    func testADeviceWithoutStateLeavesNoneInTheSnapshot() throws {
        let fields = try liveTransport(deviceState: []).transport.captureState()
        XCTAssertNil(fields.bytes(TransportStateTag.deviceState.rawValue))
        let pending = try XCTUnwrap(try TransportUnderTest(queues: 2).transport.restoreState(fields))
        XCTAssertEqual(pending.deviceState, [])
    }
}

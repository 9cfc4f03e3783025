import BlockDeviceShape
import IPC
import LinuxSystem
import Logging
import XCTest
@testable import BlockDevice

/// virtio-blk describes itself with the shape vmd wires it by: one declaration.
final class BlockDeviceShapeTests: XCTestCase {
    func testTheDescriptionAgreesWithTheDeclaredShape() throws {
        for queues in [1, 4, DeviceShape.maximumBlockQueues] {
            let backend = try RawFileBackend(file: try makeTemporaryImage(size: 1 << 20), readOnly: false)
            let model = try BlockDeviceModel(backend: backend, queueCount: queues)
            let device = try BlockVirtioDevice(model: model, guestLog: RateLimitedLog(logger: Logger(label: "test")))
            XCTAssertTrue(DeviceShape.block(queues: queues).matches(device.description), "\(device.description)")
            XCTAssertEqual(Int(device.description.queueCount), queues)
        }
    }

    /// One queue per vCPU, as vmd asks for it, within what a disk may have.
    func testTheQueueCountFollowsTheVCPUsUpToTheLimit() {
        XCTAssertEqual(DeviceShape.block(queues: 1).queueCount, 1)
        XCTAssertEqual(DeviceShape.block(queues: 4).queueCount, 4)
        XCTAssertEqual(DeviceShape.block(queues: 64).queueCount, UInt16(DeviceShape.maximumBlockQueues))
        XCTAssertEqual(DeviceShape.block(queues: 0).queueCount, 1)
    }

    /// A queue count outside 1...16 from a peer is refused, not trusted.
    func testAQueueCountOutsideTheLimitIsRefused() throws {
        let backend = try RawFileBackend(file: try makeTemporaryImage(size: 1 << 20), readOnly: false)
        for queues in [0, DeviceShape.maximumBlockQueues + 1] {
            XCTAssertThrowsError(try BlockDeviceModel(backend: backend, queueCount: queues)) {
                XCTAssertEqual($0 as? BlockDeviceConfigurationError, .queueCount(queues))
            }
        }
    }
}

import BlockDeviceShape
import IPC
import LinuxSystem
import Logging
import XCTest
@testable import BlockDevice

/// virtio-blk describes itself with the shape vmd wires it by: one declaration.
final class BlockDeviceShapeTests: XCTestCase {
    func testTheDescriptionAgreesWithTheDeclaredShape() throws {
        let model = try BlockDeviceModel(backend: RawFileBackend(file: try makeTemporaryImage(size: 1 << 20), readOnly: false))
        let device = try BlockVirtioDevice(model: model, guestLog: RateLimitedLog(logger: Logger(label: "test")))
        XCTAssertTrue(DeviceShape.block.matches(device.description), "\(device.description)")
        XCTAssertEqual(DeviceShape.block.queueCount, 1)
    }
}

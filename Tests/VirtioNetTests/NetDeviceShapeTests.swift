import IPC
import LinuxSystem
import Logging
import XCTest
@testable import NetDevice
import NetDeviceShape

/// virtio-net describes itself with the shape vmd wires it by: one declaration.
final class NetDeviceShapeTests: XCTestCase {
    func testTheDescriptionAgreesWithTheDeclaredShape() throws {
        let rig = try NetRig()
        XCTAssertTrue(DeviceShape.network(queuePairs: 1).matches(rig.device.description), "\(rig.device.description)")
        XCTAssertEqual(DeviceShape.network(queuePairs: 1).queueCount, 3, "a pair and the control queue")
    }
}

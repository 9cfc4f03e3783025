import CLinux
import Foundation
import LinuxSystem
import XCTest
@testable import VMDaemon

/// The tap's offload probe: TUNSETOFFLOAD refuses a whole set for one flag it does not know
/// (as a kernel before 6.2 refuses TUN_F_USO*), so vmd tries its sets best first and keeps
/// the first one taken.
final class TapDeviceTests: XCTestCase {
    private func requireTapCreation() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/net/tun") else {
            print("SKIP: creating a tap needs root and /dev/net/tun")
            throw XCTSkip("creating a tap needs root and /dev/net/tun")
        }
    }

    func testAnOffloadSetTheKernelRefusesFallsBackToTheNext() throws {
        try requireTapCreation()
        // 0x8000 is no TUN_F_* flag: every kernel refuses a set with it.
        let tso = VMD_TUN_F_CSUM | VMD_TUN_F_TSO4 | VMD_TUN_F_TSO6
        let (tap, accepted) = try TapDevice.create(name: nil, offloads: [tso | 0x8000, tso])
        XCTAssertFalse(tap.name.isEmpty)
        XCTAssertEqual(accepted, tso)
        let (_, none) = try TapDevice.create(name: nil, offloads: [0x8000])
        XCTAssertEqual(none, 0, "nothing taken: no offloads offered")
    }

    func testVmdsOwnSetsFindUSOOnLinux62AndLater() throws {
        try requireTapCreation()
        let (_, accepted) = try TapDevice.create(name: nil, offloads: VMLauncher.tapOffloads)
        let release = KernelRelease.current
        let uso = VMD_TUN_F_USO4 | VMD_TUN_F_USO6
        if release.isAtLeast(6, 2) {
            XCTAssertEqual(accepted & uso, uso, "Linux \(release) takes USO on a tap")
        } else {
            XCTAssertEqual(accepted & uso, 0, "Linux \(release) has no USO on a tap")
        }
        XCTAssertNotEqual(accepted & VMD_TUN_F_TSO4, 0)
    }
}

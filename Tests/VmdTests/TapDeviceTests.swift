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

    /// The transmit queues the kernel has for the tap: one per attached queue (tun.c sets
    /// the real number of queues to the attached ones; sysfs lists them).
    private func attachedQueues(_ name: String) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(name)/queues").filter { $0.hasPrefix("tx-") }.count
    }

    /// A NIC of four queue pairs: four descriptors on one IFF_MULTI_QUEUE tap, all but the
    /// first detached before the device gets them, and each attached and detached again as
    /// virtio-net does for VQ_PAIRS_SET.
    func testAMultiQueueTapStartsWithItsFirstQueueAlone() throws {
        try requireTapCreation()
        let (tap, _) = try TapDevice.create(name: nil, offloads: VMLauncher.tapOffloads, queueCount: 4)
        XCTAssertEqual(tap.queues.count, 4)
        XCTAssertEqual(try attachedQueues(tap.name), 1, "only the first queue is attached")
        try TapQueue.setAttached(tap.queues[1], true)
        try TapQueue.setAttached(tap.queues[3], true)
        XCTAssertEqual(try attachedQueues(tap.name), 3)
        try TapQueue.setAttached(tap.queues[3], false)
        XCTAssertEqual(try attachedQueues(tap.name), 2)
        // Nothing is queued to a detached queue: it reads as empty.
        var byte: UInt8 = 0
        XCTAssertEqual(read(tap.queues[3].rawValue, &byte, 1), -1)
        XCTAssertEqual(errno, EAGAIN)
        XCTAssertThrowsError(try TapQueue.setAttached(tap.queues[3], false), "detached twice")
    }

    /// The host end of a `local interface` takes the address vmd gives it.
    func testATapTakesTheAddressItIsGiven() throws {
        try requireTapCreation()
        let (tap, _) = try TapDevice.create(name: nil, offloads: [], queueCount: 2)
        try tap.setHardwareAddress([0xFA, 0xE1, 0xBA, 0x01, 0x02, 0x03])
        let address = try String(contentsOfFile: "/sys/class/net/\(tap.name)/address", encoding: .utf8)
        XCTAssertEqual(address.trimmingCharacters(in: .whitespacesAndNewlines), "fa:e1:ba:01:02:03")
    }

    /// A tap made beforehand without IFF_MULTI_QUEUE (`ip tuntap add`) is used as it is, with
    /// one queue, instead of refusing the VM.
    func testANamedSingleQueueTapIsTakenWithOneQueue() throws {
        try requireTapCreation()
        let name = "vmdsq\(getpid() % 10000)"
        guard VmdTestCommand.run(["/usr/sbin/ip", "tuntap", "add", "name", name, "mode", "tap", "vnet_hdr"]) == 0 else {
            throw XCTSkip("ip tuntap add failed")
        }
        defer { _ = VmdTestCommand.run(["/usr/sbin/ip", "tuntap", "del", "name", name, "mode", "tap"]) }
        let (tap, _) = try TapDevice.create(name: name, offloads: VMLauncher.tapOffloads, queueCount: 4)
        XCTAssertEqual(tap.name, name)
        XCTAssertEqual(tap.queues.count, 1)
    }
}

/// Runs a command and returns its exit status.
enum VmdTestCommand {
    static func run(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

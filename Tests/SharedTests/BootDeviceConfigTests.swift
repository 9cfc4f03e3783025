import Foundation
import XCTest
@testable import Configuration

/// `boot device disk` and `firmware` in a vm block (vm.conf(5)): the BIOS boots the
/// first disk, so the block needs a disk and takes no kernel command line or initrd.
final class BootDeviceConfigTests: XCTestCase {
    func testBootDeviceDiskNeedsNoKernel() throws {
        let vm = try XCTUnwrap(ConfigTestSupport.parse("vm \"d\" {\n  boot device disk\n  disk \"/d.img\"\n}\n").vms.first)
        XCTAssertEqual(vm.bootDevice, .disk)
        XCTAssertNil(vm.boot)
        XCTAssertNil(vm.firmware, "nil is Debian's SeaBIOS")
        let own = try XCTUnwrap(ConfigTestSupport.parse("vm \"d\" {\n  boot device disk\n  disk \"/d.img\"\n  firmware \"bios.bin\"\n}\n").vms.first)
        XCTAssertEqual(own.firmware, "bios.bin")
        XCTAssertNotEqual(vm, own, "the firmware is part of the VM's value")
        let kernel = try XCTUnwrap(ConfigTestSupport.parse("vm \"k\" { boot \"device\" }\n").vms.first)
        XCTAssertEqual(kernel.boot, "device", "a quoted path named device is a kernel")
        XCTAssertNil(kernel.bootDevice)
    }

    func testOnlyDiskIsABootDevice() {
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device cdrom\n  disk \"/d.img\"\n}\n", 2, 15,
                                      "boot device cdrom: swift-vmd has no CD-ROM drive; the one supported is 'disk'")
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device net\n}\n", 2, 15,
                                      "boot device net: swift-vmd has no network boot ROM; the one supported is 'disk'")
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device floppy\n}\n", 2, 15, "boot device floppy: not a boot device")
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device\n}\n", 2, 14, "expected 'disk' after 'boot device', found end of line")
    }

    func testBootDeviceDiskNeedsADiskAndNoKernelOptions() {
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device disk\n}\n", 2, 3, "boot device disk needs a disk")
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device disk\n  disk \"/d.img\"\n  cmdline \"quiet\"\n}\n", 4, 3,
                                      "'cmdline' needs a kernel to boot; with boot device disk the disk's boot loader chooses it")
        ConfigTestSupport.assertError("vm \"d\" {\n  disk \"/d.img\"\n  initrd \"i\"\n  boot device disk\n}\n", 3, 3, "'initrd' needs a kernel")
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device disk\n  boot \"k\"\n  disk \"/d.img\"\n}\n", 3, 3, "'boot' given twice")
        ConfigTestSupport.assertError("vm \"k\" {\n  boot \"k\"\n  firmware \"bios.bin\"\n}\n", 3, 3, "'firmware' is for boot device disk")
        ConfigTestSupport.assertError("vm \"d\" {\n  boot device disk\n  disk \"/d.img\"\n  firmware\n}\n", 4, 11,
                                      "expected a BIOS image path after 'firmware'")
    }
}

/// The example configurations the README points at parse as they are shipped.
final class ExampleConfigTests: XCTestCase {
    func testEveryExampleParses() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples")
        let names = try FileManager.default.contentsOfDirectory(atPath: examples.path).filter { $0.hasSuffix(".conf") }.sorted()
        XCTAssertEqual(names, ["debian.conf", "guest.conf"])
        for name in names {
            let text = try String(contentsOf: examples.appendingPathComponent(name), encoding: .utf8)
            XCTAssertEqual(try ConfigTestSupport.parse(text).vms.count, 1, name)
        }
        let debian = try ConfigTestSupport.parse(String(contentsOf: examples.appendingPathComponent("debian.conf"), encoding: .utf8))
        XCTAssertEqual(debian.vms.first?.bootDevice, .disk)
    }
}

import Foundation
import Glibc
import XCTest

/// `boot device disk` on this host: SeaBIOS (Debian's, at the reset vector) finds the
/// virtio-blk disk and runs its boot sector. The boot sector reads the disk's second
/// sector through the BIOS (int 13h, served by SeaBIOS's virtio driver and our device
/// process), prints it on COM1 and ends the VM through the debug-exit port. A Linux
/// system booted this way is proven in the nested rig (NestedRigTests), as this host's
/// KVM cannot run the boot loader's protected-mode code.
final class FirmwareBootTests: XCTestCase {
    static let bios = "/usr/share/seabios/bios-256k.bin"

    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
        guard FileManager.default.fileExists(atPath: Self.bios) else {
            print("SKIP: \(Self.bios) is missing (Debian's seabios package; scripts/setup installs it)")
            throw XCTSkip("SeaBIOS is missing")
        }
    }

    /// 16-bit code at 0:7C00: read LBA 1 (CHS 0/0/2) to 0:8000 with int 13h on the drive
    /// the BIOS passed in DL, print it up to its NUL on COM1, exit with 42 (7 if the read failed).
    static let bootSector: [UInt8] = [
        0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0, 0xBC, 0x00, 0x7C,  // cli; ds = es = ss = 0; sp = 7C00
        0xBB, 0x00, 0x80, 0xB8, 0x01, 0x02, 0xB9, 0x02, 0x00, 0x30, 0xF6,        // bx = 8000; ah = 2, al = 1; cx = 2; dh = 0
        0xCD, 0x13, 0x72, 0x13,                                                  // int 13h; jc fail
        0xBE, 0x00, 0x80,                                                        // si = 8000
        0xAC, 0x84, 0xC0, 0x74, 0x06, 0xBA, 0xF8, 0x03, 0xEE, 0xEB, 0xF5,        // print: lodsb; jz done; out 3F8, al; jmp print
        0xB0, 0x2A, 0xE6, 0xF4, 0xF4,                                            // done: out F4, 42; hlt
        0xB0, 0x07, 0xE6, 0xF4, 0xF4,                                            // fail: out F4, 7; hlt
    ]

    func testSeaBIOSBootsTheDisksBootSectorWhichReadsTheDiskThroughTheBIOS() throws {
        let vm = try VmdHarness("firmware")
        var image = [UInt8](repeating: 0, count: 1 << 20)
        image.replaceSubrange(0..<Self.bootSector.count, with: Self.bootSector)
        image[510] = 0x55
        image[511] = 0xAA
        let message = Array("read from LBA 1 through int 13h\r\n".utf8)
        image.replaceSubrange(512..<(512 + message.count), with: message)
        let disk = vm.directory.appendingPathComponent("boot.img").path
        try Data(image).write(to: URL(fileURLWithPath: disk))
        let config = vm.directory.appendingPathComponent("guest.conf").path
        try "vm \"\(vm.name)\" {\n    memory 64M\n    cpus 2\n    boot device disk\n    disk \"\(disk)\"\n}\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let run = try vm.run(config: config, arguments: ["--deadline", "60"], seconds: 90)
        XCTAssertEqual(run.status, 42, "the boot sector's exit code; stderr: \(run.stderr)\nstdout: \(run.stdout)")
        XCTAssertTrue(run.stdout.contains("SeaBIOS (version"), "SeaBIOS's banner reaches the console (its serial console): \(run.stdout)")
        XCTAssertTrue(run.stdout.contains("Booting from Hard Disk"), run.stdout)
        XCTAssertTrue(run.stdout.contains("read from LBA 1 through int 13h"), run.stdout)
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    func testADiskWithoutABootSectorIsReportedOnTheConsole() throws {
        let vm = try VmdHarness("nobootsector")
        let disk = vm.directory.appendingPathComponent("blank.img").path
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: disk))
        let config = vm.directory.appendingPathComponent("guest.conf").path
        try "vm \"\(vm.name)\" {\n    memory 64M\n    boot device disk\n    disk \"\(disk)\"\n}\n".write(toFile: config, atomically: true, encoding: .utf8)
        // SeaBIOS says so, then waits 60 s to retry; the deadline ends the VM first.
        let run = try vm.run(config: config, arguments: ["--deadline", "8"], seconds: 30)
        XCTAssertTrue(run.stdout.contains("Boot failed: not a bootable disk"), run.stdout)
        XCTAssertTrue(run.stdout.contains("No bootable device."), run.stdout)
        XCTAssertEqual(run.status, 66, "ended by the deadline: \(run.stderr)")
    }
}

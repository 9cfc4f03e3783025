import Glibc
import GuestRAM
import IPC
import LinuxSystem
import Logging
import MemorySlots
import XCTest
@testable import VMCore

/// What building a VM to restore into reads: the snapshot holds the kernel (in RAM), so the
/// boot image must not be read. It was, whole, on every restore: a page fault per 4 KiB of
/// bzImage on the restore's critical path.
final class VirtualMachineRestoreTests: XCTestCase {
    /// A boot image that cannot be read (open for writing only): a restore builds its VM
    /// without it, a boot refuses it.
    func testARestoreDoesNotReadTheBootImage() throws {
        let path = "/tmp/vm-restore-image-\(getpid())"
        defer { unlink(path) }
        let unreadable = try FileDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        XCTAssertNoThrow(try unreadable.writeAll([UInt8](repeating: 0x90, count: 8192)))
        let console = try FileDescriptor.open("/dev/null", flags: O_RDWR)
        let request = BootRequest(name: "restore-test", vcpus: 1, cmdline: "")

        for restoring in [true, false] {
            let memory = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
            let prepared = try PreparedKVM(kvmDevice: try openKVMDeviceOrSkip(), memory: memory)
            let build = {
                try VirtualMachine(request: request, memory: memory, prepared: prepared, kernel: unreadable, initrd: nil,
                                   console: console, devices: [], restoring: restoring, logger: Logger(label: "test"))
            }
            if restoring {
                XCTAssertNoThrow(try build(), "a restore read the boot image")
            } else {
                XCTAssertThrowsError(try build(), "a boot read an image open for writing only")
            }
        }
    }
}

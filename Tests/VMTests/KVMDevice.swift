import Glibc
import LinuxSystem
import XCTest

/// /dev/kvm opened for a test, or the test skipped (with the reason printed) where the host has none.
func openKVMDeviceOrSkip() throws -> FileDescriptor {
    guard access("/dev/kvm", R_OK | W_OK) == 0 else {
        print("SKIP: /dev/kvm is not available on this host")
        throw XCTSkip("needs /dev/kvm")
    }
    return try FileDescriptor.open("/dev/kvm", flags: O_RDWR)
}

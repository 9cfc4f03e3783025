import CLinux
import LinuxSystem

/// The one place vm issues ioctls: retried on EINTR, errno kept in the error.
@discardableResult
func kvmIoctl(_ fd: FileDescriptor, _ request: UInt, _ name: String, _ argument: UnsafeMutableRawPointer?) throws -> Int32 {
    try retryingInterrupts(name) { vmd_ioctl_ptr(fd.rawValue, request, argument) }
}

@discardableResult
func kvmIoctl(_ fd: FileDescriptor, _ request: UInt, _ name: String, value: UInt = 0) throws -> Int32 {
    try retryingInterrupts(name) { vmd_ioctl_int(fd.rawValue, request, value) }
}

/// Passes a plain C struct to an ioctl by pointer.
@discardableResult
func kvmIoctl<Argument>(_ fd: FileDescriptor, _ request: UInt, _ name: String, _ argument: inout Argument) throws -> Int32 {
    // SAFETY: the request's _IOC size is that of `Argument` (each caller passes the struct the
    // ioctl is defined with; CKVM asserts the mirrored layouts), valid for the call.
    try withUnsafeMutablePointer(to: &argument) { try kvmIoctl(fd, request, name, UnsafeMutableRawPointer($0)) }
}

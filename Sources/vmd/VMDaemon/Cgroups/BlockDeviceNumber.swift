import Glibc
import LinuxSystem

/// A block device's number, major:minor, as io.max names it.
struct BlockDeviceNumber: Hashable, CustomStringConvertible {
    let major: UInt32
    let minor: UInt32
    var description: String { "\(major):\(minor)" }

    /// The whole disk an open image is on (a block device itself, or the device holding
    /// its file system): io.max takes disks, not partitions. nil for a file system on no
    /// block device (tmpfs, overlayfs, NFS: major 0).
    init?(holding file: FileDescriptor) {
        var status = stat()
        guard fstat(file.rawValue, &status) == 0 else { return nil }
        let device = status.st_mode & S_IFMT == S_IFBLK ? status.st_rdev : status.st_dev
        // glibc's encoding of dev_t (gnu_dev_major and gnu_dev_minor, macros Swift does not see).
        let major = UInt32(truncatingIfNeeded: ((device >> 8) & 0xFFF) | ((device >> 32) & ~0xFFF))
        let minor = UInt32(truncatingIfNeeded: (device & 0xFF) | ((device >> 12) & ~0xFF))
        var number = BlockDeviceNumber(major: major, minor: minor)
        guard number.major != 0 else { return nil }
        // A partition's sysfs directory is inside its disk's, which has the disk's number.
        let sysfs = "/sys/dev/block/\(number)"
        if access(sysfs + "/partition", F_OK) == 0, let parent = CgroupFiles.read(sysfs + "/../dev") {
            let parts = parent.split(whereSeparator: \.isWhitespace).first?.split(separator: ":") ?? []
            if parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) {
                number = BlockDeviceNumber(major: major, minor: minor)
            }
        }
        self = number
    }

    init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }
}

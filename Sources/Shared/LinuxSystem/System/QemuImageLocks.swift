import CLinux
import Glibc

/// QEMU's image locking (block/file-posix.c), so that QEMU and qemu-img see a disk a VM
/// here uses as in use, and vmd sees one they use: open file description (OFD) read locks
/// on single bytes of the image, 100 + each permission a user of the image takes, 200 +
/// each it does not let others take. vmd's flock keeps two VMs here apart; QEMU neither
/// takes nor sees flock. The locks belong to the open file that vmd hands the device
/// process, so they last as long as that process has the image open. vmctl create takes
/// them on its input as qemu-img convert does, so it copies no image being written.
public enum QemuImageLocks {
    /// QEMU's permission bits (BLK_PERM_*) that a disk here takes or withholds.
    enum Permission: Int, CaseIterable {
        case consistentRead = 0, write = 1, resize = 3

        var doing: String {
            switch self {
            case .consistentRead: "reads it"
            case .write: "writes it"
            case .resize: "may resize it"
            }
        }
    }
    static let takenBase: off_t = 100, withheldBase: off_t = 200

    public struct Conflict: Error, CustomStringConvertible {
        public let description: String
    }

    /// What a disk here takes: reading, and writing and growing (a qcow2 image grows) if
    /// it is writable. What it withholds, read-only or not, as QEMU does: writing and
    /// resizing (a read-only disk or a backing file must not change under the guest).
    static func permissions(writable: Bool) -> (taken: [Permission], withheld: [Permission]) {
        (writable ? [.consistentRead, .write, .resize] : [.consistentRead], [.write, .resize])
    }

    /// Checks that no other program holds a lock that conflicts with this use, then takes
    /// the locks. A file system without OFD locks gets none, as QEMU then does.
    public static func take(_ fd: FileDescriptor, writable: Bool) throws(Conflict) {
        let (taken, withheld) = permissions(writable: writable)
        for permission in taken where isLocked(fd, withheldBase + off_t(permission.rawValue)) {
            throw Conflict(description: "another program (QEMU or qemu-img) has it open and does not let others: it \(permission.doing)")
        }
        for permission in withheld where isLocked(fd, takenBase + off_t(permission.rawValue)) {
            throw Conflict(description: "another program (QEMU or qemu-img) has it open and \(permission.doing)")
        }
        for byte in taken.map({ takenBase + off_t($0.rawValue) }) + withheld.map({ withheldBase + off_t($0.rawValue) }) {
            // Checking and locking are two steps, as in QEMU: two programs starting at the
            // same instant could both get in. A failure here leaves the disk unlocked for QEMU.
            _ = vmd_ofd_read_lock_byte(fd.rawValue, byte)
        }
    }

    private static func isLocked(_ fd: FileDescriptor, _ byte: off_t) -> Bool {
        vmd_ofd_byte_is_locked(fd.rawValue, byte) == 1
    }
}

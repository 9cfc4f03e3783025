import CLinux
import Glibc
import Configuration
import LinuxSystem

/// A disk image opened by vmd for one VM, locked so that no other VM opens it
/// for writing at the same time (a writable disk takes an exclusive lock, a
/// read-only one a shared lock, as flock(2) on the open file).
struct DiskImage {
    let config: DiskConfig
    let path: String
    let fd: FileDescriptor
    let sizeBytes: Int64

    enum OpenError: Error, CustomStringConvertible {
        case cannotOpen(DiskConfig, path: String, SystemError)
        case notADisk(DiskConfig, path: String, kind: String)
        case locked(DiskConfig, path: String)
        case notWholeSectors(DiskConfig, path: String, size: Int64)

        var description: String {
            switch self {
            case .cannotOpen(let disk, let path, let error):
                "\(disk.location): disk \(path): \(String(cString: strerror(error.errno)))"
            case .notADisk(let disk, let path, let kind):
                "\(disk.location): disk \(path) is \(kind); a disk is a regular file or a block device"
            case .locked(let disk, let path):
                "\(disk.location): disk \(path) is in use by another VM (locked)"
            case .notWholeSectors(let disk, let path, let size):
                "\(disk.location): disk \(path) is \(size) bytes, not a multiple of 512"
            }
        }
    }

    /// Opens the image as its VM will use it (read-only or read-write), checks that it is
    /// a regular file or a block device of whole sectors and, with `lock`, takes the lock.
    /// `vmd -n` calls it without the lock: the daemon's own VMs may hold it.
    static func open(_ config: DiskConfig, resolvedPath path: String, lock: Bool = true) throws -> DiskImage {
        let fd: FileDescriptor
        let info: stat
        do {
            (fd, info) = try RegularFile.open(path, flags: config.readOnly ? O_RDONLY : O_RDWR, allowed: [S_IFREG, S_IFBLK])
        } catch {
            switch error {
            case .system(let failure): throw OpenError.cannotOpen(config, path: path, failure)
            case .notRegular(let kind): throw OpenError.notADisk(config, path: path, kind: kind)
            case .tooLarge: preconditionFailure("open does not check sizes")
            }
        }
        if lock {
            let operation = (config.readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB
            if flock(fd.rawValue, operation) != 0 {
                if errno == EWOULDBLOCK { throw OpenError.locked(config, path: path) }
                throw OpenError.cannotOpen(config, path: path, SystemError.last("flock"))
            }
        }
        var size = Int64(info.st_size)
        if info.st_mode & S_IFMT == S_IFBLK {
            var bytes: UInt64 = 0
            guard vmd_ioctl_ptr(fd.rawValue, VMD_BLKGETSIZE64, &bytes) == 0 else {
                throw OpenError.cannotOpen(config, path: path, SystemError.last("ioctl(BLKGETSIZE64)"))
            }
            size = Int64(clamping: bytes)
        }
        guard size % 512 == 0 else { throw OpenError.notWholeSectors(config, path: path, size: size) }
        return DiskImage(config: config, path: path, fd: fd, sizeBytes: size)
    }
}

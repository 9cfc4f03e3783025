import Glibc
import Shared

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
        case locked(DiskConfig, path: String)
        case notWholeSectors(DiskConfig, path: String, size: Int64)

        var description: String {
            switch self {
            case .cannotOpen(let disk, let path, let error):
                "\(disk.location): disk \(path): \(String(cString: strerror(error.errno)))"
            case .locked(let disk, let path):
                "\(disk.location): disk \(path) is in use by another VM (locked)"
            case .notWholeSectors(let disk, let path, let size):
                "\(disk.location): disk \(path) is \(size) bytes, not a multiple of 512"
            }
        }
    }

    static func open(_ config: DiskConfig, resolvedPath path: String) throws -> DiskImage {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, flags: config.readOnly ? O_RDONLY : O_RDWR)
        } catch let error as SystemError {
            throw OpenError.cannotOpen(config, path: path, error)
        }
        let operation = (config.readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB
        if flock(fd.rawValue, operation) != 0 {
            if errno == EWOULDBLOCK { throw OpenError.locked(config, path: path) }
            throw OpenError.cannotOpen(config, path: path, SystemError.last("flock"))
        }
        let size = try fd.fileSize()
        guard size % 512 == 0 else { throw OpenError.notWholeSectors(config, path: path, size: size) }
        return DiskImage(config: config, path: path, fd: fd, sizeBytes: size)
    }
}

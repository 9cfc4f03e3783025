import CLinux
import Glibc

/// Opening and reading files named by a user or a configuration, where a path may
/// turn out to be a FIFO (open would block), a device (/dev/zero never ends), a
/// directory, or a file far larger than expected. Opened without blocking, checked
/// with fstat before anything is read, and read only up to a limit.
public enum RegularFile {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case system(SystemError)
        /// The kind of file it is instead ("a directory", "a FIFO", ...).
        case notRegular(kind: String)
        case tooLarge(size: Int64, limit: Int)

        public var description: String {
            switch self {
            case .system(let error): String(cString: strerror(error.errno))
            case .notRegular(let kind): "is \(kind), not a regular file"
            case .tooLarge(let size, let limit): "is \(size) bytes, more than the \(limit) accepted"
            }
        }
    }

    /// What `mode` (st_mode) says the file is, for messages.
    public static func kind(ofMode mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFLNK: "a symbolic link"
        default: "not a file"
        }
    }

    /// Opens `path` without blocking (a FIFO with no writer would hold the caller) and
    /// returns it with its fstat, having checked that its type is one of `allowed`.
    public static func open(_ path: String, flags: Int32 = O_RDONLY, allowed: Set<mode_t> = [S_IFREG]) throws(Failure) -> (FileDescriptor, stat) {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, flags: flags | O_NONBLOCK | O_NOCTTY)
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            preconditionFailure("FileDescriptor.open throws SystemError only")
        }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw .system(SystemError.last("fstat")) }
        guard allowed.contains(info.st_mode & S_IFMT) else { throw .notRegular(kind: kind(ofMode: info.st_mode)) }
        // Back to blocking I/O: O_NONBLOCK was only for the open itself.
        _ = vmd_fcntl_int(fd.rawValue, F_SETFL, vmd_fcntl_int(fd.rawValue, F_GETFL, 0) & ~O_NONBLOCK)
        return (fd, info)
    }

    /// The whole of a regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
        let (fd, info) = try open(path)
        guard info.st_size <= limit else { throw .tooLarge(size: Int64(info.st_size), limit: limit) }
        var contents: [UInt8] = []
        while true {
            // The file may grow while it is read: never past the limit.
            let chunk: [UInt8]
            do { chunk = try fd.read(upTo: min(65536, limit + 1 - contents.count)) } catch let error as SystemError {
                throw .system(error)
            } catch {
                preconditionFailure("FileDescriptor.read throws SystemError only")
            }
            if chunk.isEmpty { return contents }
            contents += chunk
            guard contents.count <= limit else { throw .tooLarge(size: Int64(contents.count), limit: limit) }
        }
    }
}

import CLinux
import Glibc
import Configuration
import DiskFormats
import IPC
import LinuxSystem

/// A disk image opened by vmd for one VM, locked so that no other VM opens it
/// for writing at the same time (a writable disk takes an exclusive lock, a
/// read-only one a shared lock, as flock(2) on the open file), nor QEMU or qemu-img
/// (`QemuImageLocks`, which also refuses an image one of them is using).
///
/// A qcow2 disk is a chain: vmd opens every backing image itself, read-only under a
/// shared lock, following each header's backing file name (relative to the image that
/// names it) and format (probed when the header does not say). A missing, locked,
/// looping or too deep chain is refused here, before anything starts. A raw disk is
/// never probed: whatever its first bytes say, the guest gets it as raw, so a guest
/// cannot turn its own disk into a qcow2 that points at host files. And vmd, which runs
/// as root, opens a backing file only if the owner of the image naming it could read it
/// (root's images name anything; a user's image names only files that user owns or that
/// everyone may read), so a user who can edit a qcow2 header cannot read /etc/shadow.
struct DiskImage {
    let config: DiskConfig
    let path: String
    let fd: FileDescriptor
    /// What the guest sees: the file's size for raw, the virtual size for qcow2.
    let sizeBytes: Int64
    /// The whole chain, top first (the top is `fd`), with each image's format.
    let chain: [(format: DiskImageFormat, path: String, fd: FileDescriptor)]

    enum OpenError: Error, CustomStringConvertible {
        case cannotOpen(DiskConfig, path: String, SystemError)
        case notADisk(DiskConfig, path: String, kind: String)
        case locked(DiskConfig, path: String)
        case notWholeSectors(DiskConfig, path: String, size: Int64)
        case image(DiskConfig, path: String, Qcow2Error)
        case refused(DiskConfig, path: String, String)

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
            case .image(let disk, let path, let error):
                "\(disk.location): disk \(path): \(error)"
            case .refused(let disk, let path, let problem):
                "\(disk.location): disk \(path): \(problem)"
            }
        }
    }

    /// Opens the image as its VM will use it (read-only or read-write), checks that it is
    /// a regular file or a block device of whole sectors and, with `lock`, takes the lock;
    /// for qcow2, the same for its whole backing chain. `vmd -n` calls it without the lock:
    /// the daemon's own VMs may hold it.
    static func open(_ config: DiskConfig, resolvedPath path: String, lock: Bool = true) throws -> DiskImage {
        var seen: Set<[UInt64]> = []
        let (fd, fileSize, topInfo) = try openOne(config, path: path, readOnly: config.readOnly, lock: lock, seen: &seen)
        guard config.format == .qcow2 else {
            guard fileSize % 512 == 0 else { throw OpenError.notWholeSectors(config, path: path, size: fileSize) }
            return DiskImage(config: config, path: path, fd: fd, sizeBytes: fileSize, chain: [(.raw, path, fd)])
        }
        var chain: [(format: DiskImageFormat, path: String, fd: FileDescriptor)] = [(.qcow2, path, fd)]
        var header = try readHeader(config, path: path, fd: fd, size: fileSize)
        let virtualSize = Int64(header.size)
        var current = path
        var currentOwner = topInfo.st_uid
        // An image's external data file comes right after it: written with it, read with it.
        func openDataFile(of header: Qcow2Header, readOnly: Bool) throws {
            guard let name = header.externalDataFile else { return }
            let dataPath = Qcow2Header.path(of: name, namedBy: current)
            let (dataFD, _, dataInfo) = try openOne(config, path: dataPath, readOnly: readOnly, lock: lock, seen: &seen, backingOf: current,
                                                    role: "external data file")
            try checkMayRead(dataPath, info: dataInfo, namedBy: current, owner: currentOwner, what: "external data file", disk: config, top: path)
            chain.append((.externalData, dataPath, dataFD))
        }
        try openDataFile(of: header, readOnly: config.readOnly)
        while let name = header.backingFile {
            guard chain.count < BlockDeviceSetup.maximumChainLength else {
                throw OpenError.refused(config, path: path, "the backing chain is deeper than \(BlockDeviceSetup.maximumChainLength) images")
            }
            let backingPath = Qcow2Header.path(of: name, namedBy: current)
            let (backingFD, backingSize, backingInfo) = try openOne(config, path: backingPath, readOnly: true, lock: lock, seen: &seen,
                                                                    backingOf: current)
            try checkMayRead(backingPath, info: backingInfo, namedBy: current, owner: currentOwner, what: "backing file", disk: config, top: path)
            let head = (try? readHead(backingFD)) ?? []
            let format: DiskImageFormat
            switch header.backingFormat {
            case "raw": format = .raw
            case "qcow2": format = .qcow2
            case nil: format = Qcow2Header.hasMagic(head) ? .qcow2 : .raw
            case let other?: throw OpenError.refused(config, path: path, "\(current) names a backing file of format \(other) (raw and qcow2 are supported)")
            }
            chain.append((format, backingPath, backingFD))
            guard format == .qcow2 else { break }
            header = try readHeader(config, path: backingPath, fd: backingFD, size: backingSize, head: head)
            current = backingPath
            currentOwner = backingInfo.st_uid
            try openDataFile(of: header, readOnly: true)
        }
        guard chain.count <= BlockDeviceSetup.maximumChainLength else {
            throw OpenError.refused(config, path: path, "the backing chain and its data files are more than \(BlockDeviceSetup.maximumChainLength) files")
        }
        return DiskImage(config: config, path: path, fd: fd, sizeBytes: virtualSize & ~511, chain: chain)
    }

    /// vmd runs as root: it opens a file an image names only if that image's owner could read it.
    private static func checkMayRead(_ file: String, info: stat, namedBy image: String, owner: uid_t, what: String,
                                     disk config: DiskConfig, top: String) throws {
        guard owner == 0 || info.st_uid == owner || info.st_mode & S_IROTH != 0 else {
            throw OpenError.refused(config, path: top, "\(image) (owned by uid \(owner)) names \(file) as its \(what), "
                                    + "which that user may not read; vmd does not open it for them")
        }
    }

    private static func readHeader(_ config: DiskConfig, path: String, fd: FileDescriptor, size: Int64, head: [UInt8]? = nil) throws -> Qcow2Header {
        do {
            let bytes = try head ?? readHead(fd)
            return try Qcow2Header(bytes: bytes, fileSize: UInt64(size))
        } catch let error as Qcow2Error {
            throw OpenError.image(config, path: path, error)
        } catch let error as SystemError {
            throw OpenError.cannotOpen(config, path: path, error)
        }
    }

    /// The image's first bytes, through an aligned buffer (the file may be open O_DIRECT).
    private static func readHead(_ fd: FileDescriptor) throws -> [UInt8] {
        let buffer = try AlignedBuffer(count: Qcow2Header.bytesNeeded)
        return buffer.bytes(0..<(try buffer.fill(from: fd, at: 0)))
    }

    /// One file of the disk: opened, checked to be a regular file or a block device that
    /// is not already in the chain (`seen`: device and inode), locked (shared when
    /// read-only) and measured.
    private static func openOne(_ config: DiskConfig, path: String, readOnly: Bool, lock: Bool, seen: inout Set<[UInt64]>,
                                backingOf parent: String? = nil, role: String = "backing file") throws -> (FileDescriptor, Int64, stat) {
        let fd: FileDescriptor
        let info: stat
        do {
            let direct = config.cache == .none ? VMD_O_DIRECT : 0
            (fd, info) = try RegularFile.open(path, flags: (readOnly ? O_RDONLY : O_RDWR) | direct, allowed: [S_IFREG, S_IFBLK])
        } catch {
            if let parent {
                throw OpenError.refused(config, path: path, "\(role) of \(parent): \(error)")
            }
            switch error {
            case .system(let failure) where failure.errno == EINVAL && config.cache == .none:
                throw OpenError.refused(config, path: path, "cache none: this filesystem does not take O_DIRECT; use cache writeback")
            case .system(let failure): throw OpenError.cannotOpen(config, path: path, failure)
            case .notRegular(let kind): throw OpenError.notADisk(config, path: path, kind: kind)
            case .tooLarge: preconditionFailure("open does not check sizes")
            }
        }
        guard seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else {
            throw OpenError.refused(config, path: path, "the backing chain loops: \(parent ?? path) names \(path) as its \(role), already in the chain")
        }
        if lock {
            let operation = (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB
            if flock(fd.rawValue, operation) != 0 {
                if errno == EWOULDBLOCK { throw OpenError.locked(config, path: path) }
                throw OpenError.cannotOpen(config, path: path, SystemError.last("flock"))
            }
            do {
                try QemuImageLocks.take(fd, writable: !readOnly)
            } catch {
                throw OpenError.refused(config, path: path, "in use: \(error)")
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
        if config.cache == .none { try checkDirectIO(config, path: path, fd: fd) }
        return (fd, size, info)
    }

    /// `cache none` needs 512-byte direct reads; a filesystem without O_DIRECT refuses the
    /// open (EINVAL), a 4 KiB-sector device refuses the read.
    private static func checkDirectIO(_ config: DiskConfig, path: String, fd: FileDescriptor) throws {
        do {
            _ = try AlignedBuffer(count: AlignedBuffer.sector).fill(from: fd, at: 0)
        } catch let error as SystemError {
            throw OpenError.refused(config, path: path, "cache none: 512-byte direct reads fail here (\(String(cString: strerror(error.errno)))); use cache writeback")
        }
    }

    /// For `vmd -n`: the header of a writable qcow2 disk, for what its device changes before
    /// the first write (persistent dirty bitmaps marked inconsistent, a dirty image's
    /// refcounts rebuilt). Nil for any other disk, or one that cannot be read.
    static func writableQcow2Header(_ config: DiskConfig, resolvedPath path: String) -> Qcow2Header? {
        guard config.format == .qcow2, !config.readOnly,
              let (fd, info) = try? RegularFile.open(path, flags: O_RDONLY, allowed: [S_IFREG, S_IFBLK]) else { return nil }
        return try? Qcow2Header(bytes: readHead(fd), fileSize: UInt64(max(0, info.st_size)))
    }

    /// For `vmd -n`: a raw disk whose first bytes are qcow2's magic is still given to the
    /// guest as raw; say so, as the user may have meant `format qcow2`.
    static func rawLooksLikeQcow2(_ config: DiskConfig, resolvedPath path: String) -> Bool {
        guard config.format == .raw, let (fd, _) = try? RegularFile.open(path, flags: O_RDONLY, allowed: [S_IFREG, S_IFBLK]) else { return false }
        return Qcow2Header.hasMagic((try? fd.pread(count: 4, offset: 0)) ?? [])
    }
}

import BlockDevice
import DiskFormats
import Glibc
import IPC
import LinuxSystem

/// An existing image and every file it reads through, as `vmctl create` reads an input or
/// a base: a qcow2 image's external data file and backing files down the chain, each named
/// relative to the image that names it and opened read-only, as vmd opens a disk's chain
/// (the format the header gives, else probed; at most `BlockDeviceSetup.maximumChainLength`
/// files; a loop refused). vmctl runs as its user, whose permissions are the only rule.
struct ImageChain {
    /// Top first.
    let formats: [DiskImageFormat]
    let files: [FileDescriptor]
    var format: DiskImageFormat { formats[0] }

    /// What the chain reads as (read-only).
    func backend() throws -> BlockBackend {
        try BlockBackendChain.open(formats: formats, images: files, readOnly: true)
    }

    /// Opens `path` and, for qcow2 (by its magic), the files it names; `role` names it in errors.
    static func open(_ path: String, role: String) throws -> ImageChain {
        var seen: Set<[UInt64]> = []
        var formats: [DiskImageFormat] = [], files: [FileDescriptor] = []
        var current = path, namedBy: String?, format: DiskImageFormat?
        while true {
            guard files.count < BlockDeviceSetup.maximumChainLength else {
                throw VmctlError("\(role) \(path): the backing chain is deeper than \(BlockDeviceSetup.maximumChainLength) files")
            }
            let (file, head) = try openOne(current, role: namedBy.map { "\(role) \(path): backing file \(current) of \($0)" } ?? "\(role) \(path)", seen: &seen)
            let kind = format ?? (Qcow2Header.hasMagic(head) ? .qcow2 : .raw)
            formats.append(kind)
            files.append(file)
            guard kind == .qcow2 else { break }
            let header: Qcow2Header
            do {
                // lseek, not fstat: st_size is 0 for a block device.
                header = try Qcow2Header(bytes: head, fileSize: UInt64(try retryingInterrupts("lseek(SEEK_END)") { lseek(file.rawValue, 0, SEEK_END) }))
            } catch {
                throw VmctlError("\(role) \(path): \(current): \(error)")
            }
            if let name = header.externalDataFile {
                let dataPath = Qcow2Header.path(of: name, namedBy: current)
                let (dataFile, _) = try openOne(dataPath, role: "\(role) \(path): external data file \(dataPath) of \(current)", seen: &seen)
                formats.append(.externalData)
                files.append(dataFile)
            }
            guard let backing = header.backingFile else { break }
            switch header.backingFormat {
            case "raw": format = .raw
            case "qcow2": format = .qcow2
            case nil: format = nil
            case let other?: throw VmctlError("\(role) \(path): \(current) names a backing file of format \(other) (raw and qcow2 are supported)")
            }
            namedBy = current
            current = Qcow2Header.path(of: backing, namedBy: current)
        }
        guard files.count <= BlockDeviceSetup.maximumChainLength else {
            throw VmctlError("\(role) \(path): the backing chain and its data files are more than \(BlockDeviceSetup.maximumChainLength) files")
        }
        return ImageChain(formats: formats, files: files)
    }

    /// One file of the chain, read-only, with its first bytes; not one seen already.
    private static func openOne(_ path: String, role: String, seen: inout Set<[UInt64]>) throws -> (FileDescriptor, [UInt8]) {
        let (file, info): (FileDescriptor, stat)
        do {
            (file, info) = try RegularFile.open(path, allowed: [S_IFREG, S_IFBLK])
        } catch {
            throw VmctlError("\(role): \(error)")
        }
        guard seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else {
            throw VmctlError("\(role): the backing chain loops (it is already in the chain)")
        }
        // Not while a VM (ours or QEMU's) writes it, as qemu-img convert refuses: the copy
        // would mix states. Held until vmctl exits, so none starts writing it meanwhile.
        do {
            try QemuImageLocks.take(file, writable: false)
        } catch {
            throw VmctlError("\(role): in use: \(error)")
        }
        do {
            return (file, try file.pread(count: Qcow2Header.bytesNeeded, offset: 0))
        } catch {
            throw VmctlError("\(role): \(error)")
        }
    }
}

import ArgumentParser
import BlockDevice
import Configuration
import DiskFormats
import Glibc
import LinuxSystem

/// `vmctl create [-s size] [-b base | -i input] disk`, as OpenBSD's vmctl(8): the format
/// follows the name (`.qcow2` is qcow2, anything else raw). Without -b or -i it makes an
/// empty image (raw: a sparse file); -b makes a qcow2 overlay on a base image (raw or
/// qcow2), whose size it takes unless -s says more; -i copies a raw or qcow2 image into
/// the new one, skipping zeros so the result stays sparse.
struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a disk image: empty, a qcow2 overlay on a base (-b), or a copy of an image (-i).",
        discussion: "The format follows the name: .qcow2 is qcow2 (version 3, 64 KiB clusters), anything else raw (sparse).")
    @Option(name: .customShort("s"), help: "Size, e.g. 10G, 1.5T or 512M (K to E suffixes; a multiple of 512); by default that of the base or the input.")
    var size: String?
    @Option(name: .customShort("b"), help: "For a qcow2 image: the base it reads through to, unchanged (stored as given).")
    var base: String?
    @Option(name: .customShort("i"), help: "An image (raw, or qcow2 read through its backing chain) to copy into the new one.")
    var input: String?
    @Argument(help: "The image to create; it must not exist.") var path: String

    func run() throws {
        try perform {
            let qcow2 = path.hasSuffix(".qcow2")
            guard base == nil || input == nil else { throw VmctlError("-b and -i exclude each other") }
            guard base == nil || qcow2 else { throw VmctlError("-b needs a qcow2 image (a name ending in .qcow2): a raw image has no base") }
            let source = try input.map { try ImageSource(path: $0, role: "input") }
            // The base is opened where the new image will find it: a relative name is stored
            // as given and taken relative to the image (as qemu-img create -b does).
            let backing = try base.map { try ImageSource(path: $0, role: "base", relativeTo: path) }
            let bytes: UInt64
            if let size {
                guard let parsed = parseByteSize(size), parsed > 0, parsed % 512 == 0 else {
                    throw VmctlError("invalid size \(size): expected a multiple of 512 bytes such as 10G")
                }
                bytes = parsed
            } else if let known = source?.backend.capacityBytes ?? backing?.backend.capacityBytes {
                bytes = known
            } else {
                throw VmctlError("give the size with -s (or a base with -b, or an input with -i)")
            }
            for (role, image) in [("base", backing), ("input", source)] {
                if let image, bytes < image.backend.capacityBytes {
                    throw VmctlError("-s \(size ?? "") is smaller than the \(role) (\(image.backend.capacityBytes) bytes)")
                }
            }
            let file: FileDescriptor
            do {
                file = try FileDescriptor.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
            } catch let error as SystemError {
                throw VmctlError("\(path): \(String(cString: strerror(error.errno)))")
            }
            do {
                let target: BlockBackend
                if qcow2 {
                    let initial = try Qcow2Creation.initialBytes(size: bytes, backing: backing.map { ($0.path, $0.format) })
                    try file.pwriteAll(initial, offset: 0)
                    target = try Qcow2Backend(file: file, readOnly: false, backing: backing?.backend)
                } else {
                    try retryingInterrupts("ftruncate") { ftruncate(file.rawValue, off_t(bytes)) }
                    target = try RawFileBackend(file: file, readOnly: false)
                }
                if let source { try copy(from: source.backend, to: target) }
                try target.flush()
            } catch {
                unlink(path)
                throw VmctlError("\(path): \(error)")
            }
            let kind = qcow2 ? "qcow2" : "raw"
            print("vmctl: \(kind) imagefile created\(backing.map { " over \($0.path)" } ?? "")\(source.map { " from \($0.path)" } ?? "")")
        }
    }

    /// Copies what `source` holds into `target`, 1 MiB at a time, leaving zero runs unwritten.
    private func copy(from source: BlockBackend, to target: BlockBackend) throws {
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        var offset: UInt64 = 0
        let end = min(source.capacityBytes, target.capacityBytes)
        while offset < end {
            let count = Int(min(UInt64(chunk), end - offset))
            try buffer.withUnsafeMutableBytes { raw in
                // SAFETY: the iovec names this buffer for the read and the write below.
                var vectors = [iovec(iov_base: raw.baseAddress, iov_len: count)]
                try source.read(into: &vectors, at: offset)
                if !raw.prefix(count).allSatisfy({ $0 == 0 }) {
                    vectors = [iovec(iov_base: raw.baseAddress, iov_len: count)]
                    try target.write(from: &vectors, at: offset)
                }
            }
            offset += UInt64(count)
        }
    }
}

/// An existing image `create` uses: an input (raw or qcow2, read whole through its chain)
/// or a base (raw or qcow2, of which only the size and format are needed).
private struct ImageSource {
    let path: String
    let format: String
    let backend: BlockBackend

    /// `relativeTo`: an image whose directory a relative `path` is taken from.
    init(path: String, role: String, relativeTo image: String? = nil) throws {
        let chain = try ImageChain.open(image.map { Qcow2Header.path(of: path, namedBy: $0) } ?? path, role: role)
        self.path = path
        format = chain.format == .qcow2 ? "qcow2" : "raw"
        do {
            backend = try chain.backend()
        } catch {
            throw VmctlError("\(role) \(path): \(error)")
        }
    }
}

import IPC
import LinuxSystem

/// A disk's backend built from its chain of files, top first, as vmd opened them: each
/// image reads through to the one below, and only the top may be written. An external
/// data file comes right after its qcow2 image, and is no layer of its own. The device
/// serves a disk through it; vmctl create reads an input through it.
package enum BlockBackendChain {
    package static func open(formats: [DiskImageFormat], images: [FileDescriptor], readOnly: Bool) throws -> BlockBackend {
        guard formats.count == images.count else { throw IPCError.malformed("\(formats.count) formats for \(images.count) files") }
        var below: BlockBackend?
        var dataFile: FileDescriptor?
        for (depth, (format, file)) in zip(formats, images).enumerated().reversed() {
            let readOnly = depth > 0 || readOnly
            guard dataFile == nil || format == .qcow2 else { throw IPCError.malformed("an external data file below a \(format) image") }
            switch format {
            case .raw: below = try RawFileBackend(file: file, readOnly: readOnly)
            case .qcow2:
                below = try Qcow2Backend(file: file, readOnly: readOnly, backing: below, dataFile: dataFile)
                dataFile = nil
            case .externalData: dataFile = file
            }
        }
        guard dataFile == nil, let top = below else { throw IPCError.malformed("a disk without images, or a data file without its image") }
        return top
    }
}

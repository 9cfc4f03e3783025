import LinuxSystem

/// vmd → pager (a lazy restore's fault handler, `vm --pager`): what to serve, once the vm
/// process has restored the VM's state and registered its RAM.
public enum PagerCommand: ChannelMessage, Equatable {
    /// Fill the faults of `uffd` from `snapshot`, whose shape must be `shape` (its encoding);
    /// RAM slot `i` is at `hostAddresses[i]` in the faulting process.
    case serve(uffd: FileDescriptor, snapshot: FileDescriptor, shape: [UInt8], hostAddresses: [UInt64])
    case stop

    public var tag: UInt16 {
        switch self {
        case .serve: 1
        case .stop: 2
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .serve(let uffd, let snapshot, let shape, let hostAddresses):
            writer.write(uffd)
            writer.write(snapshot)
            writer.write(shape)
            writer.write(UInt32(hostAddresses.count))
            hostAddresses.forEach { writer.write($0) }
        case .stop:
            break
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> PagerCommand {
        switch tag {
        case 1:
            return .serve(uffd: try reader.readDescriptor(), snapshot: try reader.readDescriptor(),
                          shape: try reader.readBytes(limit: 64 * 1024),
                          hostAddresses: try (0..<reader.readCount(limit: 8)).map { _ in try reader.read(UInt64.self) })
        case 2: return .stop
        default: throw IPCError.unknownTag(tag)
        }
    }
}

/// pager → vmd.
public enum PagerEvent: ChannelMessage, Equatable {
    /// Every page of the snapshot is in guest RAM and its checksum matched: `pages` copied in
    /// all, `faults` of them because the guest (or KVM, or vm) touched them first.
    case loaded(pages: UInt64, faults: UInt64, milliseconds: UInt32)
    /// The snapshot could not be served (unreadable, corrupt): the VM must not go on.
    case failed(String)

    public var tag: UInt16 {
        switch self {
        case .loaded: 1
        case .failed: 2
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .loaded(let pages, let faults, let milliseconds):
            writer.write(pages); writer.write(faults); writer.write(milliseconds)
        case .failed(let reason):
            writer.write(reason)
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> PagerEvent {
        switch tag {
        case 1: return .loaded(pages: try reader.read(UInt64.self), faults: try reader.read(UInt64.self),
                               milliseconds: try reader.read(UInt32.self))
        case 2: return .failed(try reader.read(String.self))
        default: throw IPCError.unknownTag(tag)
        }
    }
}

/// What can be wrong with a message from a peer. The peer is another of our
/// processes, but possibly a compromised one, so all of these are handled.
public enum IPCError: Error, Equatable, CustomStringConvertible {
    case peerClosed
    case oversized(Int)
    case truncated(expected: Int, got: Int)
    case badMagic(UInt32)
    case unknownTag(UInt16)
    case malformed(String)
    case missingDescriptors
    case unexpectedDescriptors(Int)
    case descriptorsTruncated
    case tooManyDescriptors(Int)

    public var description: String {
        switch self {
        case .peerClosed: "peer closed the channel"
        case .oversized(let size): "frame of \(size) bytes exceeds the \(IPCFrame.maximumSize)-byte limit"
        case .truncated(let expected, let got): "frame truncated: header promises \(expected) bytes, got \(got)"
        case .badMagic(let magic): "not a swift-vmd frame (magic 0x\(String(magic, radix: 16)))"
        case .unknownTag(let tag): "unknown message tag \(tag)"
        case .malformed(let reason): "malformed message: \(reason)"
        case .missingDescriptors: "message needs more file descriptors than came with it"
        case .unexpectedDescriptors(let count): "\(count) file descriptors came with a message that takes fewer"
        case .descriptorsTruncated: "file descriptors were lost in transit (MSG_CTRUNC)"
        case .tooManyDescriptors(let count): "message carries \(count) file descriptors, more than the \(IPCFrame.maximumDescriptors) a frame takes"
        }
    }
}

import LinuxSystem
/// The framing of every message between swift-vmd processes. Channels are
/// SOCK_SEQPACKET, so one datagram is one frame; the header still carries the
/// length so a frame is self-checking:
///
///     magic u32 "VMD1" | tag u16 | descriptor count u16 | payload length u32 | payload
public enum IPCFrame {
    public static let magic: UInt32 = 0x3144_4D56  // "VMD1" little-endian
    public static let headerSize = 12
    public static let maximumSize = 64 * 1024
    public static let maximumPayload = maximumSize - headerSize
    /// More than any message carries (slot table + device fds), small enough for one cmsg.
    public static let maximumDescriptors = 64

    /// A message too large for one frame (a command line, a configuration or a status list
    /// that grew with what a user wrote) is an error for the sender to report, not a trap.
    public static func encode<Message: ChannelMessage>(_ message: Message) throws(IPCError) -> (bytes: [UInt8], descriptors: [FileDescriptor]) {
        var payload = WireWriter()
        message.encode(into: &payload)
        guard payload.bytes.count <= maximumPayload else { throw .oversized(headerSize + payload.bytes.count) }
        guard payload.descriptors.count <= maximumDescriptors else { throw .tooManyDescriptors(payload.descriptors.count) }
        var frame = WireWriter()
        frame.write(magic)
        frame.write(message.tag)
        frame.write(UInt16(payload.descriptors.count))
        frame.write(UInt32(payload.bytes.count))
        return (frame.bytes + payload.bytes, payload.descriptors)
    }

    /// Decodes one received datagram. Pure apart from the descriptors it is handed,
    /// which it owns from here on: on any error they are closed with the reader.
    public static func decode<Message: ChannelMessage>(
        _ type: Message.Type, bytes: [UInt8], descriptors: [FileDescriptor]
    ) throws -> Message {
        guard bytes.count <= maximumSize else { throw IPCError.oversized(bytes.count) }
        guard bytes.count >= headerSize else { throw IPCError.truncated(expected: headerSize, got: bytes.count) }
        var header = WireReader(bytes: Array(bytes[0..<headerSize]))
        let magic = try header.read(UInt32.self)
        guard magic == self.magic else { throw IPCError.badMagic(magic) }
        let tag = try header.read(UInt16.self)
        let descriptorCount = Int(try header.read(UInt16.self))
        let payloadLength = Int(try header.read(UInt32.self))
        guard headerSize + payloadLength == bytes.count else {
            throw IPCError.truncated(expected: headerSize + payloadLength, got: bytes.count)
        }
        guard descriptorCount == descriptors.count else {
            throw descriptorCount > descriptors.count ? IPCError.missingDescriptors : IPCError.unexpectedDescriptors(descriptors.count - descriptorCount)
        }
        var reader = WireReader(bytes: Array(bytes[headerSize...]), descriptors: descriptors)
        let message = try Message.decode(tag: tag, from: &reader)
        try reader.finish()
        return message
    }
}

import Glibc
import CLinux
import LinuxSystem

/// One end of a SOCK_SEQPACKET channel between two swift-vmd processes, sending
/// and receiving framed messages with descriptors attached (SCM_RIGHTS).
public final class Channel {
    public let socket: FileDescriptor

    public init(socket: FileDescriptor) {
        self.socket = socket
    }

    /// A connected pair, for a parent and the child it is about to start.
    public static func pair() throws -> (Channel, Channel) {
        let (a, b) = try FileDescriptor.socketPair()
        return (Channel(socket: a), Channel(socket: b))
    }

    public func send<Message: ChannelMessage>(_ message: Message) throws {
        let (bytes, descriptors) = try IPCFrame.encode(message)
        try sendRaw(bytes, descriptors: descriptors.map(\.rawValue))
        withExtendedLifetime(descriptors) {}
    }

    /// Sends bytes as one datagram; exposed so tests can play a hostile peer.
    public func sendRaw(_ bytes: [UInt8], descriptors: [Int32] = []) throws {
        var control = [UInt8](repeating: 0, count: descriptors.isEmpty ? 0 : vmd_cmsg_space_for_fds(descriptors.count))
        try bytes.withUnsafeBytes { payload in
            try control.withUnsafeMutableBytes { controlBuffer in
                // SAFETY: the control buffer was sized by CMSG_SPACE for exactly these descriptors,
                // the payload and control pointers live for the whole sendmsg, which only reads them.
                if !descriptors.isEmpty {
                    descriptors.withUnsafeBufferPointer {
                        vmd_cmsg_put_fds(controlBuffer.baseAddress, controlBuffer.count, $0.baseAddress, $0.count)
                    }
                }
                var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)
                try withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var header = msghdr()
                    header.msg_iov = vectorPointer
                    header.msg_iovlen = 1
                    header.msg_control = descriptors.isEmpty ? nil : controlBuffer.baseAddress
                    header.msg_controllen = controlBuffer.count
                    try retryingInterrupts("sendmsg") { sendmsg(socket.rawValue, &header, Int32(MSG_NOSIGNAL)) }
                }
            }
        }
    }

    /// Blocks until one message arrives and decodes it.
    public func receive<Message: ChannelMessage>(_ type: Message.Type) throws -> Message {
        guard let (bytes, descriptors) = try receiveRaw() else { throw SystemError("recvmsg", errno: EAGAIN) }
        return try IPCFrame.decode(type, bytes: bytes, descriptors: descriptors)
    }

    /// Receives one datagram; nil if the socket is non-blocking and nothing is there.
    /// Descriptors that arrive are owned immediately, so none leak on any error.
    public func receiveRaw() throws -> (bytes: [UInt8], descriptors: [FileDescriptor])? {
        var buffer = [UInt8](repeating: 0, count: IPCFrame.maximumSize + 1)
        var control = [UInt8](repeating: 0, count: vmd_cmsg_space_for_fds(IPCFrame.maximumDescriptors))
        var received = 0
        var flags: Int32 = 0
        var descriptors: [FileDescriptor] = []
        // SAFETY: recvmsg writes at most the payload buffer's and the control buffer's sizes, both
        // live for the call; at most `maximumDescriptors` fds are taken out of the control data.
        let result: Int = buffer.withUnsafeMutableBytes { payload in
            control.withUnsafeMutableBytes { controlBuffer in
                var vector = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var header = msghdr()
                    header.msg_iov = vectorPointer
                    header.msg_iovlen = 1
                    header.msg_control = controlBuffer.baseAddress
                    header.msg_controllen = controlBuffer.count
                    var count: Int
                    repeat {
                        count = recvmsg(socket.rawValue, &header, Int32(MSG_CMSG_CLOEXEC))
                    } while count == -1 && vmd_errno() == EINTR
                    if count >= 0 {
                        var raw = [Int32](repeating: -1, count: IPCFrame.maximumDescriptors)
                        let found = raw.withUnsafeMutableBufferPointer { vmd_cmsg_get_fds(&header, $0.baseAddress, $0.count) }
                        descriptors = raw.prefix(min(found, raw.count)).map { FileDescriptor(adopting: $0) }
                        flags = header.msg_flags
                        received = count
                    }
                    return count
                }
            }
        }
        if result == -1 {
            let error = vmd_errno()
            if error == EAGAIN || error == EWOULDBLOCK { return nil }
            throw SystemError("recvmsg", errno: error)
        }
        if flags & Int32(MSG_CTRUNC) != 0 { throw IPCError.descriptorsTruncated }
        if flags & Int32(MSG_TRUNC) != 0 || received > IPCFrame.maximumSize { throw IPCError.oversized(received) }
        if received == 0 && descriptors.isEmpty { throw IPCError.peerClosed }
        buffer.removeSubrange(received...)
        return (buffer, descriptors)
    }
}

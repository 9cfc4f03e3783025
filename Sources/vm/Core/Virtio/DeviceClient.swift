import Glibc
import IPC
import LinuxSystem
import Synchronization

/// The vm side of the slow-path channel to one device process: one request at
/// a time, answered within a timeout so a dead or stuck device cannot hang a vCPU.
/// Requests are numbered: a reply that arrives after its request timed out is
/// dropped (and counted) instead of being taken as the answer to the next one.
final class DeviceClient: @unchecked Sendable {
    private let channel: Channel
    private struct Sequence { var next: UInt32 = 0; var lateReplies = 0 }
    private let sequence = Mutex(Sequence())
    static let replyTimeoutSeconds = 5.0

    init(socket: FileDescriptor, timeoutSeconds: Double = DeviceClient.replyTimeoutSeconds) throws {
        channel = Channel(socket: socket)
        var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - timeoutSeconds.rounded(.down)) * 1_000_000))
        try retryingInterrupts("setsockopt(SO_RCVTIMEO)") {
            setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Replies that came after their request had timed out.
    var lateReplies: Int { sequence.withLock { $0.lateReplies } }

    func request(_ request: TransportRequest) throws -> TransportReply {
        try sequence.withLock { sequence in
            let id = sequence.next
            sequence.next &+= 1
            try channel.send(Numbered(id: id, request))
            while true {
                let answer = try channel.receive(Numbered<TransportReply>.self)
                if answer.id == id { return answer.message }
                sequence.lateReplies += 1
            }
        }
    }
}

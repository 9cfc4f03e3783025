import Glibc
import IPC
import LinuxSystem
import Synchronization

/// The vm side of the slow-path channel to one device process: one request at
/// a time, answered within a timeout so a dead or stuck device cannot hang a vCPU.
final class DeviceClient: @unchecked Sendable {
    private let channel: Channel
    private let lock = Mutex(())
    static let replyTimeoutSeconds = 5

    init(socket: FileDescriptor) throws {
        channel = Channel(socket: socket)
        var timeout = timeval(tv_sec: DeviceClient.replyTimeoutSeconds, tv_usec: 0)
        try retryingInterrupts("setsockopt(SO_RCVTIMEO)") {
            setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    func request(_ request: TransportRequest) throws -> TransportReply {
        try lock.withLock { _ in
            try channel.send(request)
            return try channel.receive(TransportReply.self)
        }
    }
}

import Glibc
import CLinux
import GuestRAM
import LinuxSystem

/// What one non-blocking packet transfer did.
enum NetTransfer: Equatable, Sendable {
    /// A whole packet moved: its length, virtio-net header included. For a read this is the
    /// packet's full length even when `vectors` were too small and it was cut short.
    case packet(Int)
    /// Nothing to read, or no room to write, right now (EAGAIN).
    case wouldBlock
}

/// Where packets go and come from: one packet (the 12-byte virtio-net header, then the
/// Ethernet frame) per call, scattered over iovecs that point straight into guest memory.
/// Failures other than "would block" are host errors, thrown as `SystemError`.
protocol NetBackend: AnyObject {
    /// Reads the next packet into `vectors`, in order.
    func readPacket(into vectors: IOVectorBuffer) throws -> NetTransfer
    /// Writes one packet gathered from `vectors`, in order.
    func writePacket(from vectors: IOVectorBuffer) throws -> NetTransfer
}

/// A tap device opened by vmd with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and its vnet header
/// size set to 12 (TUNSETVNETHDRSZ), so each read or write is exactly one header + frame.
/// vmd also chose its offloads (TUNSETOFFLOAD); this side only reads and writes.
final class TapBackend: NetBackend {
    let tap: FileDescriptor

    /// Takes `tap` and makes it non-blocking: the device's event loop must never wait on it.
    init(tap: FileDescriptor) throws {
        self.tap = tap
        try tap.setNonBlocking(true)
    }

    func readPacket(into vectors: IOVectorBuffer) throws -> NetTransfer {
        let fd = tap.rawValue
        return try transfer("readv(tap)") { vectors.withVectors { readv(fd, $0.baseAddress, Int32($0.count)) } }
    }

    func writePacket(from vectors: IOVectorBuffer) throws -> NetTransfer {
        let fd = tap.rawValue
        return try transfer("writev(tap)") { vectors.withVectors { writev(fd, $0.baseAddress, Int32($0.count)) } }
    }

    /// EAGAIN is the usual end of every pass over the tap: an answer, not an error (no throw,
    /// no allocation).
    private func transfer(_ call: String, _ body: () -> Int) throws -> NetTransfer {
        while true {
            let result = body()
            if result >= 0 { return .packet(result) }
            let error = vmd_errno()
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(call, errno: error)
        }
    }
}

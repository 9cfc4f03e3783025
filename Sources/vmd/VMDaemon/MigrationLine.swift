import CLinux
import Glibc
import LinuxSystem

/// One newline-ended line of a migration's handshake (the hello, OK or FAIL, DONE), read a
/// byte at a time without blocking: what follows it on the connection is the VM's stream,
/// which belongs to the vm process whole.
struct MigrationLine {
    enum Progress: Equatable {
        /// Nothing more to read now; call again when the connection is readable.
        case waiting
        case line(String)
        /// The connection ended (or failed) before a newline.
        case closed
        /// `limit` bytes came without a newline.
        case tooLong
    }

    let limit: Int
    private var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    mutating func read(from connection: FileDescriptor) -> Progress {
        var byte: UInt8 = 0
        while true {
            let count = recv(connection.rawValue, &byte, 1, Int32(MSG_DONTWAIT))
            if count < 0 && (errno == EAGAIN || errno == EINTR) { return .waiting }
            guard count == 1 else { return .closed }
            guard bytes.count < limit else { return .tooLong }
            if byte == UInt8(ascii: "\n") { return .line(String(decoding: bytes, as: UTF8.self)) }
            bytes.append(byte)
        }
    }
}

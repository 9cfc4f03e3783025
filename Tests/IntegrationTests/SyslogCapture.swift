import CLinux
import Foundation
import Glibc
import IPC

/// A syslog of the test's own: a datagram socket that a daemon run in its own mount
/// namespace sees as /dev/log (`command(wrapping:)`), read by a thread into `text`.
/// glibc's syslog(3) always writes to /dev/log, so this is where vmd's lines go.
final class SyslogCapture {
    let socketPath: String
    private let fd: Int32
    private let lock = NSLock()
    private var lines: [String] = []
    private var reader: Thread?
    /// The /dev/log placeholder this capture created (bind mounts need an existing file).
    private let createdPlaceholder: Bool

    init(directory: URL) throws {
        let path = directory.appendingPathComponent("log.sock").path
        socketPath = path
        unlink(path)
        let socketFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        fd = socketFD
        var address = try UnixSocket.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "bind \(path)"]) }
        chmod(socketPath, 0o666)
        createdPlaceholder = !FileManager.default.fileExists(atPath: "/dev/log")
        if createdPlaceholder { FileManager.default.createFile(atPath: "/dev/log", contents: nil) }
        let thread = Thread { [fd, weak self] in
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { return }
                guard let self else { return }
                let line = String(decoding: buffer[0..<count], as: UTF8.self)
                self.lock.withLock { self.lines.append(line) }
            }
        }
        thread.start()
        reader = thread
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(socketPath)
        if createdPlaceholder { unlink("/dev/log") }
    }

    /// Every message so far, one a line ("<PRI>Mmm dd hh:mm:ss vmd[PID]: text").
    var text: String { lock.withLock { lines.joined(separator: "\n") } }

    /// `command` run with our socket bind-mounted over /dev/log. The mount is private to
    /// the command's own mount namespace (`ip netns exec` makes one; else unshare does).
    func command(wrapping command: [String], insideNewMountNamespace: Bool) -> [String] {
        let mount = ["/bin/sh", "-c", "mount --bind \"$0\" /dev/log && exec \"$@\"", socketPath] + command
        return insideNewMountNamespace ? ["/usr/bin/unshare", "--mount", "--propagation", "private"] + mount : mount
    }
}

/// The process serving vmd's control socket, from SO_PEERCRED.
enum UnixSocketPeer {
    static func pid(of path: String) -> pid_t? {
        guard let connection = try? UnixSocket.connect(path) else { return nil }
        var (pid, uid, gid): (pid_t, uid_t, gid_t) = (0, 0, 0)
        guard vmd_peer_credentials(connection.rawValue, &pid, &uid, &gid) == 0 else { return nil }
        return pid
    }
}

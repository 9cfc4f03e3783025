import Glibc
import LinuxSystem

/// `vmctl console`: copies between our terminal and the VM's console pty until
/// `~.` is typed at the start of a line (as cu(1)), the VM goes away, or input ends.
struct ConsoleSession {
    let console: FileDescriptor
    let name: String

    func run() throws {
        let input = FileDescriptor.standardInput
        var saved = termios()
        let interactive = isatty(input.rawValue) == 1 && tcgetattr(input.rawValue, &saved) == 0
        if interactive {
            var raw = saved
            cfmakeraw(&raw)
            tcsetattr(input.rawValue, TCSANOW, &raw)
            FileDescriptor.standardError("Connected to \(name) (~. to detach)\r\n")
        }
        defer { if interactive { tcsetattr(input.rawValue, TCSANOW, &saved) } }

        var atLineStart = true
        var pendingTilde = false
        var inputOpen = true
        while true {
            var fds = [pollfd(fd: console.rawValue, events: Int16(POLLIN), revents: 0)]
            if inputOpen { fds.append(pollfd(fd: input.rawValue, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                throw SystemError.last("poll")
            }
            if fds[0].revents != 0 {
                // EIO or end of file: the VM stopped and its pty is gone.
                guard let bytes = try? console.read(upTo: 4096), !bytes.isEmpty else { break }
                try FileDescriptor.standardOutput.writeAll(bytes)
            }
            if inputOpen, fds.count > 1, fds[1].revents != 0 {
                let bytes = try input.read(upTo: 1024)
                if bytes.isEmpty { inputOpen = false; continue }  // keep showing output until the VM ends
                var forward: [UInt8] = []
                for byte in bytes {
                    if pendingTilde {
                        pendingTilde = false
                        if byte == UInt8(ascii: ".") { return }
                        forward.append(UInt8(ascii: "~"))
                    } else if atLineStart && byte == UInt8(ascii: "~") {
                        pendingTilde = true
                        continue
                    }
                    forward.append(byte)
                    atLineStart = byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
                }
                try console.writeAll(forward)
            }
        }
    }
}

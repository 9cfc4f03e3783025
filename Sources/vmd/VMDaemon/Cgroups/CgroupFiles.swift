import Glibc
import LinuxSystem

/// Reading and writing the small text files of cgroupfs and procfs.
enum CgroupFiles {
    /// The whole file, read until EOF (procfs and cgroupfs files say their size is 0).
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while result.count < 1 << 16 {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            result += buffer[0..<count]
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// One write of `text` (cgroupfs takes each write as one command).
    static func write(_ text: String, to path: String) throws(SystemError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        while true {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written == bytes.count else { throw SystemError("write \"\(text)\" to \(path)", errno: written < 0 ? errno : EIO) }
            return
        }
    }

    /// The words of a space-separated list file such as cgroup.controllers; empty if unreadable.
    static func words(_ path: String) -> Set<String> {
        Set((read(path) ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
    }

    /// The value of `key` in a flat-keyed file such as memory.events ("oom_kill 3").
    static func value(of key: String, in text: String) -> UInt64? {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == key { return UInt64(fields[1]) }
        }
        return nil
    }
}

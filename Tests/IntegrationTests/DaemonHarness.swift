import Foundation
import Glibc
import XCTest

/// A vmd daemon of the test's own (its own socket and configuration) and vmctl
/// runs against it, as root or as another user.
final class DaemonHarness {
    let directory: URL
    let socket: String
    let vmd: Process
    let logPath: String
    /// In the default (detached) mode: where vmd's syslog lines arrive.
    let syslog: SyslogCapture?
    /// The daemon's pid: `vmd` itself with -d; the detached child in the default mode.
    private(set) var daemonPid: pid_t = 0

    /// `namespace`: run vmd inside that network namespace (its taps appear there).
    /// `detached`: run it as a service manager does, without -d: it detaches and logs to
    /// syslog, which the harness captures (`syslog`, `log`).
    /// `strayFiles`: descriptors vmd inherits open (not close-on-exec), as from a careless
    /// parent: fd number -> path opened read-only.
    /// `descriptorLimit`: vmd runs under `ulimit -n` of that many. `arguments`: more for vmd (`-m ADDRESS`).
    /// `environment`: variables vmd gets besides the test's own (NOTIFY_SOCKET).
    init(_ test: String, globalConfig: String = "", namespace: NetworkNamespace? = nil, detached: Bool = false,
         strayFiles: [Int32: String] = [:], descriptorLimit: Int? = nil, arguments: [String] = [],
         environment: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vmd-\(test)-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        socket = directory.appendingPathComponent("vmd.sock").path
        let configPath = directory.appendingPathComponent("vmd.conf").path
        try globalConfig.write(toFile: configPath, atomically: true, encoding: .utf8)
        logPath = directory.appendingPathComponent("vmd.log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        vmd = Process()
        syslog = detached ? try SyslogCapture(directory: directory) : nil
        var command = [VmdHarness.productsDirectory + "/vmd"] + (detached ? [] : ["-d"]) + ["-f", configPath, "-s", socket] + arguments
        let prelude = strayFiles.sorted { $0.key < $1.key }.map { "exec \($0.key)<'\($0.value)'" } + (descriptorLimit.map { ["ulimit -n \($0)"] } ?? [])
        if !prelude.isEmpty {
            command = ["/bin/bash", "-c", "\(prelude.joined(separator: "; ")); exec \"$@\"", "bash"] + command  // dash takes fds 0-9 only
        }
        if let syslog { command = syslog.command(wrapping: command, insideNewMountNamespace: namespace == nil) }
        if let namespace { command = ["/usr/sbin/ip", "netns", "exec", namespace.name] + command }
        vmd.executableURL = URL(fileURLWithPath: command[0])
        vmd.arguments = Array(command.dropFirst())
        vmd.standardOutput = FileHandle(forWritingAtPath: logPath)
        vmd.standardError = FileHandle(forWritingAtPath: logPath)
        vmd.standardInput = FileHandle.nullDevice
        if !environment.isEmpty { vmd.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        try vmd.run()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && vmctl("status").status != 0 { usleep(50_000) }
        daemonPid = UnixSocketPeer.pid(of: socket) ?? vmd.processIdentifier
    }

    deinit {
        let alive = { kill(self.daemonPid, 0) == 0 && !VmdHarness.readProcFile("/proc/\(self.daemonPid)/stat").contains(") Z ") }
        if daemonPid > 0 && alive() {
            kill(daemonPid, SIGTERM)
            let deadline = Date().addingTimeInterval(20)
            while alive() && Date() < deadline { usleep(50_000) }
            if alive() { kill(daemonPid, SIGKILL) }
        }
        if vmd.isRunning { vmd.waitUntilExit() }
    }

    /// vmd's log: its stderr with -d, else what it sent to syslog.
    var log: String { syslog?.text ?? (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func writeGuestConfig(_ name: String, cmdline: String, extra: String = "", memory: String = "64M") throws -> String {
        let path = directory.appendingPathComponent("\(name).conf").path
        try """
            vm "\(name)" {
                memory \(memory)
                boot "\(VmdHarness.guestKit)"
                cmdline "\(cmdline)"
            \(extra)
            }

            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs vmctl to completion, as root or (with `user`) through runuser.
    @discardableResult
    func vmctl(_ arguments: String..., as user: String? = nil) -> Result {
        vmctl(arguments, as: user)
    }

    @discardableResult
    func vmctl(_ arguments: [String], as user: String? = nil) -> Result {
        let process = start(arguments, as: user, stdout: nil)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        guard (try? process.run()) != nil else { return Result(status: -1, stdout: "", stderr: "could not run vmctl") }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// A vmctl process not yet run (for `console`, which runs until the VM stops).
    func start(_ arguments: [String], as user: String? = nil, stdout: String?) -> Process {
        let process = Process()
        let vmctl = VmdHarness.productsDirectory + "/vmctl"
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", "/usr/bin/env", "VMD_SOCKET=\(socket)", vmctl] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: vmctl)
            process.arguments = arguments
            process.environment = ["VMD_SOCKET": socket]
        }
        process.standardInput = FileHandle.nullDevice
        if let stdout {
            FileManager.default.createFile(atPath: stdout, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: stdout)
        }
        return process
    }

    /// `vmctl status` rows as [name: (state, reason)].
    func status() -> [String: (state: String, line: String)] {
        var rows: [String: (String, String)] = [:]
        for line in vmctl("status").stdout.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 8 else { continue }
            rows[String(fields[7])] = (String(fields[5]), String(line))
        }
        return rows
    }

    /// The pids of the processes of VM `name` whose executable is `executable`.
    func processes(_ executable: String, vm name: String) -> [pid_t] {
        let binary = VmdHarness.productsDirectory + "/" + executable
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.first == binary && arguments.dropFirst().first == name
        }
    }

    /// Waits up to `seconds` for `condition`.
    func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }
}

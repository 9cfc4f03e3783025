import Foundation
import Glibc
import XCTest

/// Runs the real vmd binary against the real guest kit, as a user would.
/// Needs /dev/kvm and root; skips with the reason printed otherwise.
struct VmdHarness {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let guestKit = packageRoot.appendingPathComponent("Guest/build/guest-kit.elf").path
    static let guestKitELF64 = packageRoot.appendingPathComponent("Guest/build/guest-kit-elf64.elf").path

    /// The directory with the built products (the test binary sits beside them).
    static var productsDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return (exe as NSString).deletingLastPathComponent
    }

    static func requireKVMAndRoot() throws {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else {
            print("SKIP: /dev/kvm is not available on this host")
            throw XCTSkip("/dev/kvm is not available on this host")
        }
        guard getuid() == 0 else {
            print("SKIP: integration tests need root")
            throw XCTSkip("integration tests need root")
        }
        guard FileManager.default.fileExists(atPath: guestKit) else {
            XCTFail("the guest kit is not built: run `make guest` (missing \(guestKit))")
            throw XCTSkip("guest kit missing")
        }
    }

    let directory: URL
    let name: String

    /// A scratch directory and a VM name unique to this test.
    init(_ test: String) throws {
        name = "it-\(test)-\(getpid())"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func writeConfig(boot: String = VmdHarness.guestKit, cmdline: String, memory: String = "64M", extra: String = "") throws -> String {
        let path = directory.appendingPathComponent("guest.conf").path
        let text = """
            vm "\(name)" {
                memory \(memory)
                boot "\(boot)"
                cmdline "\(cmdline)"
            \(extra)
            }

            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    struct Run {
        let process: Process
        let stdoutPath: String
        let stderrPath: String
        var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
        var status: Int32 { process.terminationStatus }

        /// Waits until the guest printed `text`, or fails after `seconds`.
        func waitForOutput(_ text: String, seconds: Double = 30) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if stdout.contains(text) { return true }
                if !process.isRunning { return stdout.contains(text) }
                usleep(20_000)
            }
            return false
        }

        /// Waits for vmd to exit (killing it after `seconds`, which fails the test).
        func wait(seconds: Double = 60, file: StaticString = #filePath, line: UInt = #line) {
            let end = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < end { usleep(20_000) }
            if process.isRunning {
                XCTFail("vmd did not exit within \(seconds)s", file: file, line: line)
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    /// Starts `vmd boot CONFIG ARGS...` with its output going to files.
    func start(config: String, arguments: [String] = [], environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.executableURL = URL(fileURLWithPath: VmdHarness.productsDirectory + "/vmd")
        process.arguments = ["boot", config] + arguments
        let stdoutPath = directory.appendingPathComponent("stdout").path
        let stderrPath = directory.appendingPathComponent("stderr").path
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Run(process: process, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    func run(config: String, arguments: [String] = [], environment: [String: String] = [:], seconds: Double = 60) throws -> Run {
        let run = try start(config: config, arguments: arguments, environment: environment)
        run.wait(seconds: seconds)
        return run
    }

    /// Pids of the vm processes of this test's VM (vm is started with the VM name as its argument).
    func vmProcesses() -> [pid_t] {
        processes(named: "vm")
    }

    /// Pids of this VM's processes of one kind ("vm", "virtio-blk", ...), from /proc.
    func processes(named executable: String) -> [pid_t] {
        let vmBinary = VmdHarness.productsDirectory + "/" + executable
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.first == vmBinary && arguments.dropFirst().first == name
        }
    }

    /// Children of `pid` (all its threads'), from /proc.
    static func children(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [pid_t] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// Paths of a process's open files.
    static func openFiles(of pid: pid_t) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
    }

    /// VmFlags of each guest RAM slot mapped in `pid`.
    static func slotFlags(pid: pid_t, vmName: String) -> [Set<Substring>] {
        var result: [Set<Substring>] = []
        var inSlot = false
        for line in readProcFile("/proc/\(pid)/smaps").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.first?.contains("-") == true && fields.count >= 5 && !line.hasPrefix("VmFlags") {
                inSlot = fields.count >= 6 && fields[5].hasPrefix("/memfd:vmd-\(vmName)-ram")
            } else if inSlot && line.hasPrefix("VmFlags:") {
                result.append(Set(fields.dropFirst()))
            }
        }
        return result
    }

    /// Reads a /proc file to its end (its reported size is 0).
    /// Runs a command to completion, stdout and stderr together, killing it after
    /// `seconds` (its status is then -9): a test must not hang on a command that does.
    /// `directory`: where it runs, if not here.
    static func runCommand(_ arguments: [String], seconds: Double = 120, directory: String? = nil) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return (-1, "could not run \(arguments[0])") }
        // Read while it runs, so that a command with much to say does not block on a full pipe.
        var output = Data()
        let read = DispatchGroup()
        read.enter()
        DispatchQueue.global().async {
            output = pipe.fileHandleForReading.readDataToEndOfFile()
            read.leave()
        }
        let deadline = Date().addingTimeInterval(seconds)
        var killed = false
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                killed = true
                break
            }
            usleep(10_000)
        }
        process.waitUntilExit()
        _ = read.wait(timeout: .now() + 5)  // a child of the command may still hold the pipe
        return (killed ? -9 : process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    static func readProcFile(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }

    /// The `RESULT` line of `name` in the guest's output, as key=value pairs.
    static func result(_ name: String, in output: String) -> [String: String]? {
        output.split(whereSeparator: \.isNewline).first { $0.hasPrefix("RESULT name=\(name) ") }.map { fields(String($0)) }
    }

    /// The key=value words of a line (a RESULT line, a host tool's summary).
    static func fields(_ line: String) -> [String: String] {
        var fields: [String: String] = [:]
        for word in line.split(whereSeparator: \.isWhitespace) {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return fields
    }
}

import Glibc
import Logging
import IPC
import LinuxSystem

/// Runs one VM in the foreground (`vmd boot`): a `VMInstance` in its own
/// loop, with the console on stdin/stdout, a deadline, and ^C/SIGTERM.
final class ForegroundVM {
    let launcher: VMLauncher
    let deadline: Double?
    let restartsOnReset: Bool
    let logger: Logger
    /// How often the guest rebooted into a new run.
    private(set) var restarts = 0

    init(launcher: VMLauncher, deadline: Double?, restartsOnReset: Bool = true, logger: Logger) {
        self.launcher = launcher
        self.deadline = deadline
        self.restartsOnReset = restartsOnReset
        self.logger = logger
    }

    func run() throws -> VMOutcome {
        let loop = try EventLoop()
        let instance = try VMInstance(id: 1, launcher: launcher, loop: loop, logger: logger)
        instance.restartsOnReset = restartsOnReset
        defer { restarts = instance.restarts }
        guard let console = instance.console else { return instance.outcome ?? .vmProcessDied(.exited(-1)) }
        var watches: [EventWatch] = []
        watches.append(try loop.watchReadable(console.rawValue) { Self.forwardConsole(from: console) })
        watches.append(try loop.onSignal(SIGCHLD) {
            instance.reap()
            if instance.state == .stopped { loop.stop() }
        })
        for signal in [SIGINT, SIGTERM] {
            watches.append(try loop.onSignal(signal) { instance.stop(force: true, reason: .interrupted(signal: signal)) })
        }
        if let deadline {
            watches.append(try loop.after(seconds: deadline) {
                instance.stop(force: true, reason: .deadlineExceeded(seconds: deadline))
            })
        }
        try? console.setNonBlocking(true)
        // Our stdin is the guest's keyboard (line by line: the terminal stays cooked so ^C stops vmd).
        if FileDescriptor.standardInput.isPollable {
            let input = try FileDescriptor.standardInput.duplicate()
            try? input.setNonBlocking(true)
            var inputWatch: EventWatch?
            inputWatch = try loop.watchReadable(input.rawValue) {
                guard let bytes = try? input.read(upTo: 256), !bytes.isEmpty else {
                    inputWatch?.cancel()  // end of input: the guest just gets no more
                    return
                }
                try? console.writeAll(bytes)
            }
            watches.append(inputWatch!)
        }
        instance.whenStopped { _ in
            Self.forwardConsole(from: console)  // whatever the guest printed last
            loop.stop()
        }
        instance.reap()  // a child may have died before the SIGCHLD watch existed
        if instance.state != .stopped { try loop.run() }
        watches.forEach { $0.cancel() }
        return instance.outcome ?? .vmProcessDied(.exited(-1))
    }

    /// Copies what the guest wrote to the console to our stdout.
    private static func forwardConsole(from console: FileDescriptor) {
        while let bytes = try? console.read(upTo: 4096), !bytes.isEmpty {
            try? FileDescriptor.standardOutput.writeAll(bytes)
        }
    }
}

/// The path of another swift-vmd executable installed beside this one.
func siblingExecutable(_ name: String) throws -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = try retryingInterrupts("readlink(/proc/self/exe)") { readlink("/proc/self/exe", &buffer, Int(PATH_MAX)) }
    let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    return directory + "/" + name
}

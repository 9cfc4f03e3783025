import Glibc
import Logging
import Shared

/// How a VM run by vmd ended, as vmd reports it.
enum VMOutcome: Equatable, CustomStringConvertible {
    case guest(GuestEnd)
    case deadlineExceeded(seconds: Double)
    case vmProcessDied(ChildProcess.Termination)
    case deviceProcessDied(role: String, ChildProcess.Termination)
    case interrupted(signal: Int32)

    var description: String {
        switch self {
        case .guest(let end): end.description
        case .deadlineExceeded(let seconds): "deadline of \(seconds.formatted)s passed; vm process killed"
        case .vmProcessDied(let termination): "vm process \(termination) without reporting"
        case .deviceProcessDied(let role, let termination): "\(role) process \(termination); VM stopped"
        case .interrupted(let signal): "stopped by signal \(signal)"
        }
    }

    /// vmd's exit status for this outcome (documented in `vmd boot --help`).
    var exitStatus: Int32 {
        switch self {
        case .guest(.exitCode(let code)): Int32(code)
        case .guest(.powerOff), .guest(.reset), .guest(.stopped): 0
        case .guest(.tripleFault): ExitStatus.tripleFault
        case .guest(.failed): ExitStatus.vmFailure
        case .deadlineExceeded: ExitStatus.deadline
        case .vmProcessDied, .deviceProcessDied: ExitStatus.vmFailure
        case .interrupted: ExitStatus.interrupted
        }
    }
}

enum ExitStatus {
    static let tripleFault: Int32 = 65
    static let deadline: Int32 = 66
    static let interrupted: Int32 = 67
    static let vmFailure: Int32 = 70   // EX_SOFTWARE
    static let setupFailure: Int32 = 71 // EX_OSERR
    static let configError: Int32 = 78 // EX_CONFIG
}

extension Double {
    var formatted: String { self == rounded() ? String(Int(self)) : String(self) }
}

/// Runs one VM in the foreground: starts its processes (`VMLauncher`), forwards
/// the console to stdout and stdin, enforces the deadline, and reaps every child.
/// The death of any process of the VM stops the others (design §1).
final class ForegroundVM {
    let launcher: VMLauncher
    let deadline: Double?
    let logger: Logger

    init(launcher: VMLauncher, deadline: Double?, logger: Logger) {
        self.launcher = launcher
        self.deadline = deadline
        self.logger = logger
    }

    func run() throws -> VMOutcome {
        let launched = try launcher.launch()
        defer { launched.children.forEach { $0.process.terminate() } }  // no process of this VM outlives us
        return try supervise(launched)
    }

    private func supervise(_ launched: LaunchedVM) throws -> VMOutcome {
        let loop = try EventLoop()
        let console = launched.console.controller
        let vm = launched.vm
        var reported: GuestEnd?
        var forced: VMOutcome?
        var watches: [EventWatch] = []

        func stopEverything() {
            try? vm.channel.send(VMCommand.stop)
            launched.children.forEach { $0.process.kill() }
        }

        func reap() {
            for child in launched.children where !child.process.hasBeenReaped {
                guard let termination = try? child.process.poll() else { continue }
                if child.process === vm.process {
                    forwardConsole(from: console)  // whatever the guest printed last
                    if reported == nil && forced == nil { forced = .vmProcessDied(termination) }
                } else if reported == nil && forced == nil {
                    logger.error("\(child.role) process \(termination)")
                    forced = .deviceProcessDied(role: child.role, termination)
                    stopEverything()
                }
            }
            if launched.children.allSatisfy({ $0.process.hasBeenReaped }) { loop.stop() }
            if vm.process.hasBeenReaped { launched.devices.forEach { $0.process.kill() } }
        }

        watches.append(try loop.watchReadable(console.rawValue) { [weak self] in self?.forwardConsole(from: console) })
        watches.append(try loop.watchReadable(vm.channel.socket.rawValue) { [logger, config = launcher.config] in
            do {
                switch try vm.channel.receive(VMEvent.self) {
                case .running: logger.info("vm \"\(config.name)\" is running")
                case .ended(let end): if reported == nil && forced == nil { reported = end }
                case .paused, .resumed: break
                }
            } catch IPCError.peerClosed {
                // The vm process is exiting; SIGCHLD follows.
            } catch {
                logger.error("vm channel: \(error)")
                vm.process.kill()
            }
        })
        watches.append(try loop.onSignal(SIGCHLD) { reap() })
        for signal in [SIGINT, SIGTERM] {
            watches.append(try loop.onSignal(signal) {
                if reported == nil && forced == nil { forced = .interrupted(signal: signal) }
                stopEverything()
            })
        }
        if let deadline {
            watches.append(try loop.after(seconds: deadline) {
                if reported == nil && forced == nil { forced = .deadlineExceeded(seconds: deadline) }
                stopEverything()
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
        reap()  // a child may have died before the SIGCHLD watch existed
        if !launched.children.allSatisfy({ $0.process.hasBeenReaped }) { try loop.run() }
        watches.forEach { $0.cancel() }
        return reported.map { .guest($0) } ?? forced ?? .vmProcessDied(.exited(-1))
    }

    /// Copies what the guest wrote to the console to our stdout.
    private func forwardConsole(from console: FileDescriptor) {
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

import Glibc
import Logging
import Shared

/// How a VM run by vmd ended, as vmd reports it.
enum VMOutcome: Equatable, CustomStringConvertible {
    case guest(GuestEnd)
    case deadlineExceeded(seconds: Double)
    case vmProcessDied(ChildProcess.Termination)
    case interrupted(signal: Int32)

    var description: String {
        switch self {
        case .guest(let end): end.description
        case .deadlineExceeded(let seconds): "deadline of \(seconds.formatted)s passed; vm process killed"
        case .vmProcessDied(let termination): "vm process \(termination) without reporting"
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
        case .vmProcessDied: ExitStatus.vmFailure
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

/// Runs one VM in the foreground: creates its memory slots, starts the vm
/// process, performs the SHAREMEM handoff, forwards the console to stdout and
/// stdin, enforces the deadline, and reaps the child (design §1, §2).
final class ForegroundVM {
    let config: VMConfig
    let kernelPath: String
    let deadline: Double?
    let logger: Logger

    init(config: VMConfig, kernelPath: String, deadline: Double?, logger: Logger) {
        self.config = config
        self.kernelPath = kernelPath
        self.deadline = deadline
        self.logger = logger
    }

    func run() throws -> VMOutcome {
        // Everything the VM needs is opened here, so a bad path fails before anything starts.
        let kernel = try FileDescriptor.open(kernelPath, flags: O_RDONLY)
        let kvm = try FileDescriptor.open("/dev/kvm", flags: O_RDWR)
        let slots = try MemorySlot.ramSlots(ramBytes: config.memoryBytes, vmName: config.name)
        let console = try PseudoTerminal()
        let (channel, childEnd) = try Channel.pair()
        let child = try ChildProcess(executable: try siblingExecutable("vm"), arguments: [config.name], channel: childEnd.socket)
        childEnd.socket.close()
        defer { child.terminate() }  // whatever happens below, no process of this VM outlives us
        logger.info("vm \"\(config.name)\" started as pid \(child.pid), console \(console.devicePath)")

        try channel.send(VMCommand.shareMemory(slots: slots.map(\.descriptor), memfds: slots.map(\.memfd)))
        try channel.send(VMCommand.boot(BootRequest(name: config.name, vcpus: config.cpus, cmdline: config.cmdline),
                                        kvm: kvm, kernel: kernel, console: console.device))
        // vmd never maps guest RAM and keeps none of the child's descriptors.
        slots.forEach { $0.memfd.close() }
        [kvm, kernel, console.device].forEach { $0.close() }

        return try supervise(child: child, channel: channel, console: console.controller)
    }

    private func supervise(child: ChildProcess, channel: Channel, console: FileDescriptor) throws -> VMOutcome {
        let loop = try EventLoop()
        var reported: GuestEnd?
        var forced: VMOutcome?
        var watches: [EventWatch] = []

        func finishIfExited() {
            guard let termination = try? child.poll() else { return }
            forwardConsole(from: console)  // whatever the guest printed last
            if reported == nil && forced == nil { forced = .vmProcessDied(termination) }
            loop.stop()
        }

        watches.append(try loop.watchReadable(console.rawValue) { [weak self] in self?.forwardConsole(from: console) })
        watches.append(try loop.watchReadable(channel.socket.rawValue) { [logger] in
            do {
                switch try channel.receive(VMEvent.self) {
                case .running: logger.info("vm \"\(self.config.name)\" is running")
                case .ended(let end): reported = end
                }
            } catch IPCError.peerClosed {
                // The vm process is exiting; SIGCHLD follows.
            } catch {
                logger.error("vm channel: \(error)")
                child.kill()
            }
        })
        watches.append(try loop.onSignal(SIGCHLD) { finishIfExited() })
        for signal in [SIGINT, SIGTERM] {
            watches.append(try loop.onSignal(signal) {
                if forced == nil { forced = .interrupted(signal: signal) }
                try? channel.send(VMCommand.stop)
                child.kill()
            })
        }
        if let deadline {
            watches.append(try loop.after(seconds: deadline) {
                if reported == nil && forced == nil { forced = .deadlineExceeded(seconds: deadline) }
                child.kill()
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
        finishIfExited()  // the child may have died before the SIGCHLD watch existed
        if !child.hasBeenReaped { try loop.run() }
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

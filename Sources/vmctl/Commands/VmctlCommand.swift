import ArgumentParser
import Glibc
import Configuration
import IPC
import LinuxSystem

/// Options every verb takes.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customShort("s"), help: "vmd's control socket (default: $VMD_SOCKET or /run/vmd.sock).")
    var socket: String?

    var path: String { socket ?? getenv("VMD_SOCKET").map { String(cString: $0) } ?? "/run/vmd.sock" }

    func client() throws -> ControlClient { try ControlClient(socketPath: path) }
}

/// Runs a verb, printing a one-line error and exiting 1 when it fails.
func perform(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as VmctlError {
        FileDescriptor.standardError("vmctl: \(error)\n")
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch {
        FileDescriptor.standardError("vmctl: \(error)\n")
        throw ExitCode(1)
    }
}

func printDone(_ reply: ControlReply) {
    if case .done(let message) = reply { print("vmctl: \(message)") }
}

package struct Vmctl: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "vmctl",
        abstract: "Control the virtual machines of swift-vmd's vmd.",
        discussion: "Exit status: 0 on success, 1 when vmd refused or failed the request, 64 for a usage error.",
        subcommands: [Start.self, Stop.self, Status.self, Show.self, Stats.self, Console.self, Pause.self, Unpause.self,
                      Wait.self, Log.self, Reload.self, Create.self, Send.self, Receive.self, Migrate.self])
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a VM: by name (from vmd's configuration) or from a guest.conf (root only).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "A VM name, or the path of a vm.conf-style file.") var target: String
    @Flag(name: .customShort("c"), help: "Attach to the console once started.") var console = false

    func run() throws {
        try perform {
            let client = try connection.client()
            let request: ControlRequest
            if target.contains("/") || target.hasSuffix(".conf") || access(target, F_OK) == 0 {
                let path = target.hasPrefix("/") ? target : currentDirectory() + "/" + target
                let bytes: [UInt8]
                do {
                    bytes = try RegularFile.read(path, limit: ControlRequest.maximumConfigText)
                } catch {
                    throw VmctlError("cannot read \(target): \(error)")
                }
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw VmctlError("cannot read \(target): not UTF-8 text")
                }
                request = .startConfig(text: text, path: target, directory: directory(of: path))
            } else {
                request = .startNamed(target)
            }
            guard case .started(let id, let name) = try client.expectSuccess(request) else { throw VmctlError("unexpected reply") }
            print("vmctl: started vm \(id) successfully, name \(name)")
            if console { try attach(to: .id(id), connection: connection) }
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a VM: ask the guest to shut down (or kill it with -f).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String?
    @Flag(name: .customShort("a"), help: "Stop every VM you may control.") var all = false
    @Flag(name: .customShort("f"), help: "Force: kill the VM now.") var force = false
    @Flag(name: .customShort("w"), help: "Wait until the VM has stopped (with -a: every one).") var wait = false
    @Option(name: .customShort("t"), help: ArgumentHelp("Give the guest this long to shut down before it is killed (default 30).",
                                                        valueName: "seconds"))
    var timeout: UInt32?

    func validate() throws {
        guard all != (target != nil) else { throw ValidationError("name one VM or use -a") }
        if let timeout {
            guard (1...3600).contains(timeout) else { throw ValidationError("-t takes 1 to 3600 seconds") }
            guard !force else { throw ValidationError("-t is the grace period of a graceful stop; -f kills at once") }
        }
    }

    func run() throws {
        try perform {
            let client = try connection.client()
            if all {
                printDone(try client.expectSuccess(.stopAll(force: force, gracePeriod: timeout ?? 0)))
                guard wait else { return }
                // Every VM this user may see that has not stopped yet.
                guard case .status(let entries) = try client.expectSuccess(.status(nil)) else { throw VmctlError("unexpected reply") }
                for entry in entries where entry.state != "stopped" {
                    printDone(try client.expectSuccess(.wait(.id(entry.id))))
                }
                return
            }
            let vm = VMTarget(target!)
            printDone(try client.expectSuccess(.stop(vm, force: force, gracePeriod: timeout ?? 0)))
            if wait { printDone(try client.expectSuccess(.wait(vm))) }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "List VMs: id, pid, vcpus, memory, state, owner, name.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Only this VM (id or name).") var target: String?
    @Flag(help: "One JSON array, an object per VM (keys in vmctl(8)).") var json = false

    func run() throws {
        try perform {
            guard case .status(let entries) = try connection.client().expectSuccess(.status(target.map(VMTarget.init))) else {
                throw VmctlError("unexpected reply")
            }
            print(json ? StatusJSON.status(entries).text : StatusTable.render(entries))
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "The same as status.")
    @OptionGroup var connection: ConnectionOptions
    @Argument var target: String?
    @Flag(help: "As for status.") var json = false

    func run() throws {
        var status = Status()
        status.connection = connection
        status.target = target
        status.json = json
        try status.run()
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Counters of running VMs: exits per vCPU, requests and bytes per disk, packets per NIC.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Only this VM (id or name); default: every running VM you may see.") var target: String?
    @Flag(help: "One JSON array, an object per VM (keys in vmctl(8)).") var json = false

    func run() throws {
        try perform {
            let client = try connection.client()
            let targets: [VMTarget]
            if let target {
                targets = [VMTarget(target)]
            } else {
                // One request per VM: each answer stays far below a frame, however many VMs run.
                guard case .status(let entries) = try client.expectSuccess(.status(nil)) else { throw VmctlError("unexpected reply") }
                targets = entries.filter { $0.state != "stopped" }.map { .id($0.id) }
            }
            var all: [VMStats] = []
            for vm in targets {
                do {
                    guard case .stats(let stats) = try client.expectSuccess(.stats(vm)) else { throw VmctlError("unexpected reply") }
                    all.append(stats)
                } catch let error as VmctlError {
                    if target != nil { throw error }  // a VM that stopped between the list and its turn is left out
                }
            }
            print(json ? StatusJSON.stats(all).text : StatsTable.render(all))
        }
    }
}

func attach(to vm: VMTarget, connection: ConnectionOptions) throws {
    guard case .console(let fd, let name) = try connection.client().expectSuccess(.console(vm)) else {
        throw VmctlError("unexpected reply")
    }
    try ConsoleSession(console: fd, name: name).run()
}

struct Console: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "console", abstract: "Attach to a VM's serial console; type ~. to detach.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String

    func run() throws {
        try perform { try attach(to: VMTarget(target), connection: connection) }
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause a VM's vCPUs.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String

    func run() throws {
        try perform { printDone(try connection.client().expectSuccess(.pause(VMTarget(target)))) }
    }
}

struct Unpause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Resume a paused VM.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String

    func run() throws {
        try perform { printDone(try connection.client().expectSuccess(.unpause(VMTarget(target)))) }
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Wait until a VM stops.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String

    func run() throws {
        try perform { printDone(try connection.client().expectSuccess(.wait(VMTarget(target)))) }
    }
}

struct Log: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "Set vmd's log level in every process (root only).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "brief or verbose.") var level: String

    func validate() throws {
        guard ["brief", "verbose"].contains(level) else { throw ValidationError("expected brief or verbose") }
    }

    func run() throws {
        try perform { printDone(try connection.client().expectSuccess(.log(verbose: level == "verbose"))) }
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reload", abstract: "Re-read vmd's configuration file (root only).")
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        try perform { printDone(try connection.client().expectSuccess(.reload)) }
    }
}

/// The working directory, without Foundation.
func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
    guard getcwd(&buffer, buffer.count) != nil else { return "." }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}


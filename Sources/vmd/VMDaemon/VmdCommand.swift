import ArgumentParser
import Glibc
import Logging
import Configuration
import DiskFormats
import IPC
import MemorySlots
import LinuxSystem

package struct Vmd: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "vmd",
        abstract: "swift-vmd: a multi-process KVM virtual machine monitor.",
        discussion: """
            vmd creates each VM's guest memory as sealed memfd slots and runs each VM as a \
            vm process plus one sandboxed process per virtio device. Without a subcommand it \
            runs as the daemon that vmctl(8) talks to; `vmd boot guest.conf` runs one VM in \
            the foreground instead.
            """,
        subcommands: [Serve.self, Boot.self, Check.self],
        defaultSubcommand: Serve.self)

    static let defaultConfigPath = Daemon.defaultConfigPath
    static let defaultSocketPath = "/run/vmd.sock"

    /// -s PATH, else VMD_SOCKET, else /run/vmd.sock (the same rule as vmctl's).
    static func socketPath(_ option: String?) -> String {
        option ?? getenv("VMD_SOCKET").map { String(cString: $0) } ?? defaultSocketPath
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon (the default): start the enabled VMs of the configuration and serve vmctl.")

    @Flag(name: .customShort("d"), help: "Stay in the foreground and log to standard error (otherwise: detach, log to syslog). The VMs' processes log through vmd, tagged VM/role.")
    var foreground = false

    @Option(name: .customShort("f"), help: "The configuration file (vm.conf grammar).")
    var file: String = Vmd.defaultConfigPath

    @Flag(name: .customShort("n"), help: "Only check the configuration file (grammar, owners, kernels, disks, switches) and print what is wrong.")
    var checkOnly = false

    @Option(name: .customShort("s"), help: "The control socket (default: $VMD_SOCKET or \(Vmd.defaultSocketPath)).")
    var socket: String?

    @Option(name: .customShort("m"), help: "Take live migrations (vmctl migrate) of the VMs this configuration defines on HOST:PORT or a unix socket path. Anyone who can connect there can offer a stream for such a VM while it is not running: bind it to an address only the other vmd reaches.")
    var migrationListen: String?

    @Flag(name: .shortAndLong, help: "Log verbosely.")
    var verbose = false

    func run() throws {
        if checkOnly {
            return try Check(config: file).run()
        }
        guard getuid() == 0 else {
            FileDescriptor.standardError("vmd: must run as root (it opens /dev/kvm, disks and taps for its VMs)\n")
            throw ExitCode(ExitStatus.setupFailure)
        }
        if !foreground && daemon(0, 0) != 0 {
            FileDescriptor.standardError("vmd: daemon: \(String(cString: strerror(errno)))\n")
            throw ExitCode(ExitStatus.setupFailure)
        }
        VmdLog.bootstrap(foreground ? .standardError : .syslog(identity: "vmd"), level: verbose ? .debug : .info)
        do {
            try SandboxUser.configure()
        } catch {
            FileDescriptor.standardError("vmd: \(error)\n")
            throw ExitCode(ExitStatus.setupFailure)
        }
        prepareChildrenNamespaces(logger: Logger(label: "vmd"))
        if let advice = ShmemHugePages.advice(setting: ShmemHugePages.hostSetting()) { Logger(label: "vmd").notice("\(advice)") }
        do {
            try Daemon(options: Daemon.Options(configPath: file, socketPath: Vmd.socketPath(socket),
                                               migrationListen: try migrationListen.map(MigrationEndpoint.init))).run()
        } catch {
            Logger(label: "vmd").critical("\(error)")
            FileDescriptor.standardError("vmd: \(error)\n")
            // 78 as for vmd -n: a service manager can tell a wrong file (do not restart) from the rest.
            let wrongFile = error is ConfigError || error is ResolvedOwner.ResolutionError
            throw ExitCode(wrongFile ? ExitStatus.configError : ExitStatus.setupFailure)
        }
    }
}

struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot one VM from a guest.conf in the foreground, with its console on stdin/stdout.",
        discussion: """
            The VM's serial console is forwarded to standard output, and standard input to it. \
            A guest that reboots (reset or triple fault) is restarted with fresh RAM, as a PC \
            reboots (at most \(RestartPolicy.limit) times a minute); --no-reboot ends the VM instead. \
            When the guest ends, vmd prints how on standard error and exits with:
              the guest's code  the guest wrote it to the debug-exit port (0xf4)
              0                 the guest powered off, reset (with --no-reboot), or was stopped
              \(ExitStatus.tripleFault)                triple fault
              \(ExitStatus.deadline)                the --deadline passed (the VM was killed)
              \(ExitStatus.interrupted)                vmd was interrupted (SIGINT/SIGTERM)
              \(ExitStatus.vmFailure)                the vm process failed
              \(ExitStatus.setupFailure)                the VM could not be set up (missing kernel, no /dev/kvm, ...)
              \(ExitStatus.configError)                the configuration file is wrong
            """)

    @Argument(help: "A vm.conf-style file with one or more vm blocks.")
    var config: String

    @Option(name: .long, help: "Which vm block to boot (needed when the file has several).")
    var name: String?

    @Option(name: .long, help: "Kill the VM if it has not ended after this many seconds.")
    var deadline: Double?

    @Flag(name: .long, help: "End the VM when the guest reboots, instead of restarting it.")
    var noReboot = false

    @Flag(name: .shortAndLong, help: "Log more (the vm process's boot details).")
    var verbose = false

    func run() throws {
        let level: Logger.Level = verbose ? .info : .warning
        VmdLog.bootstrap(.standardError, level: level)
        do {
            try SandboxUser.configure()
        } catch {
            FileDescriptor.standardError("vmd: \(error)\n")
            throw ExitCode(ExitStatus.setupFailure)
        }
        let logger = Logger(label: "vmd")
        prepareChildrenNamespaces(logger: logger)
        if let advice = ShmemHugePages.advice(setting: ShmemHugePages.hostSetting()) { logger.info("\(advice)") }
        let vm: VMConfig
        let file: ConfigFile
        do {
            file = try ConfigParser.load(path: config)
            vm = try selectVM(from: file, named: name)
        } catch {
            FileDescriptor.standardError("vmd: \(error)\n")
            throw ExitCode(ExitStatus.configError)
        }
        let outcome: VMOutcome
        var restarts = 0
        do {
            var launcher = VMLauncher(config: vm, configDirectory: directory(of: config), logger: logger)
            launcher.localPrefix = file.localPrefix
            let foreground = ForegroundVM(launcher: launcher, deadline: deadline, restartsOnReset: !noReboot, logger: logger)
            outcome = try foreground.run()
            restarts = foreground.restarts
        } catch {
            FileDescriptor.standardError("vmd: vm \"\(vm.name)\": \(error)\n")
            throw ExitCode(ExitStatus.setupFailure)
        }
        let restarted = restarts == 0 ? "" : " (restarted \(restarts) time\(restarts == 1 ? "" : "s"))"
        FileDescriptor.standardError("vmd: vm \"\(vm.name)\" ended: \(outcome)\(restarted)\n")
        throw ExitCode(outcome.exitStatus)
    }

    private func selectVM(from file: ConfigFile, named name: String?) throws -> VMConfig {
        if let name {
            guard let vm = file.vms.first(where: { $0.name == name }) else { throw ValidationError("\(config): no vm named \"\(name)\"") }
            return vm
        }
        guard file.vms.count == 1 else {
            throw ValidationError("\(config): has \(file.vms.count) vm blocks; choose one with --name")
        }
        return file.vms[0]
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check a configuration file and print what is wrong (as vmd -n -f FILE).")

    @Argument(help: "The file to check.")
    var config: String

    init() {}

    init(config: String) {
        self.config = config
    }

    /// A VM whose cgroup limit this host cannot enforce will not start: said now, as a
    /// warning, since the file itself is right.
    private func warnOfUnenforceableLimits(_ vms: [VMConfig]) {
        let probed = CgroupHierarchy.probe()
        for vm in vms {
            // The VM's own limits say what they need (as at start); each io limit is at its disk.
            var needed = CgroupLimits(config: vm).controllers.map { ($0.controller, $0.statement, vm.optionLocations[$0.statement] ?? vm.location) }
            for disk in vm.disks where !disk.ioLimit.isUnlimited { needed.append(("io", "io limit", disk.location)) }
            for (controller, statement, location) in needed {
                let why: String
                switch probed {
                case .failure(let unavailable): why = unavailable.description
                case .success(let controllers) where !controllers.contains(controller):
                    why = "this host's cgroup v2 has no \(controller) controller for vmd (bound to a cgroup v1 hierarchy, or not delegated)"
                case .success: continue
                }
                FileDescriptor.standardError("vmd: \(location): warning: vm \(vm.name): \(statement) cannot be enforced here: \(why); the VM will not start on this host\n")
            }
        }
    }

    /// Parses, then checks every VM as starting it would (`VMPreflight`), and reports every problem.
    func run() throws {
        let file: ConfigFile
        do {
            file = try ConfigParser.load(path: config)
        } catch {
            FileDescriptor.standardError("vmd: \(error)\n")
            throw ExitCode(ExitStatus.configError)
        }
        let problems = file.vms.flatMap { VMPreflight(vm: $0, directory: directory(of: config)).problems() }
        guard problems.isEmpty else {
            problems.forEach { FileDescriptor.standardError("vmd: \($0)\n") }
            throw ExitCode(ExitStatus.configError)
        }
        for vm in file.vms {
            let preflight = VMPreflight(vm: vm, directory: directory(of: config))
            for disk in vm.disks where DiskImage.rawLooksLikeQcow2(disk, resolvedPath: preflight.resolve(disk.path)) {
                FileDescriptor.standardError("vmd: \(disk.location): warning: disk \(preflight.resolve(disk.path)) starts with the qcow2 magic but is raw here (the guest sees its bytes); write format qcow2 if it is an image\n")
            }
            for disk in vm.disks {
                let path = preflight.resolve(disk.path)
                guard let header = DiskImage.writableQcow2Header(disk, resolvedPath: path) else { continue }
                if header.autoclearFeatures & Qcow2Header.AutoclearFeature.bitmaps != 0 {
                    FileDescriptor.standardError("vmd: \(disk.location): warning: disk \(path) has persistent dirty bitmaps, which swift-vmd does not keep: they are marked inconsistent when the VM starts (QEMU then drops them); take the next backup in full\n")
                }
                if header.isDirty {
                    FileDescriptor.standardError("vmd: \(disk.location): notice: disk \(path) is dirty (lazy refcounts, its last writer stopped before it counted its clusters): its refcounts are rebuilt from its tables when the VM starts, as QEMU does\n")
                }
            }
        }
        warnOfUnenforceableLimits(file.vms)
        print("\(config): configuration OK (\(file.vms.count) vm\(file.vms.count == 1 ? "" : "s"))")
    }
}

/// The network and mount namespaces the VMs' sandboxed processes share (`SharedNamespace`).
/// Where one cannot be made, each child makes its own as before: a notice, not a failure.
func prepareChildrenNamespaces(logger: Logger) {
    for failure in SharedNamespace.prepareAll() {
        logger.notice("\(failure); each VM process makes its own")
    }
}

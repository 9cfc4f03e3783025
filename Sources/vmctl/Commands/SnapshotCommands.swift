import ArgumentParser
import Glibc
import IPC
import LinuxSystem

/// `vmctl send NAME > file`, as OpenBSD's: the VM's snapshot on standard output, then the VM stops.
struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Pause a VM, write its snapshot to standard output and stop it (vmctl send NAME > file).",
        discussion: "The snapshot holds the vCPUs, the interrupt controllers and timers, the devices' state and the guest's RAM (pages never written or all zero are left out). Disks and NICs are not in it: `vmctl receive` reopens those from the VM's configuration.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String

    func run() throws {
        try perform {
            guard isatty(STDOUT_FILENO) == 0 else { throw VmctlError("standard output is a terminal: redirect it to a file (vmctl send NAME > FILE)") }
            let output = try standardStream(STDOUT_FILENO)
            guard case .done(let message) = try connection.client().expectSuccess(.send(VMTarget(target), output: output)) else {
                throw VmctlError("unexpected reply")
            }
            FileDescriptor.standardError("vmctl: \(message)\n")  // standard output is the snapshot
        }
    }
}

/// `vmctl receive NAME < file`: the VM vmd knows by NAME, started from a snapshot.
struct Receive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Start a VM from a snapshot on standard input (vmctl receive NAME < file).",
        discussion: "NAME is a VM vmd knows (its configuration, or one started from a file that has stopped); its disks and NICs come from that configuration, and the snapshot must be of the same shape (memory, vCPUs, devices), which is checked before the guest runs.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .customShort("l"), help: "Lazy: start the guest before its RAM is read; pages come in from the file as it touches them, the rest in the background (the snapshot must be a regular file).")
    var lazy = false
    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        try perform {
            guard isatty(STDIN_FILENO) == 0 else { throw VmctlError("standard input is a terminal: redirect it from a file (vmctl receive NAME < FILE)") }
            let input = try standardStream(STDIN_FILENO)
            guard case .started(let id, let name) = try connection.client().expectSuccess(.receive(name, input: input, lazy: lazy)) else {
                throw VmctlError("unexpected reply")
            }
            print("vmctl: received vm \(id) successfully, name \(name)")
        }
    }
}

/// A copy of standard input or output to hand to vmd (the original stays vmctl's).
private func standardStream(_ fd: Int32) throws -> FileDescriptor {
    let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
    guard copy >= 0 else { throw VmctlError("cannot use descriptor \(fd): \(String(cString: strerror(errno)))") }
    return FileDescriptor(adopting: copy)
}

/// `vmctl migrate NAME DEST`: live migration to another vmd (root only).
struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a running VM to the vmd listening at DEST (vmd -m), without stopping it (root only).",
        discussion: "DEST is HOST:PORT, [IPv6]:PORT or a unix socket path. The VM's RAM is copied while it runs, then again what it wrote, until little is left; then it is paused, the rest and its state are sent, and it stops here once the receiver runs it. The receiver takes it only for a VM its own configuration defines (the same shape), with that VM's disks and NICs. If anything fails the VM goes on here. Once done it prints the bytes sent and how long the guest was down, from its pause here until the receiver said that it runs.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The VM's id or name.") var target: String
    @Argument(help: "Where the receiving vmd listens.") var destination: String

    func run() throws {
        try perform { printDone(try connection.client().expectSuccess(.migrate(VMTarget(target), destination: destination))) }
    }
}

import Glibc
import Logging
import Shared

/// The vm process (design §1): receives its slots and descriptors from vmd,
/// builds the VM, runs it, and reports how it ended. Started by vmd only.
struct VMProcess {
    let channel: Channel
    var logger = Logger(label: "vm")

    /// Receives the SHAREMEM handoff and the boot request, in that order.
    func receiveSetup() throws -> (GuestMemory, BootRequest, kvm: FileDescriptor, kernel: FileDescriptor, console: FileDescriptor) {
        guard case .shareMemory(let slots, let memfds) = try channel.receive(VMCommand.self) else {
            throw IPCError.malformed("expected shareMemory first")
        }
        let memory = try GuestMemory.mapShared(slots: slots, memfds: memfds)
        guard case .boot(let request, let kvm, let kernel, let console) = try channel.receive(VMCommand.self) else {
            throw IPCError.malformed("expected boot after shareMemory")
        }
        return (memory, request, kvm, kernel, console)
    }

    func run() throws -> GuestEnd {
        let (memory, request, kvm, kernel, console) = try receiveSetup()
        var logger = self.logger
        logger[metadataKey: "vm"] = "\(request.name)"
        let machine = try VirtualMachine(request: request, memory: memory, kvmDevice: kvm, kernel: kernel,
                                         console: console, logger: logger)
        kernel.close()  // loaded; the vm process keeps no boot files open
        try channel.send(VMEvent.running)
        try machine.start()

        let loop = try EventLoop()
        var outcome: GuestEnd?
        let ended = try loop.watchReadable(machine.endedEvent.rawValue) {
            _ = machine.endedEvent.drainEvent()
            outcome = machine.stop(reason: .stopped)
            loop.stop()
        }
        let commands = try loop.watchReadable(channel.socket.rawValue) {
            do {
                switch try channel.receive(VMCommand.self) {
                case .stop:
                    outcome = machine.stop(reason: .stopped)
                    loop.stop()
                case .shareMemory, .boot:
                    logger.error("ignoring a second setup message")
                }
            } catch {
                // vmd went away or sent garbage: nobody supervises this VM any more.
                logger.error("control channel: \(error); stopping")
                outcome = machine.stop(reason: .stopped)
                loop.stop()
            }
        }
        try? console.setNonBlocking(true)
        let consoleInput = try loop.watchReadable(console.rawValue) {
            if let bytes = try? console.read(upTo: 256), !bytes.isEmpty { machine.receiveConsoleInput(bytes) }
        }
        try loop.run()
        withExtendedLifetime((ended, commands, consoleInput)) {}
        return outcome ?? machine.stop(reason: .stopped)
    }
}

import Glibc
import Logging
import GuestRAM
import IPC
import LinuxSystem

/// The first steps of every virtio device process, before its device-specific
/// setup: logging as vmd says, dying with vmd, the control channel on fd 3,
/// and the SHAREMEM handoff, then the setup message itself.
public struct DeviceProcessStart {
    public let control: Channel
    public let memory: GuestMemory
    public let setup: DeviceSetupCommand
    /// Where the device counts for `vmctl stats`: vmd's page, or a private one if vmd sent none.
    public let counters: CounterPage

    public init() throws {
        try ChildSetup.dieWithParent()
        control = ChildSetup.inheritedChannel()
        guard case .shareMemory(let slots, let memfds) = try control.receive(DeviceSetupCommand.self) else {
            throw IPCError.malformed("expected shareMemory first")
        }
        memory = try GuestMemory.mapShared(slots: slots, memfds: memfds)
        var next = try control.receive(DeviceSetupCommand.self)
        if case .counters(let page) = next {
            counters = try CounterPage.adopt(page)
            page.close()
            next = try control.receive(DeviceSetupCommand.self)
        } else {
            counters = try CounterPage.anonymous(slots: 1)
        }
        setup = next
    }

    /// Runs a device process's `main`: a failure is logged and ends the process with status 70.
    public static func run(identity: String, _ body: (inout Logger) throws -> Void) -> Never {
        VmdLog.bootstrapChild()
        var logger = Logger(label: identity)
        do {
            try body(&logger)
        } catch {
            logger.critical("\(error)")
            exit(70)
        }
        exit(0)
    }
}

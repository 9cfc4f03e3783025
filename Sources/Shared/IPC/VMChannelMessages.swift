import LinuxSystem
import MemorySlots
/// What the vm process needs to build and boot one VM; travels with `VMCommand.boot`.
public struct BootRequest: Equatable, Sendable {
    public var name: String
    public var vcpus: Int
    public var cmdline: String
    /// The boot image is a BIOS (`boot device disk`), not a kernel: vm places it at the
    /// reset vector, serves it fw_cfg and lets the boot vCPU start from reset.
    public var firmware: Bool
    /// With a snapshot: restore lazily (`vmctl receive -l`), RAM paged in on first touch.
    public var lazyRestore: Bool
    /// With a snapshot: it is a live migration's stream (RAM in rounds), from a socket.
    public var incomingMigration: Bool

    public init(name: String, vcpus: Int, cmdline: String, firmware: Bool = false, lazyRestore: Bool = false,
                incomingMigration: Bool = false) {
        self.name = name
        self.vcpus = vcpus
        self.cmdline = cmdline
        self.firmware = firmware
        self.lazyRestore = lazyRestore
        self.incomingMigration = incomingMigration
    }
}

/// vmd → vm. Descriptors travel beside the payload and are owned by the receiver.
public enum VMCommand: ChannelMessage {
    /// The SHAREMEM handoff (design §2): the slot table and one memfd per slot.
    case shareMemory(slots: [SlotDescriptor], memfds: [FileDescriptor])
    /// /dev/kvm, opened by vmd, sent right after `shareMemory`: vm makes the KVM VM and gives
    /// it RAM (which waits for a grace period in the kernel) while vmd spawns the devices.
    case kvm(FileDescriptor)
    /// Build the VM and run it: the boot image, the initrd if any, and the console, opened
    /// by vmd. With `snapshot` (`vmctl receive`), the VM's state comes from it instead of a
    /// boot: the same shape is built, then brought to the saved state before it runs.
    case boot(BootRequest, kernel: FileDescriptor, initrd: FileDescriptor?, console: FileDescriptor,
              snapshot: FileDescriptor? = nil)
    /// Stop the guest now (vmd's deadline or a forced stop).
    case stop
    /// A virtio device served by another process; sent before `boot`.
    case attachDevice(VirtioAttachment, wiring: DeviceWiring)
    /// Ask the guest to shut down (graceful stop); vmd forces after its timeout.
    case requestShutdown
    case pause
    case resume
    /// `vmctl log brief|verbose`: a swift-log level name.
    case setLogLevel(String)
    /// `vmctl send`: pause (if running) and write the whole VM's state to the descriptor;
    /// answered with `saved` (the VM stays paused) or `saveFailed` (it runs on as before).
    /// `ram`: each RAM slot's memfd, lent for the send (to find the pages ever written); vm
    /// holds none otherwise.
    case save(FileDescriptor, ram: [FileDescriptor])
    /// A lazy restore's pager has copied in every page: stop routing faults to it, start the devices.
    case memoryLoaded
    /// `vmctl migrate`: send the VM down this connection while it runs (pre-copy), pausing it
    /// for the last round; answered like `save` (`saved`: it stays paused; `saveFailed`: it runs on).
    case migrate(FileDescriptor, ram: [FileDescriptor])
    /// The vm process's `CounterPage` (exits by kind per vCPU), before `boot`.
    case counters(FileDescriptor)

    public var tag: UInt16 {
        switch self {
        case .shareMemory: 1
        case .boot: 2
        case .stop: 3
        case .attachDevice: 4
        case .requestShutdown: 5
        case .pause: 6
        case .resume: 7
        case .setLogLevel: 8
        case .save: 9
        case .memoryLoaded: 10
        case .migrate: 11
        case .counters: 12
        case .kvm: 13
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .shareMemory(let slots, let memfds):
            writer.writeSlotTable(slots, memfds: memfds)
        case .boot(let request, let kernel, let initrd, let console, let snapshot):
            writer.write(request.name)
            writer.write(UInt32(request.vcpus))
            writer.write(request.cmdline)
            writer.write(request.firmware)
            writer.write(request.lazyRestore)
            writer.write(request.incomingMigration)
            writer.write(initrd != nil)
            writer.write(snapshot != nil)
            writer.write(kernel)
            if let initrd { writer.write(initrd) }
            writer.write(console)
            if let snapshot { writer.write(snapshot) }
        case .stop, .requestShutdown, .pause, .resume, .memoryLoaded:
            break
        case .setLogLevel(let level):
            writer.write(level)
        case .counters(let fd), .kvm(let fd):
            writer.write(fd)
        case .save(let fd, let ram), .migrate(let fd, let ram):
            writer.write(fd)
            writer.write(UInt32(ram.count))
            ram.forEach { writer.write($0) }
        case .attachDevice(let attachment, let wiring):
            writer.write(attachment.shape.type.rawValue)
            writer.write(attachment.shape.queueCount)
            writer.write(attachment.shape.maximumQueueSize)
            writer.write(attachment.name)
            wiring.encode(into: &writer)
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> VMCommand {
        switch tag {
        case 1:
            let (slots, memfds) = try reader.readSlotTable()
            return .shareMemory(slots: slots, memfds: memfds)
        case 2:
            let name = try reader.read(String.self, limit: 64)
            let vcpus = Int(try reader.read(UInt32.self))
            let cmdline = try reader.read(String.self)
            let firmware = try reader.read(Bool.self)
            let lazyRestore = try reader.read(Bool.self)
            let incomingMigration = try reader.read(Bool.self)
            let hasInitrd = try reader.read(Bool.self)
            let hasSnapshot = try reader.read(Bool.self)
            let kernel = try reader.readDescriptor()
            let initrd = hasInitrd ? try reader.readDescriptor() : nil
            let console = try reader.readDescriptor()
            return .boot(BootRequest(name: name, vcpus: vcpus, cmdline: cmdline, firmware: firmware, lazyRestore: lazyRestore,
                                     incomingMigration: incomingMigration),
                         kernel: kernel, initrd: initrd, console: console, snapshot: hasSnapshot ? try reader.readDescriptor() : nil)
        case 3:
            return .stop
        case 4:
            let type = try reader.readDeviceType()
            let queueCount = try reader.read(UInt16.self)
            guard (1...UInt16(TransportRequest.maximumQueues)).contains(queueCount) else {
                throw IPCError.malformed("\(queueCount) queues")
            }
            let shape = DeviceShape(type: type, queueCount: queueCount, maximumQueueSize: try reader.read(UInt16.self))
            let attachment = VirtioAttachment(shape: shape, name: try reader.read(String.self, limit: 64))
            return .attachDevice(attachment, wiring: try DeviceWiring.decode(from: &reader))
        case 5: return .requestShutdown
        case 6: return .pause
        case 7: return .resume
        case 8: return .setLogLevel(try reader.read(String.self, limit: 16))
        case 9: return .save(try reader.readDescriptor(), ram: try reader.readDescriptors(limit: 8))
        case 10: return .memoryLoaded
        case 11: return .migrate(try reader.readDescriptor(), ram: try reader.readDescriptors(limit: 8))
        case 12: return .counters(try reader.readDescriptor())
        case 13: return .kvm(try reader.readDescriptor())
        default:
            throw IPCError.unknownTag(tag)
        }
    }
}

/// How a guest ended, as the vm process saw it.
public enum GuestEnd: Equatable, Sendable, CustomStringConvertible {
    /// The guest wrote this code to the debug-exit port.
    case exitCode(UInt8)
    /// KVM_EXIT_SHUTDOWN: a triple fault.
    case tripleFault
    /// The guest asked for a reset (i8042 pulse or KVM system event).
    case reset
    /// The guest powered off (KVM system event).
    case powerOff
    /// vmd asked the VM to stop.
    case stopped
    /// KVM or the VMM failed; the text says how.
    case failed(String)

    /// A PC would reboot: the guest asked for a reset or triple-faulted.
    public var isReboot: Bool { self == .reset || self == .tripleFault }

    public var description: String {
        switch self {
        case .exitCode(let code): "exited with code \(code)"
        case .tripleFault: "triple fault"
        case .reset: "reset requested by the guest"
        case .powerOff: "powered off"
        case .stopped: "stopped"
        case .failed(let reason): "failed: \(reason)"
        }
    }
}

/// vm → vmd.
public enum VMEvent: ChannelMessage, Equatable {
    /// Memory is mapped and sealed, the vCPUs are about to run.
    case running
    case ended(GuestEnd)
    /// Every vCPU is parked (answer to `pause`).
    case paused
    /// The vCPUs run again (answer to `resume`).
    case resumed
    /// The snapshot is written (answer to `save`): this many bytes. The VM is paused.
    case saved(bytes: UInt64)
    /// The snapshot could not be written; the VM goes on as it was.
    case saveFailed(String)
    /// A lazy restore: the vCPUs run, and faults on guest RAM wait on this userfaultfd for a
    /// pager to fill them from the snapshot (vmd hands it on). `shape` is the snapshot's
    /// shape as encoded in it; `hostAddresses` where each RAM slot is mapped in vm.
    case deferredMemory(uffd: FileDescriptor, shape: [UInt8], hostAddresses: [UInt64])
    /// A live migration's stream is sent (answer to `migrate`): this many bytes. The VM has
    /// been paused since `pausedAt` (MonotonicClock nanoseconds of this host), so vmd can
    /// tell how long the guest was down once the receiver confirms that it runs.
    case migrated(bytes: UInt64, pausedAt: UInt64)

    public var tag: UInt16 {
        switch self {
        case .running: 1
        case .ended: 2
        case .paused: 3
        case .resumed: 4
        case .saved: 5
        case .saveFailed: 6
        case .deferredMemory: 7
        case .migrated: 8
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .running, .paused, .resumed:
            break
        case .saved(let bytes):
            writer.write(bytes)
        case .saveFailed(let reason):
            writer.write(reason)
        case .migrated(let bytes, let pausedAt):
            writer.write(bytes)
            writer.write(pausedAt)
        case .deferredMemory(let uffd, let shape, let hostAddresses):
            writer.write(uffd)
            writer.write(shape)
            writer.write(UInt32(hostAddresses.count))
            hostAddresses.forEach { writer.write($0) }
        case .ended(let end):
            switch end {
            case .exitCode(let code): writer.write(UInt8(0)); writer.write(code)
            case .tripleFault: writer.write(UInt8(1))
            case .reset: writer.write(UInt8(2))
            case .powerOff: writer.write(UInt8(3))
            case .stopped: writer.write(UInt8(4))
            case .failed(let reason): writer.write(UInt8(5)); writer.write(reason)
            }
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> VMEvent {
        switch tag {
        case 1:
            return .running
        case 2:
            switch try reader.read(UInt8.self) {
            case 0: return .ended(.exitCode(try reader.read(UInt8.self)))
            case 1: return .ended(.tripleFault)
            case 2: return .ended(.reset)
            case 3: return .ended(.powerOff)
            case 4: return .ended(.stopped)
            case 5: return .ended(.failed(try reader.read(String.self)))
            case let kind: throw IPCError.malformed("guest end kind \(kind)")
            }
        case 3:
            return .paused
        case 4:
            return .resumed
        case 5:
            return .saved(bytes: try reader.read(UInt64.self))
        case 6:
            return .saveFailed(try reader.read(String.self))
        case 7:
            return .deferredMemory(uffd: try reader.readDescriptor(), shape: try reader.readBytes(limit: 64 * 1024),
                                   hostAddresses: try (0..<reader.readCount(limit: 8)).map { _ in try reader.read(UInt64.self) })
        case 8:
            return .migrated(bytes: try reader.read(UInt64.self), pausedAt: try reader.read(UInt64.self))
        default:
            throw IPCError.unknownTag(tag)
        }
    }
}

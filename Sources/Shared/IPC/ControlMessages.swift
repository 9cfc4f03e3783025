import LinuxSystem
/// Which VM a vmctl request is about.
public enum VMTarget: Equatable, Sendable, CustomStringConvertible {
    case id(Int)
    case name(String)

    /// vmctl's rule: a number is an id, anything else a name.
    public init(_ text: String) {
        if let id = Int(text), id > 0 { self = .id(id) } else { self = .name(text) }
    }

    public var description: String {
        switch self {
        case .id(let id): "\(id)"
        case .name(let name): name
        }
    }
}

/// One line of `vmctl status` (and one object of `vmctl status --json`).
public struct VMStatusEntry: Equatable, Sendable {
    /// One of the VM's processes while it runs: its name ("vm", "disk0", "net0", "pager") and pid.
    public struct Process: Equatable, Sendable {
        public var role: String
        public var pid: Int32
        public init(role: String, pid: Int32) { (self.role, self.pid) = (role, pid) }
    }

    public var id: Int
    public var pid: Int32          // 0 when not running
    public var vcpus: Int
    public var memoryBytes: UInt64
    public var state: String       // running, paused, stopping, stopped
    public var owner: String       // "root" or user[:group]
    public var name: String
    /// Why it last stopped, if it has.
    public var reason: String
    /// How often the guest rebooted (and was restarted) since `vmctl start`.
    public var restarts: Int
    /// Every process of the VM while it runs (empty when stopped).
    public var processes: [Process] = []
    /// The disks' image paths, in order (disk0 first).
    public var disks: [String] = []
    /// The NICs' taps, in order (net0 first); empty for a tap vmd picks at start.
    public var interfaces: [String] = []

    public init(id: Int, pid: Int32, vcpus: Int, memoryBytes: UInt64, state: String, owner: String, name: String, reason: String,
                restarts: Int = 0, processes: [Process] = [], disks: [String] = [], interfaces: [String] = []) {
        (self.id, self.pid, self.vcpus, self.memoryBytes, self.state, self.owner, self.name, self.reason, self.restarts) =
            (id, pid, vcpus, memoryBytes, state, owner, name, reason, restarts)
        (self.processes, self.disks, self.interfaces) = (processes, disks, interfaces)
    }
}

/// vmctl → vmd over the control socket (design §1).
public enum ControlRequest: ChannelMessage, Equatable {
    /// A VM defined in vmd's configuration.
    case startNamed(String)
    /// A VM from a guest.conf the client read: its text, its path (for messages
    /// and relative paths) and the directory relative paths resolve against.
    case startConfig(text: String, path: String, directory: String)

    /// The largest file `vmctl start FILE` sends: it and two paths of up to 4 KiB fit in a frame.
    public static let maximumConfigText = 48 * 1024
    /// Graceful unless `force`: the guest gets `gracePeriod` seconds to shut down
    /// (0: vmd's default, 30 s) before it is killed.
    case stop(VMTarget, force: Bool, gracePeriod: UInt32 = 0)
    case stopAll(force: Bool, gracePeriod: UInt32 = 0)
    /// Answered once the VM has stopped.
    case wait(VMTarget)
    case status(VMTarget?)
    /// Answered with the VM's console (pty) descriptor.
    case console(VMTarget)
    case pause(VMTarget)
    case unpause(VMTarget)
    case log(verbose: Bool)
    case reload
    /// `vmctl send NAME > file`: the VM's snapshot goes to `output` (vmctl's standard output),
    /// then the VM stops. Answered once it has.
    case send(VMTarget, output: FileDescriptor)
    /// `vmctl receive NAME < file`: the VM vmd knows by that name starts from the snapshot
    /// on `input`, with its disks and NICs from its configuration. Answered once it runs.
    /// `lazy` (`-l`): RAM is paged in from the file as the guest touches it.
    case receive(String, input: FileDescriptor, lazy: Bool)
    /// `vmctl migrate NAME DEST`: live migration to the vmd listening at DEST (root only).
    /// Answered once the receiver runs the VM (and it stopped here), or why not (it runs on here).
    case migrate(VMTarget, destination: String)
    /// `vmctl stats`: one running VM's counters, answered with `.stats`.
    case stats(VMTarget)

    public var tag: UInt16 {
        switch self {
        case .startNamed: 1
        case .startConfig: 2
        case .stop: 3
        case .stopAll: 4
        case .wait: 5
        case .status: 6
        case .console: 7
        case .pause: 8
        case .unpause: 9
        case .log: 10
        case .reload: 11
        case .send: 12
        case .receive: 13
        case .migrate: 14
        case .stats: 15
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .startNamed(let name): writer.write(name)
        case .startConfig(let text, let path, let directory):
            writer.write(Array(text.utf8))
            writer.write(path)
            writer.write(directory)
        case .stop(let target, let force, let gracePeriod): writer.write(target); writer.write(force); writer.write(gracePeriod)
        case .stopAll(let force, let gracePeriod): writer.write(force); writer.write(gracePeriod)
        case .wait(let target), .console(let target), .pause(let target), .unpause(let target), .stats(let target): writer.write(target)
        case .status(let target):
            writer.write(target != nil)
            if let target { writer.write(target) }
        case .log(let verbose): writer.write(verbose)
        case .reload: break
        case .send(let target, let output): writer.write(target); writer.write(output)
        case .receive(let name, let input, let lazy): writer.write(name); writer.write(input); writer.write(lazy)
        case .migrate(let target, let destination): writer.write(target); writer.write(destination)
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> ControlRequest {
        switch tag {
        case 1: return .startNamed(try reader.read(String.self, limit: 64))
        case 2:
            guard let text = String(validating: try reader.readBytes(limit: maximumConfigText), as: UTF8.self) else {
                throw IPCError.malformed("configuration is not UTF-8")
            }
            return .startConfig(text: text, path: try reader.read(String.self), directory: try reader.read(String.self))
        case 3: return .stop(try reader.readTarget(), force: try reader.read(Bool.self), gracePeriod: try reader.read(UInt32.self))
        case 4: return .stopAll(force: try reader.read(Bool.self), gracePeriod: try reader.read(UInt32.self))
        case 5: return .wait(try reader.readTarget())
        case 6: return .status(try reader.read(Bool.self) ? try reader.readTarget() : nil)
        case 7: return .console(try reader.readTarget())
        case 8: return .pause(try reader.readTarget())
        case 9: return .unpause(try reader.readTarget())
        case 10: return .log(verbose: try reader.read(Bool.self))
        case 11: return .reload
        case 12: return .send(try reader.readTarget(), output: try reader.readDescriptor())
        case 13: return .receive(try reader.read(String.self, limit: 64), input: try reader.readDescriptor(), lazy: try reader.read(Bool.self))
        case 14: return .migrate(try reader.readTarget(), destination: try reader.read(String.self, limit: 512))
        case 15: return .stats(try reader.readTarget())
        default: throw IPCError.unknownTag(tag)
        }
    }
}

extension VMStatusEntry {
    func encode(into writer: inout WireWriter) {
        writer.write(UInt32(id)); writer.write(pid); writer.write(UInt32(vcpus))
        writer.write(memoryBytes); writer.write(state); writer.write(owner)
        writer.write(name); writer.write(reason); writer.write(UInt32(clamping: restarts))
        writer.write(UInt32(processes.count))
        for process in processes { writer.write(process.role); writer.write(process.pid) }
        for list in [disks, interfaces] {
            writer.write(UInt32(list.count))
            list.forEach { writer.write($0) }
        }
    }

    static func decode(from reader: inout WireReader) throws -> VMStatusEntry {
        VMStatusEntry(id: Int(try reader.read(UInt32.self)), pid: try reader.read(Int32.self),
                      vcpus: Int(try reader.read(UInt32.self)), memoryBytes: try reader.read(UInt64.self),
                      state: try reader.read(String.self), owner: try reader.read(String.self),
                      name: try reader.read(String.self), reason: try reader.read(String.self),
                      restarts: Int(try reader.read(UInt32.self)),
                      processes: try (0..<reader.readCount(limit: 16)).map { _ in
                          VMStatusEntry.Process(role: try reader.read(String.self, limit: 64), pid: try reader.read(Int32.self))
                      },
                      disks: try (0..<reader.readCount(limit: 16)).map { _ in try reader.read(String.self) },
                      interfaces: try (0..<reader.readCount(limit: 16)).map { _ in try reader.read(String.self, limit: 64) })
    }
}

/// vmd → vmctl.
public enum ControlReply: ChannelMessage {
    case done(String)
    case failed(String)
    case started(id: Int, name: String)
    case status([VMStatusEntry])
    case console(FileDescriptor, name: String)
    case stats(VMStats)
    /// The first entries of a status list too long for one frame; more parts follow, and the
    /// list ends with a `.status` of the rest (`statusFrames`). The client joins them.
    case statusPart([VMStatusEntry])

    public var tag: UInt16 {
        switch self {
        case .done: 1
        case .failed: 2
        case .started: 3
        case .status: 4
        case .console: 5
        case .stats: 6
        case .statusPart: 7
        }
    }

    /// The most entries one status frame carries (what the decoder takes).
    public static let maximumStatusEntries = 512

    /// `.status(entries)` as the frames that carry it: `.statusPart`s of as many entries as fit
    /// a frame (and at most `maximumStatusEntries`), then a `.status` of the rest, so that a
    /// host with many VMs gets its whole list. One frame when it fits.
    public static func statusFrames(_ entries: [VMStatusEntry]) -> [ControlReply] {
        let room = IPCFrame.maximumPayload - MemoryLayout<UInt32>.size  // after the count
        var parts: [[VMStatusEntry]] = [[]]
        var used = 0
        for entry in entries {
            var writer = WireWriter()
            entry.encode(into: &writer)
            let size = writer.bytes.count
            if !parts[parts.count - 1].isEmpty && (used + size > room || parts[parts.count - 1].count == maximumStatusEntries) {
                parts.append([])
                used = 0
            }
            parts[parts.count - 1].append(entry)
            used += size
        }
        return parts.dropLast().map { .statusPart($0) } + [.status(parts[parts.count - 1])]
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .done(let message), .failed(let message): writer.write(message)
        case .started(let id, let name): writer.write(UInt32(id)); writer.write(name)
        case .status(let entries), .statusPart(let entries):
            writer.write(UInt32(entries.count))
            for entry in entries { entry.encode(into: &writer) }
        case .console(let fd, let name): writer.write(fd); writer.write(name)
        case .stats(let stats): stats.encode(into: &writer)
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> ControlReply {
        switch tag {
        case 1: return .done(try reader.read(String.self))
        case 2: return .failed(try reader.read(String.self))
        case 3: return .started(id: Int(try reader.read(UInt32.self)), name: try reader.read(String.self))
        case 4, 7:
            let count = try reader.readCount(limit: maximumStatusEntries)
            let entries = try (0..<count).map { _ in try VMStatusEntry.decode(from: &reader) }
            return tag == 4 ? .status(entries) : .statusPart(entries)
        case 5: return .console(try reader.readDescriptor(), name: try reader.read(String.self))
        case 6: return .stats(try VMStats.decode(from: &reader))
        default: throw IPCError.unknownTag(tag)
        }
    }
}

extension WireWriter {
    mutating func write(_ target: VMTarget) {
        switch target {
        case .id(let id): write(UInt8(0)); write(UInt32(id))
        case .name(let name): write(UInt8(1)); write(name)
        }
    }
}

extension WireReader {
    mutating func readTarget() throws -> VMTarget {
        switch try read(UInt8.self) {
        case 0: return .id(Int(try read(UInt32.self)))
        case 1: return .name(try read(String.self, limit: 64))
        case let kind: throw IPCError.malformed("target kind \(kind)")
        }
    }
}

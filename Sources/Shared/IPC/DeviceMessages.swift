import LinuxSystem
import MemorySlots
/// What vmd tells the vm process about one virtio device it attached.
public struct VirtioAttachment: Equatable, Sendable {
    /// The device's declared shape: the transport is built from it.
    public var shape: DeviceShape
    /// For log lines: "disk0", "net1".
    public var name: String

    public init(shape: DeviceShape, name: String) {
        self.shape = shape
        self.name = name
    }
}

/// One queue as the driver set it up, sent to the device at DRIVER_OK.
public struct QueueActivation: Equatable, Sendable {
    public var index: UInt16
    public var size: UInt16
    public var descriptorTable: UInt64
    public var availableRing: UInt64
    public var usedRing: UInt64
    /// Where the device goes on from: 0 and 0 for a driver's new queue, a snapshot's
    /// `QueueIndices` for a restored one.
    public var resumeAt: QueueIndices

    public init(index: UInt16, size: UInt16, descriptorTable: UInt64, availableRing: UInt64, usedRing: UInt64,
                resumeAt: QueueIndices = QueueIndices()) {
        self.index = index
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
        self.resumeAt = resumeAt
    }
}

/// A queue's place in its rings, as the device process keeps it: the next available entry
/// to take (less any chains it took and holds without having used them: a new process takes
/// those again) and the next used entry to fill. Saved in a snapshot (`queueState`).
public struct QueueIndices: Equatable, Sendable {
    public var nextAvailable: UInt16
    public var nextUsed: UInt16

    public init(nextAvailable: UInt16 = 0, nextUsed: UInt16 = 0) {
        self.nextAvailable = nextAvailable
        self.nextUsed = nextUsed
    }
}

/// What a device process offers, asked once by the transport.
public struct DeviceDescription: Equatable, Sendable {
    public var type: VirtioDeviceType
    public var features: UInt64
    public var queueCount: UInt16
    public var maximumQueueSize: UInt16
    public var configSize: UInt32

    public init(type: VirtioDeviceType, features: UInt64, queueCount: UInt16, maximumQueueSize: UInt16, configSize: UInt32) {
        self.type = type
        self.features = features
        self.queueCount = queueCount
        self.maximumQueueSize = maximumQueueSize
        self.configSize = configSize
    }
}

/// vm → device: the slow path of the virtio transport (design §4). One request at a time.
public enum TransportRequest: ChannelMessage, Equatable {
    case describe
    case readConfig(offset: UInt32, size: UInt32)
    case writeConfig(offset: UInt32, bytes: [UInt8])
    /// `deviceState`: empty for a driver's DRIVER_OK; for a restored device, what the old
    /// process said of itself in `.queueState` (virtio-net: its active queue pairs).
    case activate(features: UInt64, queues: [QueueActivation], deviceState: [UInt8])
    case reset
    /// The VM is pausing: take no new request until `resume` (in-flight ones are done).
    case quiesce
    case resume
    /// Where each active queue stands (asked while quiesced, for a snapshot): `.queueState`.
    case queueState
    /// A live migration: set a bit in this shared bitmap (`DirtyPageLog`'s layout) for every
    /// page of guest RAM the device writes; nil stops it.
    case logWrites(FileDescriptor?)

    public static let maximumQueues = 64
    /// The most bytes a device may say of its own state (`deviceState`).
    public static let maximumDeviceState = 4096

    public var tag: UInt16 {
        switch self {
        case .describe: 1
        case .readConfig: 2
        case .writeConfig: 3
        case .activate: 4
        case .reset: 5
        case .quiesce: 6
        case .resume: 7
        case .queueState: 8
        case .logWrites: 9
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .describe, .reset, .quiesce, .resume, .queueState:
            break
        case .logWrites(let bitmap):
            writer.write(bitmap != nil)
            if let bitmap { writer.write(bitmap) }
        case .readConfig(let offset, let size):
            writer.write(offset)
            writer.write(size)
        case .writeConfig(let offset, let bytes):
            writer.write(offset)
            writer.write(bytes)
        case .activate(let features, let queues, let deviceState):
            writer.write(features)
            writer.write(deviceState)
            writer.write(UInt32(queues.count))
            for queue in queues {
                writer.write(queue.index)
                writer.write(queue.size)
                writer.write(queue.descriptorTable)
                writer.write(queue.availableRing)
                writer.write(queue.usedRing)
                writer.write(queue.resumeAt.nextAvailable)
                writer.write(queue.resumeAt.nextUsed)
            }
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> TransportRequest {
        switch tag {
        case 1: return .describe
        case 2: return .readConfig(offset: try reader.read(UInt32.self), size: try reader.read(UInt32.self))
        case 3: return .writeConfig(offset: try reader.read(UInt32.self), bytes: try reader.readBytes(limit: 4096))
        case 4:
            let features = try reader.read(UInt64.self)
            let deviceState = try reader.readBytes(limit: maximumDeviceState)
            let count = try reader.readCount(limit: maximumQueues)
            let queues = try (0..<count).map { _ in
                QueueActivation(index: try reader.read(UInt16.self), size: try reader.read(UInt16.self),
                                descriptorTable: try reader.read(UInt64.self), availableRing: try reader.read(UInt64.self),
                                usedRing: try reader.read(UInt64.self),
                                resumeAt: QueueIndices(nextAvailable: try reader.read(UInt16.self), nextUsed: try reader.read(UInt16.self)))
            }
            return .activate(features: features, queues: queues, deviceState: deviceState)
        case 5: return .reset
        case 6: return .quiesce
        case 7: return .resume
        case 8: return .queueState
        case 9: return .logWrites(try reader.read(Bool.self) ? try reader.readDescriptor() : nil)
        default: throw IPCError.unknownTag(tag)
        }
    }
}

/// device → vm: the answer to one `TransportRequest`.
public enum TransportReply: ChannelMessage, Equatable {
    case description(DeviceDescription)
    case config([UInt8])
    case done
    /// The device cannot do what was asked (bad queue setup); the transport sets DEVICE_NEEDS_RESET.
    case refused(String)
    /// The answer to `queueState`: one entry per queue, nil for one that is not active, and
    /// what the device keeps of its own beyond its rings (`VirtioDeviceModel.savedState`).
    case queueState([QueueIndices?], deviceState: [UInt8])

    public var tag: UInt16 {
        switch self {
        case .description: 1
        case .config: 2
        case .done: 3
        case .refused: 4
        case .queueState: 5
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .description(let description):
            writer.write(description.type.rawValue)
            writer.write(description.features)
            writer.write(description.queueCount)
            writer.write(description.maximumQueueSize)
            writer.write(description.configSize)
        case .config(let bytes):
            writer.write(bytes)
        case .done:
            break
        case .refused(let reason):
            writer.write(reason)
        case .queueState(let queues, let deviceState):
            writer.write(UInt32(queues.count))
            for queue in queues {
                writer.write(queue != nil)
                writer.write(queue?.nextAvailable ?? 0)
                writer.write(queue?.nextUsed ?? 0)
            }
            writer.write(deviceState)
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> TransportReply {
        switch tag {
        case 1:
            let type = try reader.readDeviceType()
            return .description(DeviceDescription(type: type, features: try reader.read(UInt64.self),
                                                  queueCount: try reader.read(UInt16.self),
                                                  maximumQueueSize: try reader.read(UInt16.self),
                                                  configSize: try reader.read(UInt32.self)))
        case 2: return .config(try reader.readBytes(limit: 4096))
        case 3: return .done
        case 4: return .refused(try reader.read(String.self))
        case 5:
            let queues = try (0..<reader.readCount(limit: TransportRequest.maximumQueues)).map { _ in
                let active = try reader.read(Bool.self)
                let indices = QueueIndices(nextAvailable: try reader.read(UInt16.self), nextUsed: try reader.read(UInt16.self))
                return active ? indices : nil
            }
            return .queueState(queues, deviceState: try reader.readBytes(limit: TransportRequest.maximumDeviceState))
        default: throw IPCError.unknownTag(tag)
        }
    }
}

/// device → vm, unsolicited, on a channel of its own so it never mixes with replies.
public enum DeviceEvent: ChannelMessage, Equatable {
    /// A queue is broken by the driver (virtio 1.2 §2.1.2): the transport sets DEVICE_NEEDS_RESET.
    case needsReset(String)
    case configChanged

    public var tag: UInt16 {
        switch self {
        case .needsReset: 1
        case .configChanged: 2
        }
    }

    public func encode(into writer: inout WireWriter) {
        if case .needsReset(let reason) = self { writer.write(reason) }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> DeviceEvent {
        switch tag {
        case 1: return .needsReset(try reader.read(String.self))
        case 2: return .configChanged
        default: throw IPCError.unknownTag(tag)
        }
    }
}

/// The descriptors of one virtio device's fast path and slow path, made by vmd
/// and given to both the vm process and the device process.
public struct DeviceWiring {
    /// vm's end of the request/reply channel, or the device's.
    public var transport: FileDescriptor
    /// The device-event channel end.
    public var events: FileDescriptor
    /// One eventfd per queue, signalled by KVM on a queue notify (ioeventfd).
    public var kicks: [FileDescriptor]
    /// One eventfd per queue, signalled by the device; KVM injects the MSI (irqfd).
    public var calls: [FileDescriptor]

    public init(transport: FileDescriptor, events: FileDescriptor, kicks: [FileDescriptor], calls: [FileDescriptor]) {
        self.transport = transport
        self.events = events
        self.kicks = kicks
        self.calls = calls
    }

    public static let maximumQueues = 64

    func encode(into writer: inout WireWriter) {
        writer.write(transport)
        writer.write(events)
        writer.writeDescriptors(kicks)
        writer.writeDescriptors(calls)
    }

    static func decode(from reader: inout WireReader) throws -> DeviceWiring {
        let transport = try reader.readDescriptor()
        let events = try reader.readDescriptor()
        let kicks = try reader.readDescriptors(limit: maximumQueues)
        let calls = try reader.readDescriptors(limit: maximumQueues)
        guard kicks.count == calls.count else { throw IPCError.malformed("\(kicks.count) kick and \(calls.count) call eventfds") }
        return DeviceWiring(transport: transport, events: events, kicks: kicks, calls: calls)
    }
}

/// The format of one image of a disk's chain, as vmd determined it.
public enum DiskImageFormat: UInt8, Equatable, Sendable {
    case raw = 0
    case qcow2 = 1
    /// The external data file of the qcow2 image just above it in the chain (it holds that
    /// image's data clusters; it is no image of its own).
    case externalData = 2
}

/// What vmd gives a virtio-blk process besides its wiring.
public struct BlockDeviceSetup: Equatable, Sendable {
    /// A qcow2 chain deeper than this is refused (vmd checks it before the device sees it).
    public static let maximumChainLength = 16

    public var name: String
    public var readOnly: Bool
    /// Up to 20 bytes, answered to GET_ID.
    public var serial: String
    /// The disk's images, top first: the image the guest writes (unless read-only), then
    /// each backing image below it, read-only. One descriptor per image travels with it.
    public var formats: [DiskImageFormat]
    /// `bandwidth` and `ops` of the disk's block in vm.conf; enforced by the device.
    public var rateLimit: RateLimit

    public init(name: String, readOnly: Bool, serial: String, formats: [DiskImageFormat] = [.raw],
                rateLimit: RateLimit = RateLimit()) {
        self.name = name
        self.readOnly = readOnly
        self.serial = serial
        self.formats = formats
        self.rateLimit = rateLimit
    }
}

/// What vmd gives a virtio-net process besides its tap and wiring.
public struct NetworkDeviceSetup: Equatable, Sendable {
    public var name: String
    public var mac: [UInt8]
    /// For a `local interface`: the guest's and the host's address of the /31
    /// (host byte order), which the device hands out by DHCP itself.
    public var localGuestAddress: UInt32?
    public var localHostAddress: UInt32?
    /// TUNSETOFFLOAD flags vmd set on the tap, so the device offers the matching features.
    public var tapOffloads: UInt32
    /// `bandwidth` and `packets` of the interface's block in vm.conf: each direction has
    /// buckets of its own with these sizes, enforced by the device.
    public var rateLimit: RateLimit

    public init(name: String, mac: [UInt8], localGuestAddress: UInt32?, localHostAddress: UInt32?, tapOffloads: UInt32,
                rateLimit: RateLimit = RateLimit()) {
        (self.name, self.mac, self.localGuestAddress, self.localHostAddress, self.tapOffloads, self.rateLimit) =
            (name, mac, localGuestAddress, localHostAddress, tapOffloads, rateLimit)
    }
}

/// What a virtio-rng process is told about its device.
public struct EntropyDeviceSetup: Equatable, Sendable {
    /// "rng0", for log lines.
    public var name: String

    public init(name: String) {
        self.name = name
    }
}

/// vmd → a device process.
public enum DeviceSetupCommand: ChannelMessage {
    case shareMemory(slots: [SlotDescriptor], memfds: [FileDescriptor])
    /// `images`: one descriptor per entry of the setup's `formats`, top first.
    case block(BlockDeviceSetup, images: [FileDescriptor], wiring: DeviceWiring)
    /// `taps`: one descriptor per queue pair, each a queue of the same multi-queue tap.
    case network(NetworkDeviceSetup, taps: [FileDescriptor], wiring: DeviceWiring)
    case entropy(EntropyDeviceSetup, wiring: DeviceWiring)
    /// The device's `CounterPage` (vmctl stats), between `shareMemory` and the setup.
    case counters(FileDescriptor)
    case stop
    /// `vmctl log brief|verbose`: a swift-log level name.
    case setLogLevel(String)

    public var tag: UInt16 {
        switch self {
        case .shareMemory: 1
        case .block: 2
        case .stop: 3
        case .setLogLevel: 4
        case .network: 5
        case .entropy: 6
        case .counters: 7
        }
    }

    public func encode(into writer: inout WireWriter) {
        switch self {
        case .shareMemory(let slots, let memfds):
            writer.writeSlotTable(slots, memfds: memfds)
        case .block(let setup, let images, let wiring):
            writer.write(setup.name)
            writer.write(setup.readOnly)
            writer.write(setup.serial)
            writer.write(setup.formats.map(\.rawValue))
            writer.writeRateLimit(setup.rateLimit)
            writer.writeDescriptors(images)
            wiring.encode(into: &writer)
        case .stop:
            break
        case .setLogLevel(let level):
            writer.write(level)
        case .network(let setup, let taps, let wiring):
            writer.write(setup.name)
            writer.write(setup.mac)
            writer.write(setup.localGuestAddress ?? 0)
            writer.write(setup.localHostAddress ?? 0)
            writer.write(setup.tapOffloads)
            writer.writeRateLimit(setup.rateLimit)
            writer.writeDescriptors(taps)
            wiring.encode(into: &writer)
        case .entropy(let setup, let wiring):
            writer.write(setup.name)
            wiring.encode(into: &writer)
        case .counters(let page):
            writer.write(page)
        }
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> DeviceSetupCommand {
        switch tag {
        case 1:
            let (slots, memfds) = try reader.readSlotTable()
            return .shareMemory(slots: slots, memfds: memfds)
        case 2:
            var setup = BlockDeviceSetup(name: try reader.read(String.self, limit: 64), readOnly: try reader.read(Bool.self),
                                         serial: try reader.read(String.self, limit: 20))
            setup.formats = try reader.readBytes(limit: BlockDeviceSetup.maximumChainLength).map { raw in
                guard let format = DiskImageFormat(rawValue: raw) else { throw IPCError.malformed("disk image format \(raw)") }
                return format
            }
            setup.rateLimit = try reader.readRateLimit()
            let images = try reader.readDescriptors(limit: BlockDeviceSetup.maximumChainLength)
            guard !images.isEmpty, images.count == setup.formats.count else {
                throw IPCError.malformed("\(images.count) disk images for \(setup.formats.count) formats")
            }
            return .block(setup, images: images, wiring: try DeviceWiring.decode(from: &reader))
        case 3:
            return .stop
        case 4:
            return .setLogLevel(try reader.read(String.self, limit: 16))
        case 5:
            let name = try reader.read(String.self, limit: 64)
            let mac = try reader.readBytes(limit: 6)
            guard mac.count == 6 else { throw IPCError.malformed("MAC of \(mac.count) bytes") }
            let guest = try reader.read(UInt32.self), host = try reader.read(UInt32.self)
            let setup = NetworkDeviceSetup(name: name, mac: mac, localGuestAddress: guest == 0 ? nil : guest,
                                           localHostAddress: host == 0 ? nil : host, tapOffloads: try reader.read(UInt32.self),
                                           rateLimit: try reader.readRateLimit())
            let taps = try reader.readDescriptors(limit: DeviceWiring.maximumQueues / 2)
            guard !taps.isEmpty else { throw IPCError.malformed("a network device without a tap") }
            return .network(setup, taps: taps, wiring: try DeviceWiring.decode(from: &reader))
        case 6:
            return .entropy(EntropyDeviceSetup(name: try reader.read(String.self, limit: 64)), wiring: try DeviceWiring.decode(from: &reader))
        case 7:
            return .counters(try reader.readDescriptor())
        default:
            throw IPCError.unknownTag(tag)
        }
    }
}

/// A message with the number of the request it is or answers: on the vm ⇄ device
/// transport channel, so that a reply that comes after its request timed out is
/// recognised as late and dropped, not taken as the answer to the next request.
public struct Numbered<Message: ChannelMessage>: ChannelMessage {
    public let id: UInt32
    public let message: Message

    public init(id: UInt32, _ message: Message) {
        self.id = id
        self.message = message
    }

    public var tag: UInt16 { message.tag }

    public func encode(into writer: inout WireWriter) {
        writer.write(id)
        message.encode(into: &writer)
    }

    public static func decode(tag: UInt16, from reader: inout WireReader) throws -> Numbered {
        let id = try reader.read(UInt32.self)
        return Numbered(id: id, try Message.decode(tag: tag, from: &reader))
    }
}

extension Numbered: Equatable where Message: Equatable {}

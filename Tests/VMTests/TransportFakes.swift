import Glibc
import IPC
import LinuxSystem
import Logging
import Synchronization
import VirtioCore
@testable import VMCore

/// A device process as the transport sees it: records every request, answers from a
/// config space it holds, and can be told to refuse activation or not answer at all.
final class FakeTransportDevice: TransportDevice, @unchecked Sendable {
    var requests: [TransportRequest] = []
    var config: [UInt8] = Array(0..<64)
    var refuseActivation = false
    var silent = false
    var writtenConfig: [(UInt32, [UInt8])] = []
    /// What `queueState` answers.
    var queueIndices: [QueueIndices?] = []
    /// What the fake device says of its own state in `.queueState` (virtio-net: its queue pairs).
    var deviceState: [UInt8] = []

    func request(_ request: TransportRequest) throws -> TransportReply {
        requests.append(request)
        if silent { throw SystemError("recvmsg", errno: EAGAIN) }
        switch request {
        case .readConfig(let offset, let size):
            let start = Int(offset), end = start + Int(size)
            return end <= config.count ? .config(Array(config[start..<end])) : .refused("beyond config")
        case .writeConfig(let offset, let bytes):
            writtenConfig.append((offset, bytes))
            return .done
        case .activate:
            return refuseActivation ? .refused("queue 0: ring outside guest RAM") : .done
        case .describe:
            return .refused("already described")
        case .reset, .quiesce, .resume:
            return .done
        case .queueState:
            return .queueState(queueIndices, deviceState: deviceState)
        case .logWrites:
            return .done
        }
    }

    var activations: [(features: UInt64, queues: [QueueActivation])] {
        requests.compactMap { if case .activate(let features, let queues, _) = $0 { (features, queues) } else { nil } }
    }
}

/// KVM, the poller and the MMIO bus as the transport sees them, recorded.
final class FakeTransportPlatform: TransportPlatform, @unchecked Sendable {
    private var nextGSI: UInt32 = 24
    var routes: [UInt32: MSIMessage] = [:]
    var boundIRQFDs: Set<Int32> = []
    var signals: [MSIMessage] = []
    var ioeventfds: Set<UInt64> = []
    var maskedWatchers: [Int32: @Sendable () -> Void] = [:]
    var mappedBARs: [UInt64] = []
    var failSignals = false

    func allocateGSI() -> UInt32 {
        defer { nextGSI += 1 }
        return nextGSI
    }

    func route(gsi: UInt32, to message: MSIMessage?) throws { routes[gsi] = message }

    func bindIRQFD(_ call: FileDescriptor, gsi: UInt32, bind: Bool) throws {
        if bind { boundIRQFDs.insert(call.rawValue) } else { boundIRQFDs.remove(call.rawValue) }
    }

    func signal(_ message: MSIMessage) throws {
        if failSignals { throw SystemError("KVM_SIGNAL_MSI", errno: EINVAL) }
        signals.append(message)
    }

    func bindIOEventFD(_ kick: FileDescriptor, mmioAddress: UInt64, bind: Bool) throws {
        if bind { ioeventfds.insert(mmioAddress) } else { ioeventfds.remove(mmioAddress) }
    }

    func watchMasked(_ call: FileDescriptor, _ handler: @escaping @Sendable () -> Void) { maskedWatchers[call.rawValue] = handler }
    func unwatchMasked(_ call: FileDescriptor) { maskedWatchers[call.rawValue] = nil }
    func mapBAR(_ device: BusDevice, base: UInt64, size: UInt64) throws { mappedBARs.append(base) }
    func unmapBAR(_ device: BusDevice, base: UInt64) { mappedBARs.removeAll { $0 == base } }
}

/// A transport over the fakes, with the driver's register accesses spelled out.
struct TransportUnderTest {
    typealias Common = VirtioPCILayout.Common
    static let initialBAR: UInt64 = 0xC010_0000
    static let offered: UInt64 = VirtioFeature.version1 | VirtioFeature.eventIndex | 1 << 5

    let transport: VirtioPCITransport
    let device = FakeTransportDevice()
    let platform = FakeTransportPlatform()
    let kicks: [FileDescriptor]
    let calls: [FileDescriptor]

    init(queues: Int = 2, maximumQueueSize: UInt16 = 256, type: VirtioDeviceType = .block, configSize: UInt32 = 60) throws {
        kicks = try (0..<queues).map { _ in try FileDescriptor.eventFD() }
        calls = try (0..<queues).map { _ in try FileDescriptor.eventFD() }
        let (transportEnd, _) = try FileDescriptor.socketPair()
        let (eventsEnd, _) = try FileDescriptor.socketPair()
        let description = DeviceDescription(type: type, features: Self.offered, queueCount: UInt16(queues),
                                            maximumQueueSize: maximumQueueSize, configSize: configSize)
        transport = VirtioPCITransport(
            name: "test0", description: description, client: device,
            wiring: DeviceWiring(transport: transportEnd, events: eventsEnd, kicks: kicks, calls: calls),
            platform: platform, initialBAR: Self.initialBAR, logger: Logger(label: "transport-test"))
    }

    // MARK: BAR 0

    func write(_ offset: UInt64, _ value: UInt64, size: Int) {
        _ = transport.write(offset: offset, data: (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) })
    }

    func read(_ offset: UInt64, size: Int) -> UInt64 {
        var data = [UInt8](repeating: 0, count: size)
        transport.read(offset: offset, into: &data)
        return data.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    func common(_ offset: UInt64, _ value: UInt64, size: Int) { write(VirtioPCILayout.commonOffset + offset, value, size: size) }
    func common(_ offset: UInt64, size: Int) -> UInt64 { read(VirtioPCILayout.commonOffset + offset, size: size) }

    var status: UInt8 { UInt8(common(Common.deviceStatus, size: 1)) }
    func setStatus(_ status: UInt8) { common(Common.deviceStatus, UInt64(status), size: 1) }

    func writeDriverFeatures(_ features: UInt64) {
        for half in 0..<2 {
            common(Common.driverFeatureSelect, UInt64(half), size: 4)
            common(Common.driverFeature, (features >> (32 * UInt64(half))) & 0xFFFF_FFFF, size: 4)
        }
    }

    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK, as a driver negotiates (§3.1.1).
    func negotiate(_ features: UInt64 = VirtioFeature.version1) {
        setStatus(VirtioStatus.acknowledge | VirtioStatus.driver)
        writeDriverFeatures(features)
        setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
    }

    func setUpQueue(_ index: UInt16, size: UInt16 = 128, base: UInt64 = 0x10_0000, vector: UInt16? = nil) {
        common(Common.queueSelect, UInt64(index), size: 2)
        common(Common.queueSize, UInt64(size), size: 2)
        for (low, address) in [(Common.queueDescriptorLow, base), (Common.queueDriverLow, base + 0x1000), (Common.queueDeviceLow, base + 0x2000)] {
            common(low, address & 0xFFFF_FFFF, size: 4)
            common(low + 4, address >> 32, size: 4)
        }
        if let vector { common(Common.queueMSIXVector, UInt64(vector), size: 2) }
        common(Common.queueEnable, 1, size: 2)
    }

    // MARK: PCI configuration space

    func configWrite(_ offset: Int, _ value: UInt32, size: Int) {
        transport.configWrite(offset: offset, data: (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) })
    }

    func enableMemory() { configWrite(PCIConfigSpace.Offset.command, UInt32(PCIConfigSpace.Command.memorySpace | PCIConfigSpace.Command.busMaster), size: 2) }

    func setMSIXControl(enable: Bool, functionMask: Bool = false) {
        let control = (enable ? VirtioPCILayout.msixEnable : 0) | (functionMask ? VirtioPCILayout.msixFunctionMask : 0)
        configWrite(VirtioPCILayout.msixCapability + 2, UInt32(control), size: 2)
    }

    /// Programs MSI-X entry `entry` (address, data, mask) through BAR 0.
    func programVector(_ entry: Int, address: UInt64 = 0xFEE0_0000, data: UInt32, masked: Bool) {
        let base = VirtioPCILayout.msixTableOffset + UInt64(entry) * 16
        write(base, address, size: 8)
        write(base + 8, UInt64(data), size: 4)
        write(base + 12, masked ? 1 : 0, size: 4)
    }

    func mask(_ entry: Int, _ masked: Bool) {
        write(VirtioPCILayout.msixTableOffset + UInt64(entry) * 16 + 12, masked ? 1 : 0, size: 4)
    }

    var pendingBits: UInt64 { read(VirtioPCILayout.msixPBAOffset, size: 8) }
}

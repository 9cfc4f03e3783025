import IPC
import LinuxSystem

/// What a virtio-pci transport asks of its device process: one request, one reply
/// (`DeviceClient` over the transport channel; a fake in the transport's tests).
protocol TransportDevice: AnyObject, Sendable {
    func request(_ request: TransportRequest) throws -> TransportReply
}

extension DeviceClient: TransportDevice {}

/// Where a transport delivers interrupts and wires its fast path: KVM's MSI routes,
/// irqfds, KVM_SIGNAL_MSI and ioeventfds, the poller that watches the call eventfds
/// of masked vectors, and the MMIO bus that takes the BAR's accesses. The transport
/// itself is then a register file over these two seams, tested without KVM.
protocol TransportPlatform: AnyObject, Sendable {
    func allocateGSI() -> UInt32
    /// Points `gsi` at an MSI message, or removes its route.
    func route(gsi: UInt32, to message: MSIMessage?) throws
    func bindIRQFD(_ call: FileDescriptor, gsi: UInt32, bind: Bool) throws
    /// Delivers one MSI now.
    func signal(_ message: MSIMessage) throws
    func bindIOEventFD(_ kick: FileDescriptor, mmioAddress: UInt64, bind: Bool) throws
    /// Calls `handler` when `call` is signalled while its vector is masked.
    func watchMasked(_ call: FileDescriptor, _ handler: @escaping @Sendable () -> Void)
    func unwatchMasked(_ call: FileDescriptor)
    func mapBAR(_ device: BusDevice, base: UInt64, size: UInt64) throws
    func unmapBAR(_ device: BusDevice, base: UInt64)
}

/// The platform of a real VM.
final class KVMTransportPlatform: TransportPlatform, @unchecked Sendable {
    private let router: InterruptRouter
    private let poller: MaskedInterruptPoller
    private let mmio: AddressBus

    init(router: InterruptRouter, poller: MaskedInterruptPoller, mmio: AddressBus) {
        self.router = router
        self.poller = poller
        self.mmio = mmio
    }

    func allocateGSI() -> UInt32 { router.allocateGSI() }
    func route(gsi: UInt32, to message: MSIMessage?) throws { try router.route(gsi: gsi, to: message) }
    func bindIRQFD(_ call: FileDescriptor, gsi: UInt32, bind: Bool) throws { try router.bindIRQFD(call, gsi: gsi, bind: bind) }
    func signal(_ message: MSIMessage) throws { try router.signal(message) }
    func bindIOEventFD(_ kick: FileDescriptor, mmioAddress: UInt64, bind: Bool) throws {
        try router.bindIOEventFD(kick, mmioAddress: mmioAddress, bind: bind)
    }
    func watchMasked(_ call: FileDescriptor, _ handler: @escaping @Sendable () -> Void) { poller.watch(call.rawValue, handler) }
    func unwatchMasked(_ call: FileDescriptor) { poller.unwatch(call.rawValue) }
    func mapBAR(_ device: BusDevice, base: UInt64, size: UInt64) throws { try mmio.register(device, base: base, size: size) }
    func unmapBAR(_ device: BusDevice, base: UInt64) { mmio.unregister(device, base: base) }
}

import CKVM
import LinuxSystem
import Synchronization

/// An MSI message as the guest programs it into an MSI-X table entry.
struct MSIMessage: Equatable {
    var address: UInt64
    var data: UInt32
}

/// Owns the VM's GSI routing table, irqfds and ioeventfds (design §4): the
/// fast path between device processes and the guest that never enters the vm
/// process. Called from vCPU threads (MSI-X writes) and the main thread.
final class InterruptRouter: @unchecked Sendable {
    private let vm: FileDescriptor
    /// GSIs 0–23 belong to the IOAPIC (and 0–15 also to the PIC); MSI routes start above.
    static let firstMSIGSI: UInt32 = 24
    private struct State {
        var msiRoutes: [UInt32: MSIMessage] = [:]
        var nextGSI: UInt32 = InterruptRouter.firstMSIGSI
        /// Until `release`, routes are recorded and not installed (`release`).
        var held = true
    }
    private let state = Mutex(State())

    init(vm: FileDescriptor) {
        self.vm = vm
    }

    func allocateGSI() -> UInt32 {
        state.withLock { state in
            defer { state.nextGSI += 1 }
            return state.nextGSI
        }
    }

    /// Points `gsi` at an MSI message (or removes the route) and installs the whole table
    /// (once released).
    func route(gsi: UInt32, to message: MSIMessage?) throws {
        let table = state.withLock { state in
            state.msiRoutes[gsi] = message
            return state.held ? nil : state.msiRoutes
        }
        if let table { try install(msiRoutes: table) }
    }

    /// Installs the table, the irqchip's routes and every route recorded so far, and from
    /// then on each change as it comes. Each KVM_SET_GSI_ROUTING waits for an SRCU grace
    /// period (2-3 ms on this host), so a restore, which sets a route per queue, installs
    /// them all at once. Before the vCPUs run and before any device is activated: an irqfd
    /// bound meanwhile has nothing to deliver (KVM points it at the route on install).
    func release() throws {
        let table = state.withLock { state -> [UInt32: MSIMessage]? in
            guard state.held else { return nil }
            state.held = false
            return state.msiRoutes
        }
        if let table { try install(msiRoutes: table) }
    }

    /// KVM_SET_GSI_ROUTING replaces the whole table, so the irqchip's routes go in
    /// too: PIC pins for GSI 0–15, IOAPIC pins for 0–23, except that the PIT's GSI 0
    /// reaches IOAPIC pin 2 and nothing else reaches pin 2, as on a PC and in QEMU
    /// (pin 0 is the 8259's ExtINT). The MP table says the same (`MPTable.ioAPICPin`).
    private func install(msiRoutes: [UInt32: MSIMessage]) throws {
        var entries: [kvm_irq_routing_entry] = []
        for gsi in UInt32(0)..<24 {
            if gsi < 16 {
                var pic = kvm_irq_routing_entry()
                pic.gsi = gsi
                pic.type = UInt32(KVM_IRQ_ROUTING_IRQCHIP)
                pic.u.irqchip.irqchip = UInt32(gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE)
                pic.u.irqchip.pin = gsi % 8
                entries.append(pic)
            }
            guard gsi != 2 else { continue }
            var ioapic = kvm_irq_routing_entry()
            ioapic.gsi = gsi
            ioapic.type = UInt32(KVM_IRQ_ROUTING_IRQCHIP)
            ioapic.u.irqchip.irqchip = UInt32(KVM_IRQCHIP_IOAPIC)
            ioapic.u.irqchip.pin = gsi == 0 ? 2 : gsi
            entries.append(ioapic)
        }
        for (gsi, message) in msiRoutes.sorted(by: { $0.key < $1.key }) {
            var msi = kvm_irq_routing_entry()
            msi.gsi = gsi
            msi.type = UInt32(KVM_IRQ_ROUTING_MSI)
            msi.u.msi.address_lo = UInt32(truncatingIfNeeded: message.address)
            msi.u.msi.address_hi = UInt32(truncatingIfNeeded: message.address >> 32)
            msi.u.msi.data = message.data
            entries.append(msi)
        }
        let headerSize = MemoryLayout<kvm_irq_routing>.size
        let entrySize = MemoryLayout<kvm_irq_routing_entry>.stride
        var buffer = [UInt8](repeating: 0, count: headerSize + entries.count * entrySize)
        // SAFETY: the buffer holds the kvm_irq_routing header and every entry at its stride (sized from entries.count).
        try buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(entries.count), as: UInt32.self)  // nr
            for (index, entry) in entries.enumerated() {
                raw.storeBytes(of: entry, toByteOffset: headerSize + index * entrySize, as: kvm_irq_routing_entry.self)
            }
            try kvmIoctl(vm, VMD_KVM_IOCTL_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", raw.baseAddress)
        }
    }

    /// Makes KVM inject `gsi` whenever `eventFD` is signalled (or stops it).
    func bindIRQFD(_ eventFD: FileDescriptor, gsi: UInt32, bind: Bool) throws {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD.rawValue)
        request.gsi = gsi
        request.flags = bind ? 0 : VMD_KVM_IRQFD_FLAG_DEASSIGN
        try kvmIoctl(vm, VMD_KVM_IOCTL_IRQFD, bind ? "KVM_IRQFD" : "KVM_IRQFD(deassign)", &request)
    }

    /// Makes KVM signal `eventFD` on a guest write to `address` instead of exiting (or stops it).
    func bindIOEventFD(_ eventFD: FileDescriptor, mmioAddress address: UInt64, bind: Bool) throws {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = 0  // any access width (KVM_CAP_IOEVENTFD_ANY_LENGTH)
        request.fd = eventFD.rawValue
        request.flags = bind ? 0 : VMD_KVM_IOEVENTFD_FLAG_DEASSIGN
        try kvmIoctl(vm, VMD_KVM_IOCTL_IOEVENTFD, bind ? "KVM_IOEVENTFD" : "KVM_IOEVENTFD(deassign)", &request)
    }

    /// Injects one MSI now (a pending vector being unmasked).
    func signal(_ message: MSIMessage) throws {
        var msi = kvm_msi()
        msi.address_lo = UInt32(truncatingIfNeeded: message.address)
        msi.address_hi = UInt32(truncatingIfNeeded: message.address >> 32)
        msi.data = message.data
        try kvmIoctl(vm, VMD_KVM_IOCTL_SIGNAL_MSI, "KVM_SIGNAL_MSI", &msi)
    }
}

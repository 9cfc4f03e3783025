import IPC
import LinuxSystem

/// What the vCPU loop does after an exit.
enum ExitAction: Equatable {
    /// Run the guest again.
    case resume
    /// Hand these bytes to the guest as the result of its read, then run again.
    case completeRead([UInt8])
    /// Stop this VM.
    case stop(GuestEnd)
}

/// The buses a vCPU exit is dispatched to.
struct Buses {
    let ports: AddressBus
    let mmio: AddressBus
}

/// Handles one exit against the buses. A plain function of (exit, buses) so it
/// is unit-tested without KVM (design §3). Accesses that hit no device read as
/// all ones and are otherwise ignored, as on a PC with nothing decoding them.
func handleExit(_ exit: VcpuExit, buses: Buses, log: UnassignedAccessLog? = nil) -> ExitAction {
    switch exit {
    case .portIn(let port, let size, let count):
        var result: [UInt8] = []
        for _ in 0..<max(count, 1) {
            result += read(buses.ports, address: UInt64(port), size: size, log: log)
        }
        return .completeRead(result)
    case .portOut(let port, let size, let data):
        guard size > 0 else { return .resume }
        var offset = 0
        while offset + size <= data.count {
            if case .endGuest(let end) = write(buses.ports, address: UInt64(port), data: Array(data[offset..<(offset + size)]), log: log) {
                return .stop(end)
            }
            offset += size
        }
        return .resume
    case .mmioRead(let address, let size):
        return .completeRead(read(buses.mmio, address: address, size: size, log: log))
    case .mmioWrite(let address, let data):
        if case .endGuest(let end) = write(buses.mmio, address: address, data: data, log: log) { return .stop(end) }
        return .resume
    case .halt:
        // With the in-kernel irqchip KVM handles HLT itself; an exit means nothing can wake this vCPU.
        return .stop(.failed("vCPU halted with interrupts disabled"))
    case .shutdown:
        return .stop(.tripleFault)
    case .systemEvent(let type):
        switch type {
        case 1: return .stop(.powerOff)  // KVM_SYSTEM_EVENT_SHUTDOWN
        case 2: return .stop(.reset)     // KVM_SYSTEM_EVENT_RESET
        default: return .stop(.failed("KVM system event \(type)"))
        }
    case .failEntry(let reason):
        return .stop(.failed("KVM entry failed, hardware reason 0x\(String(reason, radix: 16))"))
    case .internalError(let suberror, let data):
        let words = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
        return .stop(.failed("KVM internal error, suberror \(suberror)" + (data.isEmpty ? "" : ", data \(words)")))
    case .interrupted:
        return .resume
    case .unknown(let reason):
        return .stop(.failed("unhandled KVM exit reason \(reason)"))
    }
}

private func read(_ bus: AddressBus, address: UInt64, size: Int, log: UnassignedAccessLog?) -> [UInt8] {
    var data = [UInt8](repeating: 0xFF, count: size)
    if let (device, offset) = bus.lookup(address, length: size) {
        device.read(offset: offset, into: &data)
    } else {
        log?.note(bus: bus.name, address: address, access: "read of \(size) bytes")
    }
    return data
}

private func write(_ bus: AddressBus, address: UInt64, data: [UInt8], log: UnassignedAccessLog?) -> BusEffect {
    guard let (device, offset) = bus.lookup(address, length: data.count) else {
        log?.note(bus: bus.name, address: address, access: "write of \(data.count) bytes")
        return .none
    }
    return device.write(offset: offset, data: data)
}

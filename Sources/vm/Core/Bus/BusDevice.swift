import IPC

/// What a device access can do beyond reading or writing a register.
enum BusEffect: Equatable {
    case none
    /// The access ends the guest (debug exit, reset).
    case endGuest(GuestEnd)
}

/// A device on the port-I/O or MMIO bus. Offsets are relative to the range it
/// was registered at. Devices may be called from several vCPU threads at once
/// and lock their own state.
protocol BusDevice: AnyObject {
    var name: String { get }
    /// Fills `data` (the access size) with the register's value.
    func read(offset: UInt64, into data: inout [UInt8])
    func write(offset: UInt64, data: [UInt8]) -> BusEffect
}

/// The registers a hardware-reduced ACPI platform uses to power off and reset
/// (ACPI 6.5 §4.8.3.7, §4.8.3.6), as the FADT describes them: three byte-wide ports.
///
/// - SLEEP_CONTROL_REG (offset 0): the guest writes SLP_TYP (bits 4:2) with SLP_EN
///   (bit 5) to enter a sleep state. The DSDT's `\_S5` gives S5 (soft off) the type
///   `softOffType`; that write powers the VM off. No other state is offered.
/// - SLEEP_STATUS_REG (offset 1): WAK_STS (bit 7) reads 0; nothing wakes a sleeping VM.
/// - RESET_REG (offset 2): writing `resetValue` resets the VM.
final class ACPIPowerPorts: BusDevice {
    static let port: UInt64 = 0x600
    static let size: UInt64 = 3
    static let sleepControlOffset: UInt64 = 0
    static let sleepStatusOffset: UInt64 = 1
    static let resetOffset: UInt64 = 2
    static let resetValue: UInt8 = 0x01
    /// The SLP_TYP the DSDT's `\_S5` package names.
    static let softOffType: UInt8 = 5
    static let sleepEnable: UInt8 = 1 << 5
    let name = "acpi-power"

    func read(offset: UInt64, into data: inout [UInt8]) {
        for index in data.indices { data[index] = 0 }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        guard let value = data.first else { return .none }
        switch offset {
        case ACPIPowerPorts.sleepControlOffset:
            let type = (value >> 2) & 0x7
            return value & ACPIPowerPorts.sleepEnable != 0 && type == ACPIPowerPorts.softOffType ? .endGuest(.powerOff) : .none
        case ACPIPowerPorts.resetOffset:
            return value == ACPIPowerPorts.resetValue ? .endGuest(.reset) : .none
        default:
            return .none
        }
    }
}

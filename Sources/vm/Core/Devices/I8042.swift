
/// Just enough of the i8042 keyboard controller for a PC guest to reset itself:
/// command 0xFE on port 0x64 pulses the CPU reset line. No keyboard behind it.
final class I8042: BusDevice {
    static let port: UInt64 = 0x60
    static let size: UInt64 = 5  // 0x60 data ... 0x64 command/status
    let name = "i8042"
    private static let commandOffset: UInt64 = 4
    private static let pulseResetLine: UInt8 = 0xFE

    func read(offset: UInt64, into data: inout [UInt8]) {
        // Status: output buffer empty, input buffer empty. Data: nothing.
        for index in data.indices { data[index] = 0 }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        if offset == I8042.commandOffset, data.first == I8042.pulseResetLine { return .endGuest(.reset) }
        return .none
    }
}

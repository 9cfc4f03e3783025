
/// The debug-exit port (QEMU's isa-debug-exit at 0xf4): the guest writes its exit
/// code and the VM ends with it. The guest kit ends every run this way (design §6).
final class DebugExitPort: BusDevice {
    static let port: UInt64 = 0xF4
    static let size: UInt64 = 4
    let name = "debug-exit"

    func read(offset: UInt64, into data: inout [UInt8]) {}

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        .endGuest(.exitCode(data.first ?? 0))
    }
}

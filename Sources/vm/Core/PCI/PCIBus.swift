import Synchronization

/// A function on the PCI bus: configuration space access by the guest.
protocol PCIFunction: AnyObject {
    func configRead(offset: Int, size: Int) -> UInt32
    func configWrite(offset: Int, data: [UInt8])
}

/// PCI bus 0 behind configuration mechanism 1 (ports 0xCF8 address, 0xCFC–0xCFF data),
/// which Linux and the guest kit use without ACPI. Only function 0 of each slot exists.
final class PCIBus: BusDevice {
    static let port: UInt64 = 0xCF8
    static let size: UInt64 = 8
    static let slotCount = 32
    let name = "pci-config"

    private struct State {
        var address: UInt32 = 0
        var slots: [PCIFunction?] = Array(repeating: nil, count: PCIBus.slotCount)
    }
    private let state = Mutex(State())

    /// Puts `function` in the first free slot and returns the slot number.
    func attach(_ function: PCIFunction) -> Int? {
        state.withLock { state in
            guard let slot = state.slots.firstIndex(where: { $0 == nil }) else { return nil }
            state.slots[slot] = function
            return slot
        }
    }

    private static let enableBit: UInt32 = 1 << 31

    /// The function and register offset the address register selects, if any.
    private func selected(_ state: State, dataOffset: UInt64) -> (PCIFunction, Int)? {
        let address = state.address
        guard address & PCIBus.enableBit != 0 else { return nil }
        let bus = (address >> 16) & 0xFF, slot = Int((address >> 11) & 0x1F), function = (address >> 8) & 0x7
        guard bus == 0, function == 0, let device = state.slots[slot] else { return nil }
        return (device, Int(address & 0xFC) + Int(dataOffset))
    }

    func read(offset: UInt64, into data: inout [UInt8]) {
        let value: UInt32
        if offset == 0 && data.count == 4 {
            value = state.withLock { $0.address }
        } else if offset >= 4, let (function, register) = state.withLock({ selected($0, dataOffset: offset - 4) }) {
            value = function.configRead(offset: register, size: data.count)
        } else {
            value = UInt32.max  // no device: all ones, as a master abort reads
        }
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        if offset == 0 && data.count == 4 {
            let value = data.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            state.withLock { $0.address = value }
        } else if offset >= 4, let (function, register) = state.withLock({ selected($0, dataOffset: offset - 4) }) {
            function.configWrite(offset: register, data: data)
        }
        return .none
    }
}

/// The host bridge at 00:00.0, so that enumeration finds a bus. It says it is an
/// i440FX (8086:1237, as QEMU's pc machine), the conventional-PCI bridge that this bus
/// (configuration mechanism 1, no ECAM) is: SeaBIOS keys its PCI setup on the bridge,
/// and on a Q35 id it would move configuration access to an ECAM window we do not have.
/// The PAM registers (0x59–0x5F) keep what is written, so SeaBIOS's shadowing reads
/// back its own settings; they change nothing, as the BIOS area is RAM here.
final class PCIHostBridge: PCIFunction {
    static let pamRegisters = 0x59...0x5F
    private let space: Mutex<PCIConfigSpace>

    init() {
        var space = PCIConfigSpace()
        space.set16(PCIConfigSpace.Offset.vendorID, 0x8086)
        space.set16(PCIConfigSpace.Offset.deviceID, 0x1237)
        space.set8(PCIConfigSpace.Offset.classCode + 1, 0x00)  // subclass: host bridge
        space.set8(PCIConfigSpace.Offset.classCode + 2, 0x06)  // class: bridge
        for register in PCIHostBridge.pamRegisters { space.set8(register, 0, writableMask: 0xFF) }
        self.space = Mutex(space)
    }

    func configRead(offset: Int, size: Int) -> UInt32 { space.withLock { $0.read(offset: offset, size: size) } }
    func configWrite(offset: Int, data: [UInt8]) { space.withLock { $0.write(offset: offset, data: data) } }
}

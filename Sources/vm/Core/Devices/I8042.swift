import IPC
import Synchronization

/// The i8042 keyboard controller at 0x60 (data) and 0x64 (status/command), with no
/// keyboard or mouse behind it. It answers what firmware and kernels ask of the
/// controller itself, so a probe gets its replies at once instead of timing out:
/// the command byte (0x20 read, 0x60 write), the self and interface tests (0xAA gives
/// 0x55, 0xAB gives 0), port enables, the output port (0xD0/0xD1), the loopback writes
/// (0xD2/0xD3). The aux interface test (0xA9) reports its clock line stuck, so a kernel
/// concludes there is no mouse port. The CPU reset line is pulsed by command 0xFE (or
/// any 0xF0–0xFF pulse with bit 0 clear) and by an output-port write with bit 0 clear.
/// Bytes sent to the (absent) keyboard are dropped.
final class I8042: BusDevice {
    static let port: UInt64 = 0x60
    static let size: UInt64 = 5  // 0x60 data ... 0x64 command/status
    let name = "i8042"
    private static let dataOffset: UInt64 = 0
    private static let commandOffset: UInt64 = 4

    enum Status {
        static let outputFull: UInt8 = 1 << 0
        static let system: UInt8 = 1 << 2  // set: the self-test passed (always, here)
        static let lastWasCommand: UInt8 = 1 << 3
        static let auxData: UInt8 = 1 << 5
    }

    /// Replies of the controller's tests.
    static let selfTestPassed: UInt8 = 0x55
    static let interfaceTestPassed: UInt8 = 0x00
    static let clockLineStuckLow: UInt8 = 0x01

    private struct State {
        /// Bytes waiting at 0x60, each marked as coming from the aux port or not.
        var output: [(byte: UInt8, aux: Bool)] = []
        /// A command waiting for its data byte at 0x60.
        var pending: UInt8?
        /// Interrupts off, translation and the system flag on, both ports enabled.
        var commandByte: UInt8 = 0x44
        var outputPort: UInt8 = 0x01  // bit 0: the reset line, not asserted
        var lastWasCommand = false
    }
    private let state = Mutex(State())
    /// At most this many bytes wait unread; a guest that never reads loses the oldest.
    private static let outputCapacity = 16

    func read(offset: UInt64, into data: inout [UInt8]) {
        let value: UInt8 = state.withLock { state in
            switch offset {
            case I8042.dataOffset:
                return state.output.isEmpty ? 0 : state.output.removeFirst().byte
            case I8042.commandOffset:
                var status = Status.system | (state.lastWasCommand ? Status.lastWasCommand : 0)
                if let head = state.output.first { status |= Status.outputFull | (head.aux ? Status.auxData : 0) }
                return status
            default:
                return 0xFF
            }
        }
        for index in data.indices { data[index] = index == 0 ? value : 0xFF }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        guard let value = data.first else { return .none }
        let reset: Bool = state.withLock { state in
            switch offset {
            case I8042.commandOffset:
                state.lastWasCommand = true
                state.pending = nil
                return I8042.command(value, state: &state)
            case I8042.dataOffset:
                state.lastWasCommand = false
                guard let command = state.pending else { return false }  // to the keyboard: nobody there
                state.pending = nil
                return I8042.data(value, for: command, state: &state)
            default:
                return false
            }
        }
        return reset ? .endGuest(.reset) : .none
    }

    /// A controller command; true when it pulses the reset line.
    private static func command(_ command: UInt8, state: inout State) -> Bool {
        switch command {
        case 0x20: reply(state.commandByte, &state)
        case 0x60, 0xD1, 0xD2, 0xD3, 0xD4: state.pending = command
        case 0xA7: state.commandByte |= 1 << 5    // aux port disabled
        case 0xA8: state.commandByte &= ~(1 << 5)
        case 0xA9: reply(clockLineStuckLow, &state)
        case 0xAA: reply(selfTestPassed, &state)
        case 0xAB: reply(interfaceTestPassed, &state)
        case 0xAD: state.commandByte |= 1 << 4    // keyboard port disabled
        case 0xAE: state.commandByte &= ~(1 << 4)
        case 0xC0: reply(0x00, &state)             // input port
        case 0xD0: reply(state.outputPort, &state)
        case 0xF0...0xFF: return command & 0x01 == 0  // pulse output lines; bit 0 is reset
        default: break
        }
        return false
    }

    /// The data byte of a pending command; true when it asserts the reset line.
    private static func data(_ value: UInt8, for command: UInt8, state: inout State) -> Bool {
        switch command {
        case 0x60: state.commandByte = value
        case 0xD1:
            state.outputPort = value
            return value & 0x01 == 0
        case 0xD2: reply(value, &state)
        case 0xD3: reply(value, &state, aux: true)
        default: break  // 0xD4: to the aux device, which is absent
        }
        return false
    }

    private static func reply(_ byte: UInt8, _ state: inout State, aux: Bool = false) {
        if state.output.count >= outputCapacity { state.output.removeFirst() }
        state.output.append((byte, aux))
    }
}

// MARK: Snapshot

extension I8042 {
    func savedState() -> [UInt8] {
        state.withLock { state in
            var writer = WireWriter()
            writer.write(UInt32(state.output.count))
            for entry in state.output { writer.write(entry.byte); writer.write(entry.aux) }
            writer.write(state.pending != nil)
            writer.write(state.pending ?? 0)
            writer.write(state.commandByte)
            writer.write(state.outputPort)
            writer.write(state.lastWasCommand)
            return writer.bytes
        }
    }

    func restore(_ bytes: [UInt8]) throws {
        var reader = WireReader(bytes: bytes)
        var restored = State()
        restored.output = try (0..<reader.readCount(limit: I8042.outputCapacity)).map { _ in
            (byte: try reader.read(UInt8.self), aux: try reader.read(Bool.self))
        }
        let hasPending = try reader.read(Bool.self)
        let pending = try reader.read(UInt8.self)
        restored.pending = hasPending ? pending : nil
        restored.commandByte = try reader.read(UInt8.self)
        restored.outputPort = try reader.read(UInt8.self)
        restored.lastWasCommand = try reader.read(Bool.self)
        try reader.finish()
        state.withLock { $0 = restored }
    }
}

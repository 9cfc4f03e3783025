import IPC
import Synchronization

/// A 16550A UART (COM1 at 0x3F8, IRQ 4): the guest's console.
///
/// Transmit is immediate (the holding register is always empty again by the
/// next read of LSR); receive has a FIFO fed from the console. The interrupt
/// line follows the IIR as on real hardware, which is what Linux's 8250 driver
/// expects from the THRE interrupt.
final class Serial16550: BusDevice {
    static let com1Port: UInt64 = 0x3F8
    static let com1IRQ: UInt32 = 4
    static let size: UInt64 = 8
    let name = "serial-16550"

    // Register offsets (with DLAB clear unless noted).
    private enum Register {
        static let data: UInt64 = 0              // RBR / THR; DLL with DLAB
        static let interruptEnable: UInt64 = 1   // IER; DLM with DLAB
        static let interruptIdentify: UInt64 = 2 // IIR (read) / FCR (write)
        static let lineControl: UInt64 = 3
        static let modemControl: UInt64 = 4
        static let lineStatus: UInt64 = 5
        static let modemStatus: UInt64 = 6
        static let scratch: UInt64 = 7
    }
    private enum Bits {
        static let ierReceivedData: UInt8 = 0x01
        static let ierTransmitterEmpty: UInt8 = 0x02
        static let iirNoInterrupt: UInt8 = 0x01
        static let iirTransmitterEmpty: UInt8 = 0x02
        static let iirReceivedData: UInt8 = 0x04
        static let iirFIFOEnabled: UInt8 = 0xC0
        static let lcrDivisorLatch: UInt8 = 0x80
        static let lsrDataReady: UInt8 = 0x01
        static let lsrTransmitterIdle: UInt8 = 0x60  // THRE | TEMT
        static let mcrLoopback: UInt8 = 0x10
        static let msrConnected: UInt8 = 0xB0        // DCD | DSR | CTS
        static let fcrEnable: UInt8 = 0x01
        static let fcrClearReceive: UInt8 = 0x02
    }
    static let receiveCapacity = 4096

    private struct State {
        var interruptEnable: UInt8 = 0
        var lineControl: UInt8 = 0x03
        var modemControl: UInt8 = 0x08
        var scratch: UInt8 = 0
        var divisorLow: UInt8 = 0x0C  // 9600 baud, as after a BIOS
        var divisorHigh: UInt8 = 0
        var fifoEnabled = false
        var transmitterEmptyPending = false
        var received: [UInt8] = []
        var lineHigh = false
    }

    private let state = Mutex(State())
    private let output: ([UInt8]) -> Void
    private let interruptLine: (Bool) -> Void

    /// `output` receives transmitted bytes; `interruptLine` is driven to the level the UART wants.
    init(output: @escaping ([UInt8]) -> Void, interruptLine: @escaping (Bool) -> Void) {
        self.output = output
        self.interruptLine = interruptLine
    }

    /// Bytes typed on the console. Bytes beyond the FIFO's capacity are dropped, as a real UART overruns.
    func receive(_ bytes: [UInt8]) {
        update { state in
            let room = Serial16550.receiveCapacity - state.received.count
            state.received += bytes.prefix(max(room, 0))
        }
    }

    func read(offset: UInt64, into data: inout [UInt8]) {
        let value: UInt8 = update { state in
            let latch = state.lineControl & Bits.lcrDivisorLatch != 0
            switch offset {
            case Register.data where latch: return state.divisorLow
            case Register.data: return state.received.isEmpty ? 0 : state.received.removeFirst()
            case Register.interruptEnable where latch: return state.divisorHigh
            case Register.interruptEnable: return state.interruptEnable
            case Register.interruptIdentify:
                let identity = Serial16550.identify(state)
                // Reading IIR while it reports THRE acknowledges it (16550 datasheet).
                if identity == Bits.iirTransmitterEmpty { state.transmitterEmptyPending = false }
                return identity | (state.fifoEnabled ? Bits.iirFIFOEnabled : 0)
            case Register.lineControl: return state.lineControl
            case Register.modemControl: return state.modemControl
            case Register.lineStatus: return Bits.lsrTransmitterIdle | (state.received.isEmpty ? 0 : Bits.lsrDataReady)
            case Register.modemStatus: return state.modemControl & Bits.mcrLoopback != 0 ? 0 : Bits.msrConnected
            case Register.scratch: return state.scratch
            default: return 0
            }
        }
        for index in data.indices { data[index] = index == 0 ? value : 0 }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        guard let value = data.first else { return .none }
        var transmit: UInt8?
        update { state in
            let latch = state.lineControl & Bits.lcrDivisorLatch != 0
            switch offset {
            case Register.data where latch: state.divisorLow = value
            case Register.data:
                if state.modemControl & Bits.mcrLoopback != 0 {
                    state.received.append(value)
                } else {
                    transmit = value
                }
                state.transmitterEmptyPending = true
            case Register.interruptEnable where latch: state.divisorHigh = value
            case Register.interruptEnable:
                // Enabling THRE while the holder is empty raises it at once (what 8250 drivers probe for).
                if value & Bits.ierTransmitterEmpty != 0 && state.interruptEnable & Bits.ierTransmitterEmpty == 0 {
                    state.transmitterEmptyPending = true
                }
                state.interruptEnable = value & 0x0F
            case Register.interruptIdentify:
                state.fifoEnabled = value & Bits.fcrEnable != 0
                if value & Bits.fcrClearReceive != 0 { state.received.removeAll() }
            case Register.lineControl: state.lineControl = value
            case Register.modemControl: state.modemControl = value & 0x1F
            case Register.scratch: state.scratch = value
            default: break
            }
        }
        if let transmit { output([transmit]) }
        return .none
    }

    /// The IIR's interrupt identity, highest priority first.
    private static func identify(_ state: State) -> UInt8 {
        if state.interruptEnable & Bits.ierReceivedData != 0 && !state.received.isEmpty { return Bits.iirReceivedData }
        if state.interruptEnable & Bits.ierTransmitterEmpty != 0 && state.transmitterEmptyPending { return Bits.iirTransmitterEmpty }
        return Bits.iirNoInterrupt
    }

    /// Applies a change under the lock, then drives the interrupt line if its level changed.
    @discardableResult
    private func update<Result>(_ change: (inout State) -> Result) -> Result {
        let (result, newLevel): (Result, Bool?) = state.withLock { state in
            let result = change(&state)
            let high = Serial16550.identify(state) != Bits.iirNoInterrupt
            guard high != state.lineHigh else { return (result, nil) }
            state.lineHigh = high
            return (result, high)
        }
        if let newLevel { interruptLine(newLevel) }
        return result
    }
}

// MARK: Snapshot

extension Serial16550 {
    /// The registers and the bytes the guest has not read yet.
    func savedState() -> [UInt8] {
        state.withLock { state in
            var writer = WireWriter()
            for byte in [state.interruptEnable, state.lineControl, state.modemControl, state.scratch, state.divisorLow, state.divisorHigh] {
                writer.write(byte)
            }
            writer.write(state.fifoEnabled)
            writer.write(state.transmitterEmptyPending)
            writer.write(state.lineHigh)
            writer.write(state.received)
            return writer.bytes
        }
    }

    /// The interrupt line is not driven: the restored interrupt controller holds its level.
    func restore(_ bytes: [UInt8]) throws {
        var reader = WireReader(bytes: bytes)
        var restored = State()
        restored.interruptEnable = try reader.read(UInt8.self)
        restored.lineControl = try reader.read(UInt8.self)
        restored.modemControl = try reader.read(UInt8.self)
        restored.scratch = try reader.read(UInt8.self)
        restored.divisorLow = try reader.read(UInt8.self)
        restored.divisorHigh = try reader.read(UInt8.self)
        restored.fifoEnabled = try reader.read(Bool.self)
        restored.transmitterEmptyPending = try reader.read(Bool.self)
        restored.lineHigh = try reader.read(Bool.self)
        restored.received = try reader.readBytes(limit: Serial16550.receiveCapacity)
        try reader.finish()
        state.withLock { $0 = restored }
    }
}

import IPC
import Glibc
import Synchronization

/// The MC146818 real-time clock and its CMOS RAM at ports 0x70 (index) and 0x71 (data).
/// The clock reads the host's UTC time when the guest reads it (BCD and 24-hour unless
/// the guest sets status register B otherwise); the update-in-progress bit is never set,
/// so a reader never waits. Writes to the time registers are ignored (the clock stays
/// the host's). The RAM carries the memory-size bytes a BIOS leaves for a kernel.
final class CMOS: BusDevice {
    static let port: UInt64 = 0x70
    static let size: UInt64 = 2
    let name = "cmos"

    // Register indexes.
    static let seconds: UInt8 = 0x00
    static let minutes: UInt8 = 0x02
    static let hours: UInt8 = 0x04
    static let dayOfWeek: UInt8 = 0x06
    static let dayOfMonth: UInt8 = 0x07
    static let month: UInt8 = 0x08
    static let year: UInt8 = 0x09
    static let statusA: UInt8 = 0x0A
    static let statusB: UInt8 = 0x0B
    static let statusC: UInt8 = 0x0C
    static let statusD: UInt8 = 0x0D
    static let century: UInt8 = 0x32

    /// Status B bits: 24-hour mode, binary (not BCD) data, SET (updates stopped).
    static let statusB24Hour: UInt8 = 1 << 1
    static let statusBBinary: UInt8 = 1 << 2
    /// Status D: valid RAM and time (the battery is good).
    static let statusDValid: UInt8 = 1 << 7
    /// Status A: 32.768 kHz time base, 1024 Hz periodic rate; UIP (bit 7) clear.
    static let statusADefault: UInt8 = 0x26

    private struct State {
        var index: UInt8 = 0
        var ram = [UInt8](repeating: 0, count: 128)
    }

    private let state: Mutex<State>
    private let clock: @Sendable () -> Int

    /// Where a BIOS finds the processor count less one (QEMU and SeaBIOS agree on 0x5F).
    static let processorCountLessOne: UInt8 = 0x5F

    /// `ramBelow4G` is the RAM from 0 to the MMIO hole, `ramAbove4G` the RAM from 4 GiB.
    /// `clock` returns seconds since the epoch (tests pass a fixed one).
    init(ramBelow4G: UInt64, ramAbove4G: UInt64, processorCount: Int = 1, clock: @escaping @Sendable () -> Int = { Int(time(nil)) }) {
        var ram = [UInt8](repeating: 0, count: 128)
        ram[Int(CMOS.statusA)] = CMOS.statusADefault
        ram[Int(CMOS.statusB)] = CMOS.statusB24Hour
        ram[Int(CMOS.statusD)] = CMOS.statusDValid
        for (index, value) in CMOS.memorySizeBytes(ramBelow4G: ramBelow4G, ramAbove4G: ramAbove4G) { ram[Int(index)] = value }
        ram[Int(CMOS.processorCountLessOne)] = UInt8(clamping: max(processorCount, 1) - 1)
        state = Mutex(State(ram: ram))
        self.clock = clock
    }

    /// The memory-size registers a PC BIOS sets (the layout QEMU and SeaBIOS use):
    /// 0x15/0x16 base memory in KiB; 0x17/0x18 and 0x30/0x31 extended memory from
    /// 1 MiB in KiB (at most 63 MiB); 0x34/0x35 memory from 16 MiB to the hole in
    /// 64 KiB units; 0x5B–0x5D memory above 4 GiB in 64 KiB units.
    static func memorySizeBytes(ramBelow4G: UInt64, ramAbove4G: UInt64) -> [(UInt8, UInt8)] {
        let kib: UInt64 = 1024, mib: UInt64 = 1 << 20
        let base: UInt64 = 640
        let extended = min(ramBelow4G > mib ? (ramBelow4G - mib) / kib : 0, 0xFC00)
        let above16M = min(ramBelow4G > 16 * mib ? (ramBelow4G - 16 * mib) / (64 * kib) : 0, 0xFFFF)
        let above4G = min(ramAbove4G / (64 * kib), 0xFF_FFFF)
        func low(_ value: UInt64) -> UInt8 { UInt8(value & 0xFF) }
        func high(_ value: UInt64) -> UInt8 { UInt8((value >> 8) & 0xFF) }
        return [
            (0x15, low(base)), (0x16, high(base)),
            (0x17, low(extended)), (0x18, high(extended)),
            (0x30, low(extended)), (0x31, high(extended)),
            (0x34, low(above16M)), (0x35, high(above16M)),
            (0x5B, low(above4G)), (0x5C, high(above4G)), (0x5D, UInt8((above4G >> 16) & 0xFF)),
        ]
    }

    func read(offset: UInt64, into data: inout [UInt8]) {
        let value: UInt8 = offset == 0 ? 0xFF : state.withLock { state in
            let index = state.index
            switch index {
            case CMOS.seconds, CMOS.minutes, CMOS.hours, CMOS.dayOfWeek, CMOS.dayOfMonth, CMOS.month, CMOS.year, CMOS.century:
                return timeRegister(index, statusB: state.ram[Int(CMOS.statusB)])
            case CMOS.statusC:
                // Reading C acknowledges the (never raised) interrupt flags.
                defer { state.ram[Int(CMOS.statusC)] = 0 }
                return state.ram[Int(index)]
            default:
                return state.ram[Int(index)]
            }
        }
        for position in data.indices { data[position] = value }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        guard let byte = data.first else { return .none }
        state.withLock { state in
            if offset == 0 {
                state.index = byte & 0x7F  // bit 7 is the NMI mask, not part of the index
                return
            }
            switch state.index {
            case CMOS.seconds...CMOS.year, CMOS.century:
                break  // the clock follows the host
            case CMOS.statusA:
                state.ram[Int(CMOS.statusA)] = byte & 0x7F  // UIP is read-only
            case CMOS.statusC, CMOS.statusD:
                break  // read-only
            default:
                state.ram[Int(state.index)] = byte
            }
        }
        return .none
    }

    /// One time register for the current host time, in the format status B asks for.
    private func timeRegister(_ index: UInt8, statusB: UInt8) -> UInt8 {
        var seconds = time_t(clock())
        var fields = tm()
        gmtime_r(&seconds, &fields)
        var pm = false
        let value: Int
        switch index {
        case CMOS.seconds: value = Int(fields.tm_sec)
        case CMOS.minutes: value = Int(fields.tm_min)
        case CMOS.hours:
            if statusB & CMOS.statusB24Hour != 0 {
                value = Int(fields.tm_hour)
            } else {
                pm = fields.tm_hour >= 12
                value = Int(fields.tm_hour) % 12 == 0 ? 12 : Int(fields.tm_hour) % 12
            }
        case CMOS.dayOfWeek: value = Int(fields.tm_wday) + 1
        case CMOS.dayOfMonth: value = Int(fields.tm_mday)
        case CMOS.month: value = Int(fields.tm_mon) + 1
        case CMOS.year: value = Int(fields.tm_year + 1900) % 100
        default: value = Int(fields.tm_year + 1900) / 100
        }
        let encoded = statusB & CMOS.statusBBinary != 0 ? UInt8(value) : CMOS.bcd(value)
        return pm ? encoded | 0x80 : encoded
    }

    static func bcd(_ value: Int) -> UInt8 { UInt8((value / 10) << 4 | (value % 10)) }
}

// MARK: Snapshot

extension CMOS {
    /// The index register and the 128 bytes (the clock itself is the host's, read on access).
    func savedState() -> [UInt8] {
        state.withLock { state in
            var writer = WireWriter()
            writer.write(state.index)
            writer.write(state.ram)
            return writer.bytes
        }
    }

    func restore(_ bytes: [UInt8]) throws {
        var reader = WireReader(bytes: bytes)
        let index = try reader.read(UInt8.self)
        let ram = try reader.readBytes(limit: 128)
        try reader.finish()
        guard ram.count == 128 else { throw IPCError.malformed("CMOS of \(ram.count) bytes") }
        state.withLock { $0 = State(index: index, ram: ram) }
    }
}

import GuestRAM
import MemorySlots
import Synchronization

/// The fw_cfg device at its x86 ports (QEMU's docs/specs/fw_cfg.rst), serving a
/// `FirmwareConfigTable`:
/// - 0x510, 16 bits: the selector; writing it picks an item and rewinds to its start.
/// - 0x511, 8 bits: the data port; each read returns the next byte (0 past the end).
/// - 0x514 and 0x518, 32 bits each, big-endian: the high and low halves of the guest
///   address of a DMA access structure; writing the low half runs it. Reading 0x514
///   as 64 bits gives the DMA signature "QEMU CFG".
///
/// DMA lets SeaBIOS read a file in one exit instead of one per byte. The access
/// structure and its buffer are guest addresses, checked like any other: a transfer
/// that reaches outside RAM, a write (nothing here is writable) or an unknown control
/// bit ends with the error bit set, never with a partial copy outside RAM.
final class FirmwareConfigDevice: BusDevice {
    static let port: UInt64 = 0x510
    static let size: UInt64 = 0x0C
    static let selectorOffset: UInt64 = 0
    static let dataOffset: UInt64 = 1
    static let dmaHighOffset: UInt64 = 4
    static let dmaLowOffset: UInt64 = 8
    static let dmaSignature = Array("QEMU CFG".utf8)
    let name = "fw_cfg"

    /// FWCfgDmaAccess.control bits (fw_cfg.rst, "DMA interface").
    enum Control {
        static let error: UInt32 = 1 << 0
        static let read: UInt32 = 1 << 1
        static let skip: UInt32 = 1 << 2
        static let select: UInt32 = 1 << 3
        static let write: UInt32 = 1 << 4
        static let known: UInt32 = error | read | skip | select | write
    }
    /// control (be32), length (be32), address (be64).
    static let accessSize = 16

    private struct Cursor {
        var key: UInt16 = FirmwareConfigTable.Key.signature
        var offset = 0
        var dmaHigh: UInt32 = 0
    }

    private let table: FirmwareConfigTable
    private let memory: GuestMemory
    private let cursor = Mutex(Cursor())

    init(table: FirmwareConfigTable, memory: GuestMemory) {
        self.table = table
        self.memory = memory
    }

    func read(offset: UInt64, into data: inout [UInt8]) {
        switch offset {
        case FirmwareConfigDevice.dataOffset:
            cursor.withLock { cursor in
                let item = table.item(cursor.key)
                for index in data.indices {
                    data[index] = cursor.offset < item.count ? item[cursor.offset] : 0
                    cursor.offset += 1
                }
            }
        case FirmwareConfigDevice.dmaHighOffset..<(FirmwareConfigDevice.dmaHighOffset + 8):
            let start = Int(offset - FirmwareConfigDevice.dmaHighOffset)
            for index in data.indices {
                data[index] = start + index < 8 ? FirmwareConfigDevice.dmaSignature[start + index] : 0
            }
        default:
            for index in data.indices { data[index] = 0 }
        }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect {
        switch (offset, data.count) {
        case (FirmwareConfigDevice.selectorOffset, 2):
            let key = UInt16(data[0]) | UInt16(data[1]) << 8
            cursor.withLock { $0 = Cursor(key: key, offset: 0, dmaHigh: $0.dmaHigh) }
        case (FirmwareConfigDevice.dmaHighOffset, 4):
            cursor.withLock { $0.dmaHigh = FirmwareConfigDevice.bigEndian(data) }
        case (FirmwareConfigDevice.dmaLowOffset, 4):
            let address = cursor.withLock { cursor in
                defer { cursor.dmaHigh = 0 }
                return UInt64(cursor.dmaHigh) << 32 | UInt64(FirmwareConfigDevice.bigEndian(data))
            }
            runDMA(at: address)
        default:
            break  // the data port is read-only here; other widths are not the interface
        }
        return .none
    }

    /// Runs one access structure and writes its control word back: 0 when done, the
    /// error bit when any part failed.
    private func runDMA(at address: UInt64) {
        let structure = GuestAddress(address)
        guard let access = try? memory.readBytes(at: structure, count: FirmwareConfigDevice.accessSize) else {
            return  // nowhere to report to
        }
        let control = FirmwareConfigDevice.bigEndian(Array(access[0..<4]))
        let length = Int(FirmwareConfigDevice.bigEndian(Array(access[4..<8])))
        let buffer = UInt64(FirmwareConfigDevice.bigEndian(Array(access[8..<12]))) << 32
            | UInt64(FirmwareConfigDevice.bigEndian(Array(access[12..<16])))
        let succeeded = transfer(control: control, length: length, to: buffer)
        let result: UInt32 = succeeded ? 0 : Control.error
        try? memory.writeBytes(FirmwareConfigTable.big(UInt64(result), 4), at: structure)
    }

    private func transfer(control: UInt32, length: Int, to buffer: UInt64) -> Bool {
        let operations = control & 0xFFFF
        guard operations & ~Control.known == 0, operations & Control.write == 0 else { return false }
        return cursor.withLock { cursor in
            if operations & Control.select != 0 {
                cursor.key = UInt16(control >> 16)
                cursor.offset = 0
            }
            let item = table.item(cursor.key)
            if operations & Control.read != 0 {
                // The item's bytes from the cursor, zeros past its end (as QEMU); the whole
                // buffer is checked first, so a bad one is not half written.
                let available = max(0, min(length, item.count - cursor.offset))
                do {
                    _ = try memory.slices(at: GuestAddress(buffer), length: UInt64(length), forWriting: true)
                    if available > 0 {
                        try memory.writeBytes(Array(item[cursor.offset..<(cursor.offset + available)]), at: GuestAddress(buffer))
                    }
                    if length > available {
                        try memory.fill(0, at: GuestAddress(buffer + UInt64(available)), count: UInt64(length - available))
                    }
                } catch {
                    return false
                }
            }
            if operations & (Control.read | Control.skip) != 0 {
                cursor.offset = min(cursor.offset + length, Int(UInt32.max))
            }
            return true
        }
    }

    private static func bigEndian(_ bytes: [UInt8]) -> UInt32 {
        bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}

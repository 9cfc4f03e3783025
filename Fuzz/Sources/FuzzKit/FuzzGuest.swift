import Glibc
@testable import GuestRAM
@testable import MemorySlots
@testable import VirtioCore
@testable import VirtioTestSupport
@testable import LinuxSystem

/// The guest memory every memory-touching target runs over: built once per process
/// (mmap per input would dominate the run time) and wiped before each input.
///
///     [0x00000, 0x10000)  slot 0, RAM
///     [0x10000, 0x20000)  hole: no slot (the MMIO-hole path of design §2)
///     [0x20000, 0x30000)  slot 1, RAM
///     [0x30000, 0x31000)  slot 2, read-only, adjacent to slot 1 (ranges split across slots)
///     above 0x31000       nothing
public enum FuzzGuest {
    public static let slots = [
        SlotDescriptor(guestBase: GuestAddress(0x0_0000), size: 0x1_0000),
        SlotDescriptor(guestBase: GuestAddress(0x2_0000), size: 0x1_0000),
        SlotDescriptor(guestBase: GuestAddress(0x3_0000), size: 0x1000, access: .readOnly),
    ]

    public static let memory: GuestMemory = {
        do { return try GuestMemory.anonymous(slots) } catch { fatalError("guest memory for fuzzing: \(error)") }
    }()

    /// Each slot and where it is mapped here.
    private static let mappings: [(slot: SlotDescriptor, host: UnsafeMutableRawPointer)] =
        memory.kvmUserspaceAddresses.map { ($0.slot, UnsafeMutableRawPointer(bitPattern: UInt($0.userspaceAddress))!) }

    /// Zeroes every slot, the read-only one too (through the host mapping).
    public static func wipe() {
        for (slot, host) in mappings {
            memset(host, 0, Int(slot.size))
        }
    }

    /// Writes `bytes` at `address` whatever the slot's access (the guest may have
    /// put them there before the slot was made read-only); bytes outside RAM are dropped.
    public static func poke(_ bytes: [UInt8], at address: UInt64) {
        // Clip [address, address + count) to each slot and copy that part.
        let end = address.addingReportingOverflow(UInt64(bytes.count)).overflow ? UInt64.max : address + UInt64(bytes.count)
        bytes.withUnsafeBytes { source in
            for (slot, host) in mappings {
                let low = max(address, slot.guestBase.value)
                let high = min(end, slot.guestBase.value + slot.size)
                guard low < high else { continue }
                memcpy(host + Int(low - slot.guestBase.value), source.baseAddress! + Int(low - address), Int(high - low))
            }
        }
    }

    /// A guest address from 32 input bits: mostly inside [0, 0x40000) (all slots, the
    /// hole and some space past RAM), sometimes near the top of the 64-bit space so
    /// that address + length overflows.
    public static func address(_ raw: UInt32) -> UInt64 {
        if raw & 0x8000_0000 != 0 {
            return UInt64.max - UInt64(raw & 0xFFFF)
        }
        return UInt64(raw & 0x3_FFFF)
    }

    /// Whether `[address, address + length)` is all guest RAM (writable if asked).
    public static func isInside(_ address: GuestAddress, length: UInt64, writable: Bool) -> Bool {
        guard length > 0 else { return true }
        return (try? memory.slices(at: address, length: length, forWriting: writable)) != nil
    }
}

import Synchronization

/// An address-ordered bus of devices (design §3): the port-I/O space or the
/// MMIO space outside RAM. Ranges never overlap; lookup is a binary search.
/// vCPU threads look up while a guest moving a PCI BAR re-registers, hence the lock.
final class AddressBus: @unchecked Sendable {
    struct Entry {
        let base: UInt64
        let size: UInt64
        let device: BusDevice
        var end: UInt64 { base + size }
    }

    enum RegistrationError: Error, CustomStringConvertible {
        case overlap(new: String, existing: String, at: UInt64)
        case empty(String)

        var description: String {
            switch self {
            case .overlap(let new, let existing, let at): "\(new) overlaps \(existing) at 0x\(String(at, radix: 16))"
            case .empty(let name): "\(name) registered with an empty range"
            }
        }
    }

    let name: String
    private let table = Mutex<[Entry]>([])

    init(name: String) {
        self.name = name
    }

    func register(_ device: BusDevice, base: UInt64, size: UInt64) throws {
        guard size > 0, base.addingReportingOverflow(size).overflow == false else { throw RegistrationError.empty(device.name) }
        try table.withLock { entries in
            if let clash = entries.first(where: { $0.base < base + size && base < $0.end }) {
                throw RegistrationError.overlap(new: device.name, existing: clash.device.name, at: max(base, clash.base))
            }
            entries.append(Entry(base: base, size: size, device: device))
            entries.sort { $0.base < $1.base }
        }
    }

    /// Removes the range of `device` that starts at `base` (a BAR being moved or disabled).
    func unregister(_ device: BusDevice, base: UInt64) {
        table.withLock { entries in entries.removeAll { $0.device === device && $0.base == base } }
    }

    /// The device holding `address` and the offset within its range, if the
    /// whole access of `length` bytes falls inside that range.
    func lookup(_ address: UInt64, length: Int) -> (device: BusDevice, offset: UInt64)? {
        table.withLock { entries in AddressBus.search(entries, address, length: length) }
    }

    private static func search(_ entries: [Entry], _ address: UInt64, length: Int) -> (device: BusDevice, offset: UInt64)? {
        var low = 0, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].end <= address { low = middle + 1 } else { high = middle }
        }
        guard low < entries.count else { return nil }
        let entry = entries[low]
        guard entry.base <= address, address - entry.base + UInt64(length) <= entry.size else { return nil }
        return (entry.device, address - entry.base)
    }
}

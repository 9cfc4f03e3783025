import IPC
import Synchronization

/// The VMM control port (0x5f0), through which a guest learns that the host
/// asked it to shut down (`vmctl stop` without -f). A 32-bit read returns the
/// signature "VMS" in bits 31:8 and flags in bits 7:0; bit 0 is the request.
/// The guest kit polls it; a Linux guest instead gets ctrl-alt-del (issue 7).
final class VMMControlPort: BusDevice, @unchecked Sendable {
    static let port: UInt64 = 0x5F0
    static let size: UInt64 = 4
    static let signature: UInt32 = 0x534D_5600  // "VMS" << 8
    static let shutdownRequestFlag: UInt32 = 0x01
    let name = "vmm-control"
    private let shutdownRequested = Atomic<Bool>(false)

    func requestShutdown() {
        shutdownRequested.store(true, ordering: .releasing)
    }

    func read(offset: UInt64, into data: inout [UInt8]) {
        let flags = shutdownRequested.load(ordering: .acquiring) ? VMMControlPort.shutdownRequestFlag : 0
        let value = VMMControlPort.signature | flags
        for index in data.indices {
            let bit = (Int(offset) + index) * 8
            data[index] = bit < 32 ? UInt8(truncatingIfNeeded: value >> bit) : 0
        }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusEffect { .none }
}

// MARK: Snapshot

extension VMMControlPort {
    var shutdownWasRequested: Bool { shutdownRequested.load(ordering: .acquiring) }

    func restore(shutdownRequested requested: Bool) {
        shutdownRequested.store(requested, ordering: .releasing)
    }
}

// Fuzz target 7: VM snapshots (Sources/Shared/Snapshot), the file `vmctl receive` reads.
// The input is the snapshot itself, read as the vm process reads it into a VM of a fixed
// shape (1 vCPU, one 256 KiB RAM slot, one block device): every section, every page,
// every field decoded. It must be refused with a SnapshotError or read, never trap, and
// never allocate more than the VM's own size. Seeds: tools/make_seeds.py (a valid snapshot
// of that shape, and one with a run table).
import FuzzKit
import IPC
@testable import Snapshot

@_cdecl("FuzzSnapshot_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

private let slotBytes = 256 * 1024
private let shape = SnapshotShape(vcpus: 1, firmware: false, slots: [.init(guestBase: 0, size: UInt64(slotBytes))],
                                  devices: [.init(type: 2, queueCount: 1, name: "disk0")])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var memory = [UInt8](repeating: 0, count: slotBytes)
    do {
        var reader = try SnapshotReader(source: MemoryStream(bytes), expecting: shape)
        while let section = try reader.next() {
            switch section {
            case .memory(_, let runs):
                for run in runs { fuzzCheck((run.firstPage + run.pageCount) * 4096 <= UInt64(slotBytes), "run past the slot accepted") }
                try memory.withUnsafeMutableBytes { target in
                    try reader.readPages { run in
                        UnsafeMutableRawBufferPointer(rebasing: target[Int(run.firstPage) * 4096..<Int(run.firstPage + run.pageCount) * 4096])
                    }
                }
            case .state(_, _, let fields):
                // What the vm process does with a field: a fixed-size read, or a decode.
                var value: UInt64 = 0
                for field in fields.fields {
                    _ = try? fields.raw(field.tag, as: UInt64.self, "field", into: &value)
                    _ = try? fields.read(field.tag, "field") { reader in try reader.read(UInt32.self) }
                }
            }
        }
    } catch is SnapshotError {
    } catch {
        fuzzCheck(false, "a snapshot error that is not a SnapshotError: \(error)")
    }
    return 0
}

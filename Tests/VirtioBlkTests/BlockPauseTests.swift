import Glibc
import LinuxSystem
import Logging
import XCTest
@testable import BlockDevice

/// What a pause does to the image: a writable disk is flushed, as QEMU's stop flushes,
/// so that a migration's receiver on another host or a copy taken while paused does not
/// miss writes still in this host's page cache; a read-only one is left alone.
final class BlockPauseTests: XCTestCase {
    final class CountingBackend: BlockBackend {
        let capacityBytes: UInt64 = 1 << 20
        let readOnly: Bool
        var flushes = 0
        var failFlush = false
        init(readOnly: Bool) { self.readOnly = readOnly }
        func read(into vectors: inout [iovec], at offset: UInt64) throws {}
        func write(from vectors: inout [iovec], at offset: UInt64) throws {}
        func flush() throws {
            flushes += 1
            if failFlush { throw SystemError("fdatasync", errno: EIO) }
        }
        func discard(offset: UInt64, length: UInt64) throws {}
        func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) throws {}
    }

    func testAPauseFlushesAWritableDiskAndLeavesAReadOnlyOne() throws {
        for readOnly in [false, true] {
            let backend = CountingBackend(readOnly: readOnly)
            let device = try BlockVirtioDevice(model: try BlockDeviceModel(backend: backend),
                                               guestLog: RateLimitedLog(logger: Logger(label: "test")))
            device.quiesce()
            XCTAssertEqual(backend.flushes, readOnly ? 0 : 1, "readOnly \(readOnly)")
            // A flush that fails at a pause is logged; the pause still happens.
            backend.failFlush = true
            device.quiesce()
            XCTAssertEqual(backend.flushes, readOnly ? 0 : 2, "readOnly \(readOnly)")
        }
    }
}

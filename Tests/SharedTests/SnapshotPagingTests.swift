import CLinux
import Glibc
import GuestRAM
import IPC
import LinuxSystem
import MemorySlots
import XCTest
@testable import Snapshot

/// The pieces a lazy restore and a live migration stand on: where each page of a snapshot
/// is in its file, memory sections in rounds, and the pages a process wrote.
final class SnapshotPagingTests: XCTestCase {
    private let pages = DeferredPages(slot: 0, runs: [PageRun(firstPage: 2, pageCount: 3), PageRun(firstPage: 10, pageCount: 1)],
                                      fileOffset: 1000, expectedChecksum: 0)

    func testThePageMapFindsEachPageInTheFileAZeroPageOrNothing() {
        let map = SnapshotPageMap(regions: [(hostAddress: 0x7000_0000, size: 16 * 4096, pages: pages)])
        XCTAssertEqual(map.page(at: 0x7000_0000 + 2 * 4096).page, .file(offset: 1000))
        XCTAssertEqual(map.page(at: 0x7000_0000 + 4 * 4096 + 123).page, .file(offset: 1000 + 2 * 4096), "an address inside the page")
        XCTAssertEqual(map.page(at: 0x7000_0000 + 4 * 4096 + 123).address, 0x7000_0000 + 4 * 4096)
        XCTAssertEqual(map.page(at: 0x7000_0000 + 10 * 4096).page, .file(offset: 1000 + 3 * 4096), "the second run follows the first in the file")
        for page: UInt64 in [0, 1, 5, 9, 11, 15] {
            XCTAssertEqual(map.page(at: 0x7000_0000 + page * 4096).page, .zero, "page \(page) is not in the snapshot")
        }
        XCTAssertEqual(map.page(at: 0x7000_0000 + 16 * 4096).page, .outside)
        XCTAssertEqual(map.page(at: 0x6FFF_F000).page, .outside)
    }

    func testALiveMigrationsMemoryRoundsAreReadInOrderAndOnlyThere() throws {
        let shape = SnapshotShape(vcpus: 1, firmware: false, slots: [.init(guestBase: 0, size: 8 * 4096)], devices: [])
        var memory = [UInt8](repeating: 1, count: 8 * 4096)
        var writer = try SnapshotWriter(sink: MemoryStream(), shape: shape)
        try writer.writeState(.machine, index: 0, StateFields())
        try writer.writeState(.vcpu, index: 0, StateFields())
        for value: UInt8 in [1, 2] {
            for index in memory.indices where index < 4096 { memory[index] = value }
            try memory.withUnsafeBytes { bytes in
                try writer.writeMemory(slot: 0, runs: [PageRun(firstPage: 0, pageCount: 1)], live: true) { _ in
                    UnsafeRawBufferPointer(rebasing: bytes[0..<4096])
                }
            }
        }
        let bytes = try writer.finish().bytes
        var single = try SnapshotReader(source: MemoryStream(bytes), expecting: shape)
        XCTAssertThrowsError(try single.readAll()) { error in
            XCTAssertTrue("\(error)".contains("appears twice"), "a snapshot has one memory section per slot: \(error)")
        }
        var reader = try SnapshotReader(source: MemoryStream(bytes), expecting: shape, memoryInRounds: true)
        var target = [UInt8](repeating: 0, count: 8 * 4096)
        var rounds = 0
        while let section = try reader.next() {
            guard case .memory = section else { continue }
            rounds += 1
            try target.withUnsafeMutableBytes { buffer in
                try reader.readPages { _ in UnsafeMutableRawBufferPointer(rebasing: buffer[0..<4096]) }
            }
        }
        XCTAssertEqual(rounds, 2)
        XCTAssertEqual(target[0], 2, "the later round's page is the one that stays")
    }

    func testWritesThroughGuestMemoryAreLoggedOnlyWhileLoggingAndPerPage() throws {
        let slots = [SlotDescriptor(guestBase: GuestAddress(0), size: 64 * 4096), SlotDescriptor(guestBase: GuestAddress(1 << 20), size: 16 * 4096)]
        let memory = try GuestMemory.anonymous(slots)
        let bytes = DirtyPageLog.bitmapBytes(slotSizes: slots.map(\.size))
        XCTAssertEqual(bytes, 8 + 8, "one 64-bit word for each slot")
        let file = FileDescriptor(adopting: vmd_memfd_create("dirty-test", 0))
        XCTAssertEqual(ftruncate(file.rawValue, off_t(bytes)), 0)
        try memory.writeBytes([1], at: GuestAddress(0))  // before logging: not logged
        try memory.logWrites(into: file)
        try memory.writeBytes([1, 2], at: GuestAddress(3 * 4096 + 4095))  // pages 3 and 4
        try memory.storeRelease(UInt16(7), at: GuestAddress(9 * 4096))   // page 9
        _ = try memory.readBytes(at: GuestAddress(20 * 4096), count: 8)   // a read logs nothing
        try memory.fill(0, at: GuestAddress((1 << 20) + 15 * 4096), count: 4096)  // slot 1, page 15
        memory.stopLoggingWrites()
        try memory.writeBytes([1], at: GuestAddress(30 * 4096))  // after: not logged
        let words = try file.pread(count: bytes, offset: 0)
        let word = { (index: Int) in (0..<8).reduce(UInt64(0)) { $0 | UInt64(words[index * 8 + $1]) << (8 * UInt64($1)) } }
        XCTAssertEqual(word(0), 1 << 3 | 1 << 4 | 1 << 9)
        XCTAssertEqual(word(1), 1 << 15)
    }
}

extension SnapshotReader {
    /// Every section, pages skipped into a scratch buffer.
    mutating func readAll() throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 20)
        while let section = try next() {
            guard case .memory = section else { continue }
            try scratch.withUnsafeMutableBytes { buffer in
                try readPages { run in UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(run.pageCount) * 4096]) }
            }
        }
    }
}

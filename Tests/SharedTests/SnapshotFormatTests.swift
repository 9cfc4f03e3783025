import IPC
import XCTest
@testable import Snapshot

/// The snapshot format on its own: what the writer writes the reader gives back, and a
/// damaged, truncated, hostile or foreign file is refused with a clear error.
final class SnapshotFormatTests: XCTestCase {
    private let shape = SnapshotShape(
        vcpus: 2, firmware: false,
        slots: [.init(guestBase: 0, size: 64 * 4096), .init(guestBase: 1 << 32, size: 16 * 4096)],
        devices: [.init(type: 2, queueCount: 2, name: "disk0"), .init(type: 1, queueCount: 2, name: "net0")])

    /// Guest RAM of the shape: slot 0 with pages 3...5 and 40 written, slot 1 with page 15.
    private func ram() -> [[UInt8]] {
        var slot0 = [UInt8](repeating: 0, count: 64 * 4096), slot1 = [UInt8](repeating: 0, count: 16 * 4096)
        for page in [3, 4, 5, 40] { for offset in 0..<4096 { slot0[page * 4096 + offset] = UInt8(truncatingIfNeeded: page &* 31 &+ offset) } }
        for offset in 0..<4096 { slot1[15 * 4096 + offset] = UInt8(truncatingIfNeeded: offset ^ 0x5A) }
        return [slot0, slot1]
    }

    private let runs: [[PageRun]] = [[PageRun(firstPage: 3, pageCount: 3), PageRun(firstPage: 40, pageCount: 1)],
                                     [PageRun(firstPage: 15, pageCount: 1)]]

    private func fields(_ seed: UInt8) -> StateFields {
        var fields = StateFields()
        fields.append(1, [seed, seed &+ 1, seed &+ 2])
        fields.append(7) { $0.write(UInt64(seed) << 40) }
        return fields
    }

    private func snapshot(shape: SnapshotShape? = nil, skipping: SnapshotSectionKind? = nil, twice: Bool = false) throws -> [UInt8] {
        var writer = try SnapshotWriter(sink: MemoryStream(), shape: shape ?? self.shape)
        if skipping != .machine { try writer.writeState(.machine, index: 0, fields(1)) }
        for vcpu in 0..<2 { try writer.writeState(.vcpu, index: vcpu, fields(10 + UInt8(vcpu))) }
        if twice { try writer.writeState(.vcpu, index: 1, fields(11)) }
        var memory = ram()
        for slot in 0..<2 where skipping != .memory || slot == 0 {
            try memory[slot].withUnsafeMutableBytes { bytes in
                try writer.writeMemory(slot: slot, runs: runs[slot]) { run in
                    UnsafeRawBufferPointer(rebasing: bytes[Int(run.firstPage) * 4096..<Int(run.firstPage + run.pageCount) * 4096])
                }
            }
        }
        for device in 0..<2 { try writer.writeState(.device, index: device, fields(20 + UInt8(device))) }
        return try writer.finish().bytes
    }

    /// Reads a whole snapshot into fresh RAM; returns the state sections and the RAM.
    private func read(_ bytes: [UInt8], expecting: SnapshotShape? = nil) throws -> ([SnapshotSection], [[UInt8]]) {
        var reader = try SnapshotReader(source: MemoryStream(bytes), expecting: expecting ?? shape)
        var sections: [SnapshotSection] = []
        var memory = [[UInt8](repeating: 0, count: 64 * 4096), [UInt8](repeating: 0, count: 16 * 4096)]
        while let section = try reader.next() {
            sections.append(section)
            if case .memory(let slot, _) = section {
                try memory[slot].withUnsafeMutableBytes { target in
                    try reader.readPages { run in
                        UnsafeMutableRawBufferPointer(rebasing: target[Int(run.firstPage) * 4096..<Int(run.firstPage + run.pageCount) * 4096])
                    }
                }
            }
        }
        return (sections, memory)
    }

    func testWhatIsWrittenIsReadBackSectionBySectionAndPageByPage() throws {
        let bytes = try snapshot()
        let (sections, memory) = try read(bytes)
        XCTAssertEqual(sections.first, .state(.machine, index: 0, fields(1)))
        XCTAssertTrue(sections.contains(.state(.vcpu, index: 1, fields(11))))
        XCTAssertTrue(sections.contains(.state(.device, index: 1, fields(21))))
        XCTAssertTrue(sections.contains(.memory(slot: 0, runs: runs[0])))
        XCTAssertEqual(memory, ram(), "every written page lands where it was, the rest stays zero")
        XCTAssertLessThan(bytes.count, 6 * 4096, "only the five written pages are in the file, not the 80 of the VM")
    }

    func testAnotherShapeIsRefusedBeforeAnythingElseIsReadWithAMessageSayingHow() throws {
        let bytes = try snapshot()
        var smaller = shape
        smaller.slots[1].size = 8 * 4096
        var oneCPU = shape
        oneCPU.vcpus = 1
        var noNIC = shape
        noNIC.devices.removeLast()
        for (vm, words) in [(smaller, "MiB of RAM"), (oneCPU, "2 vCPUs, the VM 1"), (noNIC, "net0")] {
            XCTAssertThrowsError(try read(bytes, expecting: vm)) { error in
                guard case SnapshotError.shapeMismatch(let how) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(how.contains(words), how)
                XCTAssertTrue("\(error)".hasPrefix("snapshot does not fit this VM"))
            }
        }
    }

    func testAFlippedByteAnywhereIsFoundByAChecksumOrRefusedAsMalformed() throws {
        let bytes = try snapshot()
        // Every 97th byte: headers, lengths, fields, page data and checksums alike.
        for offset in stride(from: 0, to: bytes.count, by: 97) {
            var damaged = bytes
            damaged[offset] ^= 0x40
            XCTAssertThrowsError(try read(damaged), "byte \(offset) flipped") { error in
                XCTAssertTrue(error is SnapshotError, "byte \(offset): \(error)")
            }
        }
    }

    func testATruncatedSnapshotIsRefusedAtEveryLength() throws {
        let bytes = try snapshot()
        for length in Array(stride(from: 0, to: bytes.count, by: 61)) + [bytes.count - 1] {
            XCTAssertThrowsError(try read(Array(bytes.prefix(length))), "\(length) bytes") { error in
                XCTAssertTrue(error is SnapshotError, "\(length) bytes: \(error)")
            }
        }
    }

    func testAnotherVersionOrAnotherFileIsNamedAsSuch() throws {
        var bytes = try snapshot()
        bytes[8] = 2  // the version's low byte
        XCTAssertThrowsError(try read(bytes)) { XCTAssertEqual($0 as? SnapshotError, .unsupportedVersion(2)) }
        XCTAssertThrowsError(try read(Array("QFI\u{fb}".utf8) + [UInt8](repeating: 0, count: 100))) {
            XCTAssertEqual($0 as? SnapshotError, .notASnapshot)
        }
    }

    func testASectionTwiceOrOneMissingIsRefused() throws {
        XCTAssertThrowsError(try read(try snapshot(twice: true))) { error in
            XCTAssertTrue("\(error)".contains("appears twice"), "\(error)")
        }
        for kind in [SnapshotSectionKind.machine, .memory] {
            XCTAssertThrowsError(try read(try snapshot(skipping: kind))) { error in
                XCTAssertTrue("\(error)".contains("missing") || "\(error)".contains("counts"), "\(kind): \(error)")
            }
        }
    }

    /// A hand-made hostile file: the shape is right, then sections that lie.
    private func hostile(_ section: (inout WireWriter) -> Void) throws -> [UInt8] {
        var header = try SnapshotWriter(sink: MemoryStream(), shape: shape)
        var bytes = try header.finish().bytes
        bytes.removeLast(16 + 4 + 8)  // drop the end marker: the test's section comes instead
        var writer = WireWriter()
        section(&writer)
        var checksum = SnapshotChecksum()
        checksum.update(writer.bytes)
        writer.write(checksum.value)
        return bytes + writer.bytes
    }

    func testRunsOutsideTheSlotOrOutOfOrderAndHugeLengthsAreRefusedWithoutAllocating() throws {
        let cases: [(String, (inout WireWriter) -> Void)] = [
            ("outside", { w in
                w.write(UInt32(4)); w.write(UInt32(1)); w.write(UInt64(12 + 16 + 4096))
                w.write(UInt64(4096)); w.write(UInt32(1)); w.write(UInt64(16)); w.write(UInt64(1))  // slot 1 has 16 pages: 16 is past it
            }),
            ("out of order", { w in
                w.write(UInt32(4)); w.write(UInt32(0)); w.write(UInt64(12 + 32 + 2 * 4096))
                w.write(UInt64(4096)); w.write(UInt32(2))
                w.write(UInt64(10)); w.write(UInt64(1)); w.write(UInt64(5)); w.write(UInt64(1))
            }),
            ("too many runs", { w in
                w.write(UInt32(4)); w.write(UInt32(0)); w.write(UInt64.max)
                w.write(UInt64(4096)); w.write(UInt32.max)
            }),
            ("huge state", { w in
                w.write(UInt32(2)); w.write(UInt32(0)); w.write(UInt64(1) << 40)
            }),
            ("no such vCPU", { w in
                w.write(UInt32(2)); w.write(UInt32(7)); w.write(UInt64(4)); w.write(UInt32(0))
            }),
            ("no such kind", { w in
                w.write(UInt32(9)); w.write(UInt32(0)); w.write(UInt64(0))
            }),
        ]
        for (name, section) in cases {
            XCTAssertThrowsError(try read(try hostile(section)), name) { error in
                guard case SnapshotError.malformed = error else { return XCTFail("\(name): \(error)") }
            }
        }
    }

    func testAFieldOfTheWrongSizeIsRefusedNamingIt() throws {
        var fields = StateFields()
        fields.append(3, [1, 2, 3])
        var value: UInt64 = 0
        XCTAssertThrowsError(try fields.raw(3, as: UInt64.self, "vCPU 0 registers", into: &value)) { error in
            XCTAssertEqual("\(error)", "snapshot is malformed: vCPU 0 registers is 3 bytes, not 8")
        }
        XCTAssertThrowsError(try fields.raw(4, as: UInt64.self, "vCPU 0 LAPIC", into: &value)) { error in
            XCTAssertTrue("\(error)".contains("LAPIC is missing"))
        }
    }
}

import CLinux
import Glibc
import XCTest
@testable import IPC
@testable import LinuxSystem

/// The counter pages vmd reads for `vmctl stats` and the metrics: the counting process's
/// numbers reach vmd's read-only mapping, and nothing the counting process can do to the
/// memfd takes the page away under vmd.
final class CounterPageTests: XCTestCase {
    func testWhatTheChildCountsVmdReads() throws {
        let (reader, memfd) = try CounterPage.create(slots: 10, name: "counter-test")
        let writer = try CounterPage.adopt(memfd)
        XCTAssertGreaterThanOrEqual(writer.slots, 10, "the child maps the whole page")
        writer.add(3, 5)
        writer.add(3, 2)
        writer.store(9, 1 << 40)
        XCTAssertEqual(reader.load(3), 7)
        XCTAssertEqual(reader.load(9), 1 << 40)
        XCTAssertEqual(reader.load(0), 0)
    }

    func testVmdsMappingIsReadOnlyAndOutOfRangeSlotsAreIgnored() throws {
        let (reader, memfd) = try CounterPage.create(slots: 4, name: "counter-test")
        reader.add(1, 9)
        reader.store(2, 9)
        XCTAssertEqual(reader.load(1), 0, "vmd's page does not count")
        XCTAssertEqual(reader.load(2), 0)
        let writer = try CounterPage.adopt(memfd)
        writer.add(-1, 1)
        writer.add(writer.slots, 1)
        writer.store(Int.max, 1)
        XCTAssertEqual(reader.load(writer.slots), 0)
        XCTAssertEqual(reader.load(-5), 0)
        XCTAssertEqual((0..<writer.slots).map { reader.load($0) }.reduce(0, +), 0)
    }

    func testTheMemfdIsSealedAgainstResizing() throws {
        let (reader, memfd) = try CounterPage.create(slots: 4, name: "counter-test")
        XCTAssertEqual(ftruncate(memfd.rawValue, 0), -1, "a counting process cannot shrink the page under vmd's mapping")
        XCTAssertEqual(errno, EPERM)
        XCTAssertEqual(ftruncate(memfd.rawValue, 1 << 20), -1)
        XCTAssertEqual(errno, EPERM)
        XCTAssertEqual(reader.load(0), 0, "and the page still reads")
    }

    func testAPageOfNoOrTooManySlotsIsRefused() throws {
        XCTAssertThrowsError(try CounterPage.create(slots: 0, name: "counter-test"))
        XCTAssertThrowsError(try CounterPage.create(slots: CounterPage.maximumSlots + 1, name: "counter-test"))
        let empty = FileDescriptor(adopting: vmd_memfd_create("counter-empty", UInt32(MFD_CLOEXEC)))
        XCTAssertThrowsError(try CounterPage.adopt(empty), "an empty file is no counter page")
    }
}

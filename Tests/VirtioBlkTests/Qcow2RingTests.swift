import CLinux
import Foundation
import Glibc
import XCTest
@testable import BlockDevice
@testable import GuestRAM
@testable import LinuxSystem
@testable import MemorySlots
@testable import VirtioCore

/// qcow2 through the io_uring: data clusters go to the ring as runs of the file, the rest
/// is served by the backend, and a layout change waits for what is in flight.
final class Qcow2RingTests: XCTestCase {
    private var directory: URL!
    private var memory: GuestMemory!

    override func setUpWithError() throws {
        _ = try QemuImg.require()
        directory = try makeImageDirectory("ring")
        memory = try makeMemory()
    }

    /// An empty 1 MiB image of 4 KiB clusters.
    private func makeImage(direct: Bool = false) throws -> (path: String, backend: Qcow2Backend) {
        let path = directory.appendingPathComponent("disk-\(UUID().uuidString).qcow2").path
        let made = try QemuImg.run(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", path, "1M"])
        XCTAssertEqual(made.status, 0, made.output)
        let file = try FileDescriptor.open(path, flags: O_RDWR | (direct ? VMD_O_DIRECT : 0))
        return (path, try Qcow2Backend(file: file, readOnly: false, backing: nil))
    }

    private func server(_ backend: Qcow2Backend) throws -> (BlockRingServer, BlockDeviceModel) {
        let model = try BlockDeviceModel(backend: backend)
        return (try BlockRingServer(model: model, backend: backend, capacity: 8), model)
    }

    func testAReadOverClustersApartInTheFileIsOneSubmissionPerRun() throws {
        let (path, backend) = try makeImage()
        // Guest cluster 1 is allocated first, so clusters 0 and 1 are not adjacent in the file.
        let data = patternBytes(count: 8192, seed: 3)
        try backend.writeBytes(Array(data[4096...]), at: 4096)
        try backend.writeBytes(Array(data[..<4096]), at: 0)
        let extents = try XCTUnwrap(try backend.fileExtents(at: 0, length: 8192, forWriting: false, limit: 16))
        XCTAssertEqual(extents.count, 2, "\(extents)")
        XCTAssertNil(try backend.fileExtents(at: 0, length: 8192, forWriting: false, limit: 1), "more runs than allowed")

        let (ring, _) = try server(backend)
        let read = try ChainBuilder.read(memory, sector: 0, count: 8192, at: 0x8_0000, alignedData: true)
        XCTAssertNil(ring.start(read.chain, queue: 0, memory: memory), "to the ring")
        let done = try ring.submit(memory: memory) + ring.waitIdle(memory: memory)
        XCTAssertEqual(done.map(\.length), [8193])
        XCTAssertEqual(Array(try read.writableBytes()[..<8192]), data)
        try QemuImg.assertCheckClean(path)
    }

    /// One request can take every submission tag while a request slot is left: the next
    /// request (a flush, one submission) must wait for it, not run out of tags.
    func testARequestWhenEveryTagIsTakenWaitsForTheRing() throws {
        let (path, backend) = try makeImage()
        let data = patternBytes(count: 4 * 4096, seed: 11)
        for cluster in (0..<4).reversed() {  // descending in the file: four runs, none adjacent
            try backend.writeBytes(Array(data[(cluster * 4096)..<((cluster + 1) * 4096)]), at: UInt64(cluster * 4096))
        }
        let model = try BlockDeviceModel(backend: backend)
        let ring = try BlockRingServer(model: model, backend: backend, capacity: 2)  // 2 slots, 4 tags
        let read = try ChainBuilder.read(memory, sector: 0, count: 4 * 4096, at: 0x8_0000, alignedData: true)
        XCTAssertNil(ring.start(read.chain, queue: 0, memory: memory), "four submissions: every tag")
        let flush = try ChainBuilder.flush(memory, at: 0x4_0000)
        XCTAssertEqual(ring.start(flush.chain, queue: 1, memory: memory), 1, "served at once, after the read")
        XCTAssertEqual(try flush.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(try ring.submit(memory: memory).map(\.length), [4 * 4096 + 1])
        XCTAssertEqual(Array(try read.writableBytes()[..<(4 * 4096)]), data)
        try QemuImg.assertCheckClean(path)
    }

    /// A hostile image through the ring: an L2 entry off a cluster boundary fails its read
    /// (served by the backend, which refuses it), and a data cluster a terabyte past the end
    /// of the file reads as zeros: the ring's read comes back short and the rest is zeroed,
    /// as the backend's own read has it. Nothing outside the file is read.
    func testAHostileImageFailsItsRequestThroughTheRingToo() throws {
        let (path, writer) = try makeImage()
        try writer.writeBytes(patternBytes(count: 8192, seed: 2), at: 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u64(_ offset: Int) -> UInt64 { bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let l2 = Int(u64(Int(writer.header.l1TableOffset)) & Qcow2Backend.offsetMask)
        let copied = u64(l2) & Qcow2Backend.copiedFlag
        bytes.replaceSubrange(l2..<(l2 + 8), with: Qcow2Backend.encode64(copied | (u64(l2) & Qcow2Backend.offsetMask) | 0x200))
        bytes.replaceSubrange((l2 + 8)..<(l2 + 16), with: Qcow2Backend.encode64(copied | 1 << 40))
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let backend = try Qcow2Backend(file: try openImage(path), readOnly: true, backing: nil)
        let (ring, model) = try server(backend)
        let unaligned = try ChainBuilder.read(memory, sector: 0, count: 4096, at: 0x8_0000, alignedData: true)
        XCTAssertEqual(ring.start(unaligned.chain, queue: 0, memory: memory), 1, "served at once, failed")
        XCTAssertEqual(try unaligned.status(), BlockStatus.ioError.rawValue)
        XCTAssertEqual(model.counters.ioErrors, 1)

        let beyond = try ChainBuilder.read(memory, sector: 8, count: 4096, at: 0x4_0000, alignedData: true)
        XCTAssertNil(ring.start(beyond.chain, queue: 0, memory: memory), "a data cluster: to the ring")
        let done = try ring.submit(memory: memory) + ring.waitIdle(memory: memory)
        XCTAssertEqual(done.map(\.length), [4097])
        XCTAssertEqual(try beyond.status(), BlockStatus.ok.rawValue)
        XCTAssertEqual(Array(try beyond.writableBytes()[..<4096]), [UInt8](repeating: 0, count: 4096))
    }

    /// A hostile image whose L2 entry points a guest cluster at the image's own refcount
    /// block: a write there is refused whichever way it would go (the ring's extents or the
    /// backend's own write), before any refcount block is loaded, and the block is intact.
    /// The check looks the refcount table up in a set (it scanned the table per write).
    func testAWriteIntoTheRefcountBlockIsRefusedBeforeTheBlockIsLoaded() throws {
        let (path, writer) = try makeImage()
        try writer.writeBytes(patternBytes(count: 4096, seed: 4), at: 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u64(_ offset: Int) -> UInt64 { bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let l2 = Int(u64(Int(writer.header.l1TableOffset)) & Qcow2Backend.offsetMask)
        let refcountBlock = u64(Int(writer.header.refcountTableOffset)) & Qcow2Backend.offsetMask
        XCTAssertNotEqual(refcountBlock, 0)
        bytes.replaceSubrange(l2..<(l2 + 8), with: Qcow2Backend.encode64(Qcow2Backend.copiedFlag | refcountBlock))
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let before = Array(bytes[Int(refcountBlock)..<(Int(refcountBlock) + 4096)])

        let backend = try Qcow2Backend(file: try openImage(path, writable: true), readOnly: false, backing: nil)
        XCTAssertTrue(backend.refcountBlocks.isEmpty, "no refcount block loaded yet: only the table can tell")
        XCTAssertThrowsError(try backend.fileExtents(at: 0, length: 4096, forWriting: true, limit: 16))
        XCTAssertThrowsError(try backend.writeBytes(patternBytes(count: 4096, seed: 5), at: 0))
        let after = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(after[Int(refcountBlock)..<(Int(refcountBlock) + 4096)]), before, "the refcount block is intact")
    }

    func testUnallocatedClustersAreServedByTheBackend() throws {
        let (_, backend) = try makeImage()
        XCTAssertNil(try backend.fileExtents(at: 0, length: 4096, forWriting: false, limit: 16))
        let (ring, _) = try server(backend)
        let read = try ChainBuilder.read(memory, sector: 0, count: 4096, at: 0x8_0000, alignedData: true)
        XCTAssertEqual(ring.start(read.chain, queue: 0, memory: memory), 4097, "served at once")
        XCTAssertEqual(Array(try read.writableBytes()[..<4096]), [UInt8](repeating: 0, count: 4096))
        XCTAssertTrue(ring.idle)
    }

    /// Under `cache none` a write into an allocated cluster goes to the ring; one that
    /// allocates is the backend's, and the image stays consistent.
    func testUnderDirectIOAWriteInPlaceGoesToTheRingAndAnAllocatingOneDoesNot() throws {
        let (path, backend) = try makeImage(direct: true)
        try backend.writeBytes(patternBytes(count: 4096, seed: 1), at: 0)
        XCTAssertNotNil(try backend.fileExtents(at: 0, length: 4096, forWriting: true, limit: 16))
        XCTAssertNil(try backend.fileExtents(at: 4096, length: 4096, forWriting: true, limit: 16), "allocates")
        let (ring, model) = try server(backend)
        let data = patternBytes(count: 8192, seed: 9)
        for (index, sector) in [UInt64(0), 8].enumerated() {
            var write = ChainBuilder(memory: memory)
            let base = 0x1_0000 * UInt64(index + 1)
            write.next = base
            try write.readable(requestHeader(type: 1, sector: sector))
            write.next = base + 0x1000  // whole sectors, aligned: what O_DIRECT takes
            try write.readable(Array(data[(index * 4096)..<((index + 1) * 4096)]))
            try write.writable(1)
            let started = ring.start(write.chain, queue: 0, memory: memory)
            if index == 0 { XCTAssertNil(started, "in place: to the ring") } else { XCTAssertEqual(started, 1, "allocating: at once") }
            _ = try ring.submit(memory: memory) + ring.waitIdle(memory: memory)
            XCTAssertEqual(try write.status(), BlockStatus.ok.rawValue)
        }
        XCTAssertEqual(model.counters.writes, 2)
        XCTAssertEqual(try backend.readBytes(at: 0, count: 8192), data)
        try QemuImg.assertCheckClean(path)
    }

    /// A discard frees the cluster a read in flight is reading: it waits for the read.
    func testALayoutChangeWaitsForTheRequestsInFlight() throws {
        let (path, backend) = try makeImage()
        let data = patternBytes(count: 4096, seed: 5)
        try backend.writeBytes(data, at: 0)
        let (ring, _) = try server(backend)
        let read = try ChainBuilder.read(memory, sector: 0, count: 4096, at: 0x8_0000, alignedData: true)
        XCTAssertNil(ring.start(read.chain, queue: 1, memory: memory), "prepared, not submitted yet")
        var discard = ChainBuilder(memory: memory)
        discard.next = 0x4_0000
        try discard.readable(requestHeader(type: 11))
        try discard.readable(segment(sector: 0, count: 8))
        try discard.writable(1)
        XCTAssertEqual(ring.start(discard.chain, queue: 0, memory: memory), 1)
        XCTAssertTrue(ring.idle, "the read was waited for")
        let done = try ring.submit(memory: memory)
        XCTAssertEqual(done.map(\.queue), [1], "the read's completion comes with the next batch")
        XCTAssertEqual(Array(try read.writableBytes()[..<4096]), data, "read before the discard")
        XCTAssertEqual(try backend.readBytes(at: 0, count: 4096), [UInt8](repeating: 0, count: 4096))
        try QemuImg.assertCheckClean(path)
    }
}

import DiskFormats
import Foundation
import Glibc
import XCTest
@testable import BlockDevice
@testable import LinuxSystem

/// qcow2 through the virtio-blk backend, against qemu-img: images it makes read back as
/// what it converted; images we write pass `qemu-img check` and convert back to exactly
/// what was written; backing chains read through and stay unchanged.
final class Qcow2BackendTests: XCTestCase {
    private func writeFile(_ bytes: [UInt8], _ path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A raw disk with data, holes and a zero run, the same bytes for every format test.
    private func sourceDisk(_ size: Int) -> [UInt8] {
        var bytes = patternBytes(count: size, seed: 7)
        bytes.replaceSubrange((size / 4)..<(size / 2), with: repeatElement(0, count: size / 4))
        return bytes
    }

    func testImagesQemuImgMakesReadBackAsTheirRawContents() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("read")
        let raw = directory.appendingPathComponent("source.raw").path
        let source = sourceDisk(3 << 20)
        try writeFile(source, raw)
        for (options, compress) in [("cluster_size=4096", false), ("cluster_size=65536", false), ("cluster_size=2097152", false),
                                    ("cluster_size=65536,compat=0.10", false), ("cluster_size=65536", true), ("cluster_size=4096", true),
                                    ("cluster_size=65536,compression_type=zstd", true), ("cluster_size=4096,compression_type=zstd", true),
                                    ("cluster_size=2097152,compression_type=zstd", true)] {
            let image = directory.appendingPathComponent("image.qcow2").path
            unlink(image)
            let made = try QemuImg.run(["convert", "-O", "qcow2", "-o", options] + (compress ? ["-c"] : []) + [raw, image])
            XCTAssertEqual(made.status, 0, made.output)
            let backend = try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil)
            XCTAssertEqual(backend.capacityBytes, UInt64(source.count), options)
            XCTAssertEqual(backend.header.version, options.contains("compat=0.10") ? 2 : 3)
            XCTAssertEqual(backend.header.compressionType, options.contains("zstd") ? .zstd : .deflate)
            XCTAssertTrue(try backend.readBytes(at: 0, count: source.count) == source, "\(options) compressed=\(compress)")
            // An odd range across clusters.
            XCTAssertTrue(try backend.readBytes(at: 4096 * 3 + 512, count: 70_000) == Array(source[(4096 * 3 + 512)..<(4096 * 3 + 512 + 70_000)]), options)
        }
    }

    /// Each way qemu-img lays out an image that a user may bring (preallocated, lazy refcounts
    /// off again, 1-bit refcounts, a version 2 header, a size that is no whole number of
    /// clusters, the smallest clusters extended L2 allows): read as qemu-img reads it, then
    /// written over data, holes and preallocated clusters, and still as qemu-img reads it.
    func testEveryImageLayoutQemuImgMakesIsReadAndWrittenAsItReadsThem() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("layouts")
        for (options, size) in [("compat=0.10", 3 << 20), ("lazy_refcounts=on", 3 << 20), ("preallocation=metadata", 3 << 20),
                                ("preallocation=falloc", 3 << 20), ("preallocation=full", 3 << 20), ("refcount_bits=1", 3 << 20),
                                ("extended_l2=on,cluster_size=16384", 3 << 20), ("cluster_size=2097152", 3 << 20),
                                ("cluster_size=65536", 3_000_320), ("cluster_size=4096,preallocation=metadata", 1_000_448)] {
            let raw = directory.appendingPathComponent("source.raw").path
            try writeFile(sourceDisk(size), raw)
            let image = directory.appendingPathComponent("image.qcow2").path
            unlink(image)
            let made = try QemuImg.run(["convert", "-O", "qcow2", "-o", options, raw, image])
            XCTAssertEqual(made.status, 0, made.output)
            var expected = ExpectedDisk(bytes: sourceDisk(size))
            let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
            XCTAssertEqual(backend.capacityBytes, UInt64(size), options)
            XCTAssertTrue(try backend.readBytes(at: 0, count: size) == expected.bytes, "\(options): read as made")
            let last = size - 5000
            try expected.write(backend, pieces: [(100, 300), (70_000, 65536 + 4096), (size / 4 + 512, 8192), (size / 2 - 100, 200), (last, 5000)])
            try expected.writeZeroes(backend, 0..<65536, unmap: true)
            try expected.writeZeroes(backend, (size / 4 + 4096)..<(size / 4 + 20_480), unmap: false)
            try expected.assertImageHoldsIt(backend, image: image, in: directory, options)
            XCTAssertEqual(backend.clearedAutoclearFeatures, 0, options)
        }
    }

    /// An image with persistent dirty bitmaps: writing it must first clear the autoclear bit
    /// that says they are consistent (this writer does not keep them), so QEMU drops them
    /// rather than trusting bitmaps that miss our writes. Their clusters leak, as QEMU says.
    func testWritingAnImageWithDirtyBitmapsMarksThemInconsistentFirst() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("bitmaps")
        let image = directory.appendingPathComponent("image.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", image, "4M"]).status, 0)
        let added = try QemuImg.run(["bitmap", "--add", image, "backup0"])
        XCTAssertEqual(added.status, 0, added.output)
        let header = { try Qcow2Header(bytes: try openImage(image).pread(count: Qcow2Header.bytesNeeded, offset: 0), fileSize: 1 << 30) }
        XCTAssertEqual(try header().autoclearFeatures, Qcow2Header.AutoclearFeature.bitmaps)

        let reader = try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil)
        XCTAssertEqual(reader.clearedAutoclearFeatures, 0, "a reader changes nothing")
        XCTAssertEqual(try header().autoclearFeatures, Qcow2Header.AutoclearFeature.bitmaps)

        var expected = ExpectedDisk(bytes: [UInt8](repeating: 0, count: 4 << 20))
        let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        XCTAssertEqual(backend.clearedAutoclearFeatures, Qcow2Header.AutoclearFeature.bitmaps)
        XCTAssertEqual(try header().autoclearFeatures, 0, "cleared on the image before any write")
        try expected.write(backend, at: 4096, count: 70_000, seed: 3)
        try backend.flush()
        let check = try QemuImg.run(["check", image])
        XCTAssertTrue(check.status == 0 || check.status == 3, "leaks at most:\n\(check.output)")
        XCTAssertFalse(check.output.contains("ERROR"), check.output)
        XCTAssertTrue(check.output.contains("bitmaps are now considered inconsistent"), check.output)
        XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == expected.bytes)
        XCTAssertEqual(try QemuImg.run(["check", "-r", "leaks", image]).status, 0)
        try QemuImg.assertCheckClean(image)
        let info = try QemuImg.run(["info", image])
        XCTAssertFalse(info.output.contains("backup0"), "QEMU dropped the stale bitmap:\n\(info.output)")
    }

    /// An image QEMU was killed in while it deferred refcount updates (lazy refcounts:
    /// `qemu-io ... -c "sigraise 9"`, as QEMU's own iotests make one) is dirty, and its
    /// refcounts miss clusters its tables use. Opened for writing, it gets them rebuilt
    /// first, as QEMU does at open: then `qemu-img check` is clean, the dirty bit is gone,
    /// it reads as qemu-io wrote it, and our writes keep it so. Plain, compressed and
    /// subcluster writes, and one with an internal snapshot whose clusters it shares.
    func testADirtyImageHasItsRefcountsRebuiltBeforeItIsWritten() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("dirty")
        let image = directory.appendingPathComponent("dirty.qcow2").path
        let size = 8 << 20
        // (options, qemu-io writes before a snapshot (none: no snapshot), qemu-io writes before the kill)
        let cases: [(String, [String], [String])] = [
            ("cluster_size=4096", [], ["write -P 0x5a 0 1M", "write -P 0x33 4M 72k", "write -P 0x11 7M 4k"]),
            ("cluster_size=65536", [], ["write -c -P 0x21 0 64k", "write -c -P 0x22 2M 128k", "write -P 0x23 3M 100k"]),
            ("cluster_size=65536,extended_l2=on", [], ["write -P 0x31 4k 8k", "write -P 0x32 1M 300k", "write -z 2M 64k"]),
            ("cluster_size=4096", ["write -P 0x41 0 2M", "write -P 0x42 5M 64k"], ["write -P 0x43 1M 2M", "write -P 0x44 6M 12k"]),
        ]
        var broken = 0  // cases whose refcounts qemu-img check found wrong before the repair
        for (options, beforeSnapshot, beforeKill) in cases {
            unlink(image)
            XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "lazy_refcounts=on," + options, image, "\(size)"]).status, 0)
            var expected = [UInt8](repeating: 0, count: size)
            func apply(_ commands: [String]) {
                for command in commands {
                    let words = command.split(separator: " ")
                    let pattern = words.firstIndex(of: "-P").map { UInt8(words[$0 + 1].dropFirst(2), radix: 16)! } ?? 0
                    func bytes(_ text: Substring) -> Int {
                        let units: [Character: Int] = ["k": 1 << 10, "M": 1 << 20]
                        return units[text.last!].map { Int(text.dropLast())! * $0 } ?? Int(text)!
                    }
                    let (offset, count) = (bytes(words[words.count - 2]), bytes(words[words.count - 1]))
                    expected.replaceSubrange(offset..<(offset + count), with: repeatElement(pattern, count: count))
                }
            }
            if !beforeSnapshot.isEmpty {
                let written = try QemuImg.run(beforeSnapshot.flatMap { ["-c", $0] } + [image], tool: "qemu-io")
                XCTAssertEqual(written.status, 0, written.output)
                apply(beforeSnapshot)
                XCTAssertEqual(try QemuImg.run(["snapshot", "-c", "before", image]).status, 0)
            }
            let snapshot = expected
            _ = try QemuImg.run(beforeKill.flatMap { ["-c", $0] } + ["-c", "sigraise 9", image], tool: "qemu-io")
            apply(beforeKill)
            let header = { try Qcow2Header(bytes: try openImage(image).pread(count: Qcow2Header.bytesNeeded, offset: 0), fileSize: 1 << 30) }
            XCTAssertTrue(try header().isDirty, "\(options): qemu-io died with refcounts deferred")
            if try QemuImg.run(["check", "-U", image]).output.contains("ERROR") { broken += 1 }

            let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
            XCTAssertTrue(backend.repairedRefcounts, options)
            XCTAssertFalse(try header().isDirty, "\(options): the dirty bit is cleared once the refcounts are right")
            try QemuImg.assertCheckClean(image)
            XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == expected, "\(options): as qemu-io wrote it")
            var disk = ExpectedDisk(bytes: expected)
            try disk.write(backend, pieces: [(0, 4096), (size / 2 + 512, 70_000), (size - 8192, 8192)])
            try disk.assertImageHoldsIt(backend, image: image, in: directory, options)
            if !beforeSnapshot.isEmpty {
                let out = directory.appendingPathComponent("snapshot.raw").path
                XCTAssertEqual(try QemuImg.run(["convert", "-l", "snapshot.name=before", "-O", "raw", image, out]).status, 0)
                XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(snapshot), "\(options): the snapshot is as it was")
                unlink(out)
            }
        }
        // qemu-io's compressed writes flush their refcounts: that image is dirty but right.
        XCTAssertGreaterThanOrEqual(broken, 3, "the dirty images' refcounts were wrong before the repair")
    }

    /// A dirty image damaged past what a killed QEMU leaves: its first refcount block gone
    /// from the refcount table (every refcount reads 0), and a cluster past the end that it
    /// counts in a second block (a leak). The repair gives it a new first block, which counts
    /// itself, frees the leak, and the image checks clean and reads as it was made.
    func testADirtyImageMissingARefcountBlockGetsOneAndLosesItsLeaks() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("dirty-block")
        let raw = directory.appendingPathComponent("source.raw").path
        let image = directory.appendingPathComponent("damaged.qcow2").path
        let source = sourceDisk(3 << 20)
        try writeFile(source, raw)
        XCTAssertEqual(try QemuImg.run(["convert", "-O", "qcow2", "-o", "cluster_size=4096,refcount_bits=64,lazy_refcounts=on", raw, image]).status, 0)
        let file = try openImage(image, writable: true)
        func u64(_ at: UInt64) throws -> UInt64 { try file.pread(count: 8, offset: Int64(at)).reduce(0) { $0 << 8 | UInt64($1) } }
        let tableOffset = try u64(48)
        let firstBlock = try u64(tableOffset)
        XCTAssertNotEqual(firstBlock, 0)
        // The leak: cluster 2000, past the image's end (the file made sparse), counted 1 by a
        // refcount block at cluster 2001 that the table lists as its entry 3 (clusters 1536-2047).
        XCTAssertLessThan(lseek(file.rawValue, 0, SEEK_END), 2000 * 4096, "the image ends below the leak")
        var block = [UInt8](repeating: 0, count: 4096)
        block.replaceSubrange((2000 % 512 * 8)..<(2000 % 512 * 8 + 8), with: Qcow2Backend.encode64(1))
        block.replaceSubrange((2001 % 512 * 8)..<(2001 % 512 * 8 + 8), with: Qcow2Backend.encode64(1))
        try file.pwriteAll([UInt8](repeating: 0xEE, count: 4096), offset: 2000 * 4096)
        try file.pwriteAll(block, offset: 2001 * 4096)
        try file.pwriteAll(Qcow2Backend.encode64(2001 * 4096), offset: tableOffset + 3 * 8)
        try file.pwriteAll(Qcow2Backend.encode64(0), offset: tableOffset)  // block 0 gone
        try file.pwriteAll(Qcow2Backend.encode64(Qcow2Header.IncompatibleFeature.dirty), offset: Qcow2Header.incompatibleOffset)
        let before = try QemuImg.run(["check", "-U", image])
        XCTAssertTrue(before.output.contains("ERROR"), before.output)

        let backend = try Qcow2Backend(file: file, readOnly: false, backing: nil)
        XCTAssertTrue(backend.repairedRefcounts)
        XCTAssertEqual(try backend.refcount(ofHostCluster: 2000 * 4096), 0, "the leak is freed")
        XCTAssertEqual(try backend.refcount(ofHostCluster: 0), 1, "the header counted again, in a new block")
        XCTAssertGreaterThanOrEqual(try u64(tableOffset), 2002 * 4096, "the new block 0 is past the old end")
        try QemuImg.assertCheckClean(image)
        var expected = ExpectedDisk(bytes: source)
        try expected.write(backend, pieces: [(8192, 20_000), (2 << 20, 4096)])
        try expected.assertImageHoldsIt(backend, image: image, in: directory, "after the repair")
    }

    /// Two processes on one image, as in a live migration: the receiver opens it while the
    /// sender still allocates. Taken over after the sender stopped, the receiver reads what
    /// the sender wrote and allocates past it; without `takeOver` it read zeros there and
    /// allocated over the sender's clusters. A shape change is refused.
    func testTakingAnImageOverSeesWhatAnotherWriterAllocated() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("take-over")
        let image = directory.appendingPathComponent("shared.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=4096", image, "16M"]).status, 0)
        var expected = ExpectedDisk(bytes: [UInt8](repeating: 0, count: 16 << 20))
        let sender = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        try expected.write(sender, at: 0, count: 8192, seed: 1)
        let receiver = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        XCTAssertTrue(try receiver.readBytes(at: 0, count: 8192) == Array(expected.bytes[0..<8192]))
        // The sender goes on: new clusters, a new L2 table (one maps 2 MiB here), and past the
        // first refcount block's reach (4 KiB clusters, 16-bit refcounts: 8 MiB of file).
        try expected.write(sender, pieces: [(4 << 20, 5000), (9 << 20, 3 << 20), (100_000, 70_000)])
        try sender.flush()
        try receiver.takeOver()
        XCTAssertTrue(try receiver.readBytes(at: 0, count: expected.bytes.count) == expected.bytes, "the receiver sees every write")
        try expected.write(receiver, pieces: [(1 << 20, 9000), (13 << 20, 1 << 20)])
        try expected.assertImageHoldsIt(receiver, image: image, in: directory, "taken over")

        let resized = try QemuImg.run(["resize", image, "32M"])
        XCTAssertEqual(resized.status, 0, resized.output)
        XCTAssertThrowsError(try receiver.takeOver()) { error in
            XCTAssertTrue("\(error)".contains("changed its shape"), "\(error)")
        }
    }

    func testWritesAllocatePassQemuImgCheckAndConvertBackToWhatWasWritten() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("write")
        for clusterSize in [4096, 65536] {
            let image = directory.appendingPathComponent("fresh-\(clusterSize).qcow2").path
            XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=\(clusterSize)", image, "8M"]).status, 0)
            let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
            var expected = [UInt8](repeating: 0, count: 8 << 20)
            var seed: UInt64 = 1
            // Whole clusters, partial ones, runs across clusters, and rewrites in place.
            for (offset, length) in [(0, 4096), (512, 1024), (65536 - 512, 8192), (1 << 20, 3 * 65536 + 1536), (512, 1024), (5 << 20, 512)] {
                let bytes = patternBytes(count: length, seed: seed)
                seed += 1
                try backend.writeBytes(bytes, at: UInt64(offset))
                expected.replaceSubrange(offset..<(offset + length), with: bytes)
            }
            try backend.writeZeroes(offset: UInt64(1 << 20), length: UInt64(clusterSize), unmap: false)
            expected.replaceSubrange((1 << 20)..<((1 << 20) + clusterSize), with: repeatElement(0, count: clusterSize))
            try backend.writeZeroes(offset: 1024, length: 512, unmap: true)
            expected.replaceSubrange(1024..<1536, with: repeatElement(0, count: 512))
            try backend.flush()
            XCTAssertTrue(try backend.readBytes(at: 0, count: expected.count) == expected, "read back through the backend, \(clusterSize)")
            try QemuImg.assertCheckClean(image)
            XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == expected, "qemu-img sees what was written, \(clusterSize)")
        }
    }

    /// A read remembers the L2 table it went through; a write that allocates a cluster of
    /// that table must not leave the next read on the table as it was (it read zeros).
    func testAReadAfterAnAllocatingWriteInTheSameL2TableSeesTheWrite() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("recent-l2")
        let image = directory.appendingPathComponent("fresh.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=65536", image, "8M"]).status, 0)
        let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        let first = patternBytes(count: 4096, seed: 21), second = patternBytes(count: 4096, seed: 22)
        try backend.writeBytes(first, at: 0)  // allocates the L2 table and cluster 0
        XCTAssertEqual(try backend.readBytes(at: 65536, count: 4096), [UInt8](repeating: 0, count: 4096), "cluster 1, unallocated")
        try backend.writeBytes(second, at: 65536)  // allocates cluster 1 in the same table
        XCTAssertEqual(try backend.readBytes(at: 65536, count: 4096), second, "cluster 1 after its write")
        XCTAssertEqual(try backend.readBytes(at: 0, count: 4096), first)
        try QemuImg.assertCheckClean(image)
    }

    func testOverwritingCompressedClustersKeepsTheImageConsistent() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("compressed")
        let raw = directory.appendingPathComponent("source.raw").path
        let source = sourceDisk(1 << 20)
        try writeFile(source, raw)
        for type in ["zlib", "zstd"] {
            var expected = source
            let image = directory.appendingPathComponent("compressed-\(type).qcow2").path
            let made = try QemuImg.run(["convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096,compression_type=\(type)", raw, image])
            XCTAssertEqual(made.status, 0, made.output)
            let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
            for (offset, length) in [(100, 300), (8192, 4096), (40_000, 10_000)] {
                let bytes = patternBytes(count: length, seed: UInt64(offset))
                try backend.writeBytes(bytes, at: UInt64(offset))
                expected.replaceSubrange(offset..<(offset + length), with: bytes)
            }
            try backend.flush()
            try QemuImg.assertCheckClean(image)
            XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == expected, type)
        }
    }

    /// A zero cluster may still hold its host cluster (qemu-io's `write -z` without unmap,
    /// QEMU's preallocated zero clusters). Writing over one (partly, or whole) or discarding
    /// it must free that host cluster: it leaked before, which `qemu-img check` reports.
    func testOverwritingZeroClustersThatHoldAHostClusterLeaksNothing() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("zero-alloc")
        let image = directory.appendingPathComponent("zero-alloc.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", image, "1M"]).status, 0)
        let io = try QemuImg.run(["-c", "write -P 0x55 0 64k", "-c", "write -z 12k 4k", "-c", "write -z 32k 4k",
                                  "-c", "write -z 48k 4k", image], tool: "qemu-io")
        XCTAssertEqual(io.status, 0, io.output)
        var expected = [UInt8](repeating: 0x55, count: 64 << 10) + [UInt8](repeating: 0, count: (1 << 20) - (64 << 10))
        for cluster in [3, 8, 12] { expected.replaceSubrange((cluster * 4096)..<((cluster + 1) * 4096), with: repeatElement(0, count: 4096)) }
        let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        for cluster: UInt64 in [3, 8, 12] {
            guard case .zero(let held?) = try backend.mapping(ofGuestCluster: cluster) else {
                return XCTFail("cluster \(cluster) is a zero cluster holding a host cluster")
            }
            XCTAssertGreaterThan(held, 0)
        }
        for (offset, length) in [(3 * 4096 + 100, 300), (8 * 4096, 4096)] {
            let bytes = patternBytes(count: length, seed: UInt64(offset))
            try backend.writeBytes(bytes, at: UInt64(offset))
            expected.replaceSubrange(offset..<(offset + length), with: bytes)
        }
        try backend.discard(offset: 12 * 4096, length: 4096)
        try backend.flush()
        try QemuImg.assertCheckClean(image)
        XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == expected)
    }

    func testAChainOfThreeReadsThroughAndOnlyTheTopChanges() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("chain")
        let base = directory.appendingPathComponent("base.raw").path
        var expected = sourceDisk(2 << 20)
        try writeFile(expected, base)
        let baseHash = try QemuImg.rawContents(of: base, in: directory)
        let middle = directory.appendingPathComponent("middle.qcow2").path
        let top = directory.appendingPathComponent("top.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-b", base, "-F", "raw", middle]).status, 0)
        // The middle layer gets data of its own, written by qemu-io (qemu-utils) where it is there.
        if let qemuIO = ["/usr/bin/qemu-io"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            let process = try Process.run(URL(fileURLWithPath: qemuIO), arguments: ["-f", "qcow2", "-c", "write -P 0x5a 65536 65536", middle])
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0)
            expected.replaceSubrange(65536..<131_072, with: repeatElement(0x5A, count: 65536))
        }
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-b", middle, "-F", "qcow2", top]).status, 0)

        let baseBackend = try RawFileBackend(file: try openImage(base), readOnly: true)
        let middleBackend = try Qcow2Backend(file: try openImage(middle), readOnly: true, backing: baseBackend)
        let topBackend = try Qcow2Backend(file: try openImage(top, writable: true), readOnly: false, backing: middleBackend)
        XCTAssertEqual(middleBackend.header.backingFile, base)
        XCTAssertEqual(topBackend.header.backingFile, middle)
        XCTAssertEqual(topBackend.header.backingFormat, "qcow2")
        XCTAssertTrue(try topBackend.readBytes(at: 0, count: expected.count) == expected, "unallocated clusters read through two layers")
        let written = patternBytes(count: 5000, seed: 5)
        try topBackend.writeBytes(written, at: 70_000)  // a partial cluster: the rest comes from below
        expected.replaceSubrange(70_000..<75_000, with: written)
        try topBackend.flush()
        XCTAssertTrue(try topBackend.readBytes(at: 0, count: expected.count) == expected)
        try QemuImg.assertCheckClean(top)
        XCTAssertTrue(try QemuImg.rawContents(of: top, in: directory) == expected, "qemu-img reads the chain as we do")
        XCTAssertTrue(try QemuImg.rawContents(of: base, in: directory) == baseHash, "the base is unchanged")
    }

    func testHostileHeadersAreRefusedWithTheirReason() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("hostile")
        let image = directory.appendingPathComponent("good.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-u", "-b", "base.img", "-F", "raw", image, "1M"]).status, 0)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let fileSize = UInt64(good.count)
        let header = try Qcow2Header(bytes: good, fileSize: fileSize)
        XCTAssertEqual(header.backingFile, "base.img")
        XCTAssertEqual(header.backingFormat, "raw")
        XCTAssertEqual(header.clusterSize, 65536)
        func mutated(_ offset: Int, _ bytes: [UInt8]) -> [UInt8] {
            var copy = good
            copy.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            return copy
        }
        let cases: [([UInt8], String)] = [
            (mutated(0, [0, 0, 0, 0]), "not a qcow2 image"),
            (mutated(4, [0, 0, 0, 4]), "version 4"),
            (mutated(20, [0, 0, 0, 30]), "clusters of 2^30 bytes"),
            (mutated(20, [0, 0, 0, 9]), "clusters of 2^9 bytes"),
            (mutated(32, [0, 0, 0, 1]), "encryption"),
            (mutated(40, [0, 0, 0, 0, 0x7F, 0, 0, 0]), "the L1 table"),
            (mutated(48, [0, 0, 0, 0, 0, 0, 0x10, 1]), "the refcount table at"),
            (mutated(36, [0, 0, 0, 0]), "an L1 table of 0 entries"),
            (mutated(24, [0, 1, 0, 0, 0, 0, 0, 0]), "a virtual size of"),
            (mutated(72, [0x80, 0, 0, 0, 0, 0, 0, 0]), "incompatible features"),
            (mutated(72, [0, 0, 0, 0, 0, 0, 0, 2]), "marked corrupt"),
            (mutated(16, [0, 0, 0x10, 0]), "a backing file name of"),
            (mutated(96, [0, 0, 0, 7]), "refcount order 7"),
            (mutated(104, [2]).enumerated().map { $0.offset == 79 ? $0.element | 8 : $0.element }, "compression type 2"),
            (Array(good.prefix(60)), "truncated"),
        ]
        for (index, (bytes, reason)) in cases.enumerated() {
            XCTAssertThrowsError(try Qcow2Header(bytes: bytes, fileSize: fileSize), "case \(index)") { error in
                XCTAssertTrue("\(error)".contains(reason), "case \(index): \(error) should say \(reason)")
            }
        }
        XCTAssertThrowsError(try Qcow2Header(bytes: good, fileSize: 65536), "tables past the end of a truncated file")
    }

    /// Internal snapshots (`qemu-img snapshot -c`): writes copy what a snapshot shares (its
    /// data clusters and the L2 table), so each snapshot reads as it was taken, the active
    /// image as written, and `qemu-img check` stays clean. Before, such images were refused
    /// for writing.
    func testWritesLeaveInternalSnapshotsAsTheyWere() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("snapshots")
        let image = directory.appendingPathComponent("snap.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", image, "2M"]).status, 0)
        XCTAssertEqual(try QemuImg.run(["-f", "qcow2", "-c", "write -P 0x61 0 1048576", image], tool: "qemu-io").status, 0)
        XCTAssertEqual(try QemuImg.run(["snapshot", "-c", "one", image]).status, 0)
        func snapshot(_ name: String) throws -> [UInt8] {
            let out = directory.appendingPathComponent("\(name).raw").path
            let converted = try QemuImg.run(["convert", "-O", "raw", "-l", "snapshot.name=\(name)", image, out])
            XCTAssertEqual(converted.status, 0, converted.output)
            defer { unlink(out) }
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        let one = try snapshot("one")
        var expected = ExpectedDisk(bytes: one)
        var backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        try expected.write(backend, pieces: [(100, 300),            // part of a shared cluster
                                             (3 * 65536, 65536),    // a whole shared cluster
                                             (3 * 65536 + 10, 20),  // the copy, now the active image's own
                                             (1_500_000, 5000)])    // never written before the snapshot
        try expected.writeZeroes(backend, (5 * 65536)..<(6 * 65536), unmap: true)
        try expected.discard(backend, (6 * 65536)..<(7 * 65536))
        try expected.assertImageHoldsIt(backend, image: image, in: directory, "the active image")
        XCTAssertTrue(try snapshot("one") == one, "snapshot one as it was taken")

        // A second snapshot over the first, then more writes: both stay as they were.
        XCTAssertEqual(try QemuImg.run(["snapshot", "-c", "two", image]).status, 0)
        let two = expected.bytes
        backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        try expected.write(backend, at: 0, count: 200_000, seed: 1)
        try expected.write(backend, at: 1_500_100, count: 100, seed: 2)
        try expected.assertImageHoldsIt(backend, image: image, in: directory, "the active image after snapshot two")
        XCTAssertTrue(try snapshot("one") == one)
        XCTAssertTrue(try snapshot("two") == two)
    }

    /// A snapshot table that lies (its L1 table past the end of the file) keeps the image
    /// from being opened for writing, with the reason; reading it needs no snapshot.
    func testAHostileSnapshotTableIsRefusedForWriting() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("snapshot-lie")
        let image = directory.appendingPathComponent("lie.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", image, "1M"]).status, 0)
        XCTAssertEqual(try QemuImg.run(["snapshot", "-c", "one", image]).status, 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let header = try Qcow2Header(bytes: bytes, fileSize: UInt64(bytes.count))
        XCTAssertEqual(header.snapshotCount, 1)
        let entry = Int(header.snapshotsOffset)
        let good = bytes
        // Its L1 table a terabyte out; near 2^64, where adding its size would overflow; the
        // table itself there.
        for (offset, value, reason) in [(entry, UInt64(1) << 40, "snapshot 0's L1 table"), (entry, UInt64.max & ~0xFFFF, "snapshot 0's L1 table"),
                                        (64, UInt64.max & ~0xFFFF, "the snapshot table at")] {
            bytes = good
            bytes.replaceSubrange((entry + 8)..<(entry + 12), with: Qcow2Backend.encode32(1 << 16))  // 512 KiB of L1 table
            bytes.replaceSubrange(offset..<(offset + 8), with: Qcow2Backend.encode64(value))
            try writeFile(bytes, image)
            XCTAssertThrowsError(try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)) {
                XCTAssertTrue("\($0)".contains(reason), "\($0)")
            }
            XCTAssertNoThrow(try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil), "read-only is fine")
        }
    }

    func testACompressedClusterOutsideTheFileFailsItsReadOnly() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("compressed-lie")
        let raw = directory.appendingPathComponent("text.raw").path
        try writeFile(Array(String(repeating: "compressible text ", count: 8000).utf8.prefix(65536)), raw)
        let image = directory.appendingPathComponent("lie.qcow2").path
        XCTAssertEqual(try QemuImg.run(["convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", raw, image]).status, 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let header = try Qcow2Header(bytes: bytes, fileSize: UInt64(bytes.count))
        func u64(_ offset: Int) -> UInt64 { bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let l2 = Int(u64(Int(header.l1TableOffset)) & Qcow2Backend.offsetMask)
        let entry = u64(l2)
        XCTAssertNotEqual(entry & Qcow2Backend.compressedFlag, 0, "qemu-img compressed the first cluster")
        // The format bounds a compressed cluster to two clusters of data; where it starts
        // is the image's word, and here it is a terabyte past the end of the file.
        let offsetBits = 62 - (UInt64(header.clusterBits) - 8)
        let lie = (entry & ~((1 << offsetBits) - 1)) | 1 << 40
        bytes.replaceSubrange(l2..<(l2 + 8), with: Qcow2Backend.encode64(lie))
        try writeFile(bytes, image)
        let backend = try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil)
        XCTAssertThrowsError(try backend.readBytes(at: 0, count: 4096)) { XCTAssertTrue("\($0)".contains("a compressed cluster of"), "\($0)") }
        XCTAssertEqual(try backend.readBytes(at: 4096, count: 4096), Array(String(repeating: "compressible text ", count: 8000).utf8.dropFirst(4096).prefix(4096)),
                       "the next cluster still reads")
    }

    func testTheRefcountTableGrowsWhenTheFileOutgrowsIt() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("grow")
        let image = directory.appendingPathComponent("grow.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=4096", image, "4M"]).status, 0)
        // With 4 KiB clusters qemu-img's one-cluster table covers 4 GiB of file: start
        // allocating past that (the file is sparse: nothing is written in between).
        let before = try Qcow2Header(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: image))), fileSize: 1 << 40)
        XCTAssertEqual(before.refcountTableClusters, 1)
        XCTAssertEqual(truncate(image, (4 << 30) + 8192), 0)
        let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
        var expected = [UInt8](repeating: 0, count: 4 << 20)
        for (offset, length) in [(0, 4096), (1 << 20, 3 * 4096 + 512), (3 << 20, 65536)] {
            let bytes = patternBytes(count: length, seed: UInt64(offset) + 3)
            try backend.writeBytes(bytes, at: UInt64(offset))
            expected.replaceSubrange(offset..<(offset + length), with: bytes)
        }
        try backend.flush()
        XCTAssertTrue(try backend.readBytes(at: 0, count: expected.count) == expected)
        let after = try Qcow2Header(bytes: try openImage(image).pread(count: 65536, offset: 0), fileSize: 1 << 40)
        XCTAssertGreaterThan(after.refcountTableClusters, 1, "the table grew")
        XCTAssertGreaterThan(after.refcountTableOffset, UInt64(4) << 30, "and moved to the end of the file")
        try QemuImg.assertCheckClean(image)
        XCTAssertTrue(try QemuImg.rawContents(of: image, in: directory) == expected)
    }

    /// qemu-img's `refcount_bits` 1 to 64: a backend writes through each width (allocating
    /// refcount blocks, then growing and moving the refcount table past what qemu-img's
    /// one-cluster table covers), `qemu-img check` finds nothing wrong, and the image
    /// converts back to what was written. Before, every width but 16 was refused.
    func testEveryRefcountWidthIsWrittenAsQemuImgReadsIt() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("refcount-width")
        for bits in [1, 2, 4, 8, 16, 32, 64] {
            let image = directory.appendingPathComponent("w\(bits).qcow2").path
            unlink(image)
            let made = try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=4096,refcount_bits=\(bits)", image, "4M"])
            XCTAssertEqual(made.status, 0, made.output)
            let header = try Qcow2Header(bytes: try openImage(image).pread(count: 4096, offset: 0), fileSize: 1 << 40)
            XCTAssertEqual(1 << Int(header.refcountOrder), bits)
            // Clusters of 4 KiB: one table cluster lists 512 blocks of 32768 / bits refcounts.
            let coveredBytes = 512 * (32768 / bits) * 4096
            let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
            var expected = ExpectedDisk(bytes: [UInt8](repeating: 0, count: 4 << 20))
            try expected.write(backend, at: 0, count: 4096, seed: UInt64(bits))
            try expected.write(backend, at: 1 << 20, count: 3 * 4096 + 512, seed: UInt64(bits) + 1)
            // The rest goes past the table's reach (the file is sparse in between).
            XCTAssertEqual(truncate(image, off_t(coveredBytes + 8192)), 0)
            let grown = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil)
            try expected.write(grown, at: 3 << 20, count: 65536, seed: 99)
            try expected.assertImageHoldsIt(grown, image: image, in: directory, "\(bits)-bit refcounts")
            let after = try Qcow2Header(bytes: try openImage(image).pread(count: 4096, offset: 0), fileSize: 1 << 40)
            XCTAssertGreaterThan(after.refcountTableOffset, UInt64(coveredBytes), "\(bits)-bit: the table moved past its old reach")
        }
    }

    /// Extended L2 entries (qemu-img's `extended_l2=on`): in one cluster, subclusters that
    /// qemu-io wrote, made zero, or left to the base image. They read as qemu-img reads
    /// them; writes over each kind, write-zeroes and a discard keep `qemu-img check` clean
    /// and convert back to what was written. Before, such images were refused.
    func testExtendedL2SubclustersReadAndWriteAsQemuImgHasThem() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("extended-l2")
        let base = directory.appendingPathComponent("base.raw").path
        try writeFile(patternBytes(count: 1 << 20, seed: 21), base)
        let image = directory.appendingPathComponent("top.qcow2").path
        let made = try QemuImg.run(["create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=65536", "-b", "base.raw", "-F", "raw", image])
        XCTAssertEqual(made.status, 0, made.output)
        // Subclusters are 2 KiB. Cluster 0: two written; 1: one zero; 2: all written; 3: all
        // zero; 4: all written, then two zeroed; 5: one written, then one zeroed.
        let io = try QemuImg.run(["-f", "qcow2", "-c", "write -P 0xab 4096 4096", "-c", "write -z 65536 2048", "-c", "write -P 0xcd 131072 65536",
                                  "-c", "write -z 196608 65536", "-c", "write -P 0x11 262144 65536", "-c", "write -z 266240 4096",
                                  "-c", "write -P 0x22 327680 2048", "-c", "write -z 331776 2048", image], tool: "qemu-io")
        XCTAssertEqual(io.status, 0, io.output)
        var expected = ExpectedDisk(bytes: try QemuImg.rawContents(of: image, in: directory))
        XCTAssertEqual(expected.bytes[4096], 0xAB)
        XCTAssertEqual(expected.bytes[65536], 0)

        let baseBackend = try RawFileBackend(file: try openImage(base), readOnly: true)
        let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: baseBackend)
        XCTAssertTrue(backend.header.extendedL2)
        XCTAssertEqual(backend.header.l2Entries, 65536 / 16)
        XCTAssertTrue(try backend.readBytes(at: 0, count: expected.bytes.count) == expected.bytes, "every kind of subcluster reads as qemu-img reads it")
        // Odd ranges across subcluster and cluster boundaries.
        for (offset, count) in [(3000, 10_000), (63_000, 5000), (264_000, 70_000)] {
            XCTAssertTrue(try backend.readBytes(at: UInt64(offset), count: count) == Array(expected.bytes[offset..<(offset + count)]), "\(offset)")
        }
        try expected.write(backend, pieces: [(6000, 3000),      // into cluster 0, partly over its written subclusters
                                             (66_000, 1000),    // into cluster 1's zero subcluster
                                             (140_000, 4096),   // in place, cluster 2 is wholly allocated
                                             (200_000, 512),    // into the zero cluster 3
                                             (393_216, 65536),  // cluster 6, never written: a whole cluster
                                             (460_000, 100)])   // cluster 7, never written: the rest from the base
        try expected.writeZeroes(backend, 327_680..<393_216, unmap: true)   // cluster 5 whole
        try expected.writeZeroes(backend, 270_000..<273_000, unmap: false)  // part of cluster 4
        try expected.discard(backend, 524_288..<589_824)                    // cluster 8, the base's: now zeros
        try expected.assertImageHoldsIt(backend, image: image, in: directory, "subclusters")
    }

    /// An extended L2 entry that says a subcluster is both allocated and zero, or allocated
    /// without a host cluster, fails the reads of that cluster only.
    func testContradictorySubclusterBitmapsFailTheirClusterOnly() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("extended-l2-hostile")
        let image = directory.appendingPathComponent("hostile.qcow2").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=65536", image, "1M"]).status, 0)
        XCTAssertEqual(try QemuImg.run(["-f", "qcow2", "-c", "write -P 0x33 0 131072", image], tool: "qemu-io").status, 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let header = try Qcow2Header(bytes: bytes, fileSize: UInt64(bytes.count))
        func u64(_ offset: Int) -> UInt64 { bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let l2 = Int(u64(Int(header.l1TableOffset)) & Qcow2Backend.offsetMask)
        XCTAssertEqual(u64(l2 + 8), Qcow2Backend.allSubclustersAllocated, "qemu-io allocated cluster 0 whole")
        for (bitmap, entry, reason) in [(UInt64(0x1_0000_0001), u64(l2), "both allocated and zero"), (UInt64(1), UInt64(0), "allocated subclusters")] {
            bytes.replaceSubrange(l2..<(l2 + 16), with: Qcow2Backend.encode64(entry) + Qcow2Backend.encode64(bitmap))
            try writeFile(bytes, image)
            let backend = try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil)
            XCTAssertThrowsError(try backend.readBytes(at: 0, count: 4096)) { XCTAssertTrue("\($0)".contains(reason), "\($0)") }
            XCTAssertEqual(try backend.readBytes(at: 65536, count: 4096), [UInt8](repeating: 0x33, count: 4096), "the next cluster still reads")
        }
    }

    /// An external data file (`qemu-img create -o data_file=`), plain and `data_file_raw`:
    /// clusters qemu-io wrote read as qemu-img reads them; our writes (cluster 0, whose
    /// offset in the data file is 0, a partial and a whole new cluster, one in place),
    /// write-zeroes and discard keep `qemu-img check` clean and convert back; a raw data
    /// file is itself the disk. Without its data file the image is refused with the reason.
    func testAnExternalDataFileHoldsTheDataAsQemuImgHasIt() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("data-file")
        for raw in [false, true] {
            let image = directory.appendingPathComponent("image-\(raw).qcow2").path
            let dataPath = directory.appendingPathComponent("data-\(raw).bin").path
            unlink(image)
            unlink(dataPath)
            let options = "cluster_size=65536,data_file=\(dataPath)" + (raw ? ",data_file_raw=on" : "")
            let made = try QemuImg.run(["create", "-f", "qcow2", "-o", options, image, "1M"])
            XCTAssertEqual(made.status, 0, made.output)
            let io = try QemuImg.run(["-f", "qcow2", "-c", "write -P 0x44 65536 131072", "-c", "write -P 0x55 262144 65536", image], tool: "qemu-io")
            XCTAssertEqual(io.status, 0, io.output)
            var expected = ExpectedDisk(bytes: try QemuImg.rawContents(of: image, in: directory))
            XCTAssertEqual(expected.bytes[65536], 0x44)
            XCTAssertThrowsError(try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil)) {
                XCTAssertTrue("\($0)".contains("external data file"), "\($0)")
            }
            let backend = try Qcow2Backend(file: try openImage(image, writable: true), readOnly: false, backing: nil,
                                           dataFile: try openImage(dataPath, writable: true))
            XCTAssertEqual(backend.header.externalDataFile, dataPath)
            XCTAssertEqual(backend.header.externalDataIsRaw, raw)
            XCTAssertTrue(try backend.readBytes(at: 0, count: expected.bytes.count) == expected.bytes, "raw \(raw): reads as qemu-img reads")
            try expected.write(backend, pieces: [(100, 3000),          // cluster 0: at offset 0 of the data file
                                                 (70_000, 1000),       // in place, cluster 1
                                                 (400_000, 5000),      // cluster 6, new, partly
                                                 (8 * 65536, 65536)])  // cluster 8, new, whole
            try expected.writeZeroes(backend, (2 * 65536)..<(3 * 65536), unmap: true)
            try expected.discard(backend, (4 * 65536)..<(5 * 65536))
            try expected.assertImageHoldsIt(backend, image: image, in: directory, "data file, raw \(raw)")
            if raw {
                var file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dataPath)))
                file += [UInt8](repeating: 0, count: max(0, expected.bytes.count - file.count))
                XCTAssertTrue(Array(file.prefix(expected.bytes.count)) == expected.bytes, "the raw data file is the disk")
            }
        }
    }

    /// A data file the header names badly (empty, with a NUL, or not at all), or an L2 entry
    /// that puts a cluster anywhere but at its guest offset in the data file: each is refused
    /// with the reason, the entry for its cluster only.
    func testAHostileExternalDataFileIsRefusedWithTheReason() throws {
        _ = try QemuImg.require()
        let directory = try makeImageDirectory("data-file-hostile")
        let image = directory.appendingPathComponent("image.qcow2").path
        let dataPath = directory.appendingPathComponent("data.bin").path
        XCTAssertEqual(try QemuImg.run(["create", "-f", "qcow2", "-o", "cluster_size=65536,data_file=\(dataPath)", image, "1M"]).status, 0)
        XCTAssertEqual(try QemuImg.run(["-f", "qcow2", "-c", "write -P 0x66 0 196608", image], tool: "qemu-io").status, 0)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let header = try Qcow2Header(bytes: good, fileSize: UInt64(good.count))
        func u32(_ bytes: [UInt8], _ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        // The data file extension: type, length, then the name.
        var at = Int(header.headerLength)
        while u32(good, at) != Int(Qcow2Header.ExtensionType.externalDataFile) { at = (at + 8 + u32(good, at + 4) + 7) & ~7 }
        let nameAt = at + 8, nameLength = u32(good, at + 4)
        XCTAssertEqual(String(decoding: good[nameAt..<(nameAt + nameLength)], as: UTF8.self), dataPath)
        var withNUL = good
        withNUL[nameAt + 3] = 0
        var empty = good
        empty.replaceSubrange((at + 4)..<(at + 8), with: [0, 0, 0, 0])
        var unnamed = good
        unnamed.replaceSubrange(at..<(at + 4), with: [0x12, 0x34, 0x56, 0x78])  // an unknown extension instead
        for (bytes, reason) in [(withNUL, "not a name"), (empty, "not a name"), (unnamed, "does not name")] {
            XCTAssertThrowsError(try Qcow2Header(bytes: bytes, fileSize: UInt64(bytes.count))) {
                XCTAssertTrue("\($0)".contains(reason), "\($0) should say \(reason)")
            }
        }
        // Cluster 1's entry moved to cluster 2's place in the data file.
        var moved = good
        func u64(_ at: Int) -> UInt64 { moved[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let l2 = Int(u64(Int(header.l1TableOffset)) & Qcow2Backend.offsetMask)
        XCTAssertEqual(u64(l2 + 8) & Qcow2Backend.offsetMask, 65536, "cluster 1 at its guest offset")
        moved.replaceSubrange((l2 + 8)..<(l2 + 16), with: Qcow2Backend.encode64(Qcow2Backend.copiedFlag | 131_072))
        try writeFile(moved, image)
        let backend = try Qcow2Backend(file: try openImage(image), readOnly: true, backing: nil, dataFile: try openImage(dataPath))
        XCTAssertThrowsError(try backend.readBytes(at: 65536, count: 4096)) { XCTAssertTrue("\($0)".contains("not at its guest offset"), "\($0)") }
        XCTAssertEqual(try backend.readBytes(at: 0, count: 4096), [UInt8](repeating: 0x66, count: 4096), "cluster 0 still reads")
    }
}

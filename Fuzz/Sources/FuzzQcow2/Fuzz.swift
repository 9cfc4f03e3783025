// Fuzz target 6: qcow2 images (Sources/Shared/DiskFormats, Sources/virtio-blk/Device/
// Qcow2Backend.swift). The input is the image file itself, put in a memfd: the header
// parser must refuse or accept it without trapping, and an accepted image is read
// across its whole disk and then written in a few places (on a copy), every failure an
// error for that request. Seeds are small images made by qemu-img (v2, v3, compressed
// with deflate and with zstd, 1- and 64-bit refcounts, subclusters, an internal snapshot,
// an external data file, with a backing name, dirty with lazy refcounts: repaired).
import CLinux
import FuzzKit
import Glibc
@testable import BlockDevice
@testable import DiskFormats
@testable import LinuxSystem

@_cdecl("FuzzQcow2_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

private func imageFile(_ bytes: [UInt8]) -> FileDescriptor? {
    let raw = vmd_memfd_create("qcow2-fuzz", 0)
    guard raw >= 0 else { return nil }
    let file = FileDescriptor(adopting: raw)
    guard (try? file.pwriteAll(bytes, offset: 0)) != nil else { return nil }
    return file
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let header = try? Qcow2Header(bytes: Array(bytes.prefix(Qcow2Header.bytesNeeded)), fileSize: UInt64(size)) else { return 0 }
    fuzzCheck(header.clusterSize >= 4096 && header.clusterSize <= 2 << 20, "cluster size \(header.clusterSize) accepted")
    for writable in [false, true] {
        // An image that names an external data file gets an empty one (memfd).
        let dataFile = header.externalDataFile == nil ? nil : imageFile([])
        guard let file = imageFile(bytes),
              let backend = try? Qcow2Backend(file: file, readOnly: !writable, backing: nil, dataFile: dataFile) else { continue }
        // At most 64 reads of up to 128 KiB spread over the disk, then a few writes.
        let capacity = backend.capacityBytes
        var buffer = [UInt8](repeating: 0, count: 128 << 10)
        let step = max(capacity / 64, 512) & ~511
        var offset: UInt64 = 0
        while offset < capacity {
            let count = Int(min(UInt64(buffer.count), capacity - offset))
            buffer.withUnsafeMutableBytes { raw in
                var vectors = [iovec(iov_base: raw.baseAddress, iov_len: count)]
                _ = try? backend.read(into: &vectors, at: offset)
            }
            offset += step
        }
        if writable, capacity >= 8192 {
            for target in [UInt64(0), capacity / 2 & ~511, capacity - 4096] {
                buffer.withUnsafeMutableBytes { raw in
                    var vectors = [iovec(iov_base: raw.baseAddress, iov_len: 4096)]
                    _ = try? backend.write(from: &vectors, at: target)
                }
            }
            _ = try? backend.writeZeroes(offset: 0, length: 8192, unmap: true)
            _ = try? backend.discard(offset: 0, length: 4096)
            // Taken over as it now is (a migration's receiver does this at activation), then read again.
            if (try? backend.takeOver()) != nil {
                buffer.withUnsafeMutableBytes { raw in
                    var vectors = [iovec(iov_base: raw.baseAddress, iov_len: 8192)]
                    _ = try? backend.read(into: &vectors, at: 0)
                }
            }
        }
    }
    return 0
}

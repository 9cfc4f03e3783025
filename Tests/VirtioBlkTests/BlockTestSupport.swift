import Glibc
import XCTest
@testable import GuestRAM
@testable import LinuxSystem
@testable import MemorySlots
@testable import VirtioCore

/// A raw image in a temporary file, unlinked at once: only the descriptor keeps it alive.
func makeTemporaryImage(size: Int, fill: UInt8? = nil) throws -> FileDescriptor {
    var template = Array("/tmp/virtio-blk-test-XXXXXX".utf8CString)
    let raw = try retryingInterrupts("mkstemp") { mkstemp(&template) }
    let file = FileDescriptor(adopting: raw)
    unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    try retryingInterrupts("ftruncate") { ftruncate(file.rawValue, off_t(size)) }
    if let fill {
        try file.pwriteAll([UInt8](repeating: fill, count: size), at: 0)
    }
    return file
}

extension FileDescriptor {
    func pwriteAll(_ bytes: [UInt8], at offset: Int) throws {
        try pwriteAll(bytes, offset: UInt64(offset))
    }

    var allocatedBlocks: Int {
        var info = stat()
        XCTAssertEqual(fstat(rawValue, &info), 0)
        return Int(info.st_blocks)
    }
}

/// 1 MiB of guest RAM at guest-physical 0.
func makeMemory(size: UInt64 = 1 << 20) throws -> GuestMemory {
    try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: size)])
}

/// The 16-byte request header (virtio 1.2 §5.2.6), little-endian.
func requestHeader(type: UInt32, sector: UInt64 = 0) -> [UInt8] {
    withUnsafeBytes(of: type.littleEndian, Array.init) + [0, 0, 0, 0]
        + withUnsafeBytes(of: sector.littleEndian, Array.init)
}

/// One discard/write-zeroes segment (virtio 1.2 §5.2.6), little-endian.
func segment(sector: UInt64, count: UInt32, flags: UInt32 = 0) -> [UInt8] {
    withUnsafeBytes(of: sector.littleEndian, Array.init) + withUnsafeBytes(of: count.littleEndian, Array.init)
        + withUnsafeBytes(of: flags.littleEndian, Array.init)
}

func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ ($0 >> 8)) }
}

/// Lays buffers out in guest memory one after another from a base address, with a gap
/// between them so a bug that runs past a buffer is caught by the sentinel bytes.
struct ChainBuilder {
    let memory: GuestMemory
    var next: UInt64 = 0x1000
    var readable: [DescriptorBuffer] = []
    var writable: [DescriptorBuffer] = []
    var head: UInt16 = 7
    static let sentinel: UInt8 = 0xEE

    init(memory: GuestMemory) { self.memory = memory }

    private mutating func place(_ length: Int) throws -> DescriptorBuffer {
        let buffer = DescriptorBuffer(address: GuestAddress(next), length: UInt32(length))
        try memory.fill(Self.sentinel, at: GuestAddress(next), count: UInt64(length) + 64)
        next += UInt64(length) + 64
        return buffer
    }

    /// A device-readable buffer holding `bytes`.
    @discardableResult
    mutating func readable(_ bytes: [UInt8]) throws -> DescriptorBuffer {
        let buffer = try place(bytes.count)
        try memory.writeBytes(bytes, at: buffer.address)
        readable.append(buffer)
        return buffer
    }

    /// A device-writable buffer of `length` bytes, filled with the sentinel.
    @discardableResult
    mutating func writable(_ length: Int) throws -> DescriptorBuffer {
        let buffer = try place(length)
        writable.append(buffer)
        return buffer
    }

    var chain: DescriptorChain { DescriptorChain(head: head, readable: readable, writable: writable) }

    /// The bytes of the device-writable buffers, in order.
    func writableBytes() throws -> [UInt8] {
        try writable.flatMap { try memory.readBytes(at: $0.address, count: Int($0.length)) }
    }

    /// The status byte: the last writable byte.
    func status() throws -> UInt8 {
        let last = try XCTUnwrap(writable.last)
        return try memory.read(UInt8.self, at: GuestAddress(last.address.value + UInt64(last.length) - 1))
    }
}

extension ChainBuilder {
    /// A read of `count` bytes at `sector` (header, one data buffer, status) laid out from
    /// `address`; with `alignedData` the data buffer starts at the next 4 KiB, as O_DIRECT
    /// takes it.
    static func read(_ memory: GuestMemory, sector: UInt64, count: Int, at address: UInt64 = 0x1000,
                     alignedData: Bool = false) throws -> ChainBuilder {
        var read = ChainBuilder(memory: memory)
        read.next = address
        try read.readable(requestHeader(type: 0, sector: sector))
        if alignedData { read.next = address + 0x1000 }
        try read.writable(count)
        try read.writable(1)
        return read
    }

    /// A FLUSH (header, status) laid out from `address`.
    static func flush(_ memory: GuestMemory, at address: UInt64) throws -> ChainBuilder {
        var flush = ChainBuilder(memory: memory)
        flush.next = address
        try flush.readable(requestHeader(type: 4))
        try flush.writable(1)
        return flush
    }
}

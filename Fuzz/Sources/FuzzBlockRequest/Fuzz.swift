// Fuzz target 2: the virtio-blk request parser, `BlockRequest.parse`
// (Sources/virtio-blk/Device/BlockRequest.swift, in the BlockDevice library).
//
// Input: the device limits (capacity, read-only, discard / write-zeroes limits),
// then a descriptor chain (buffers with input-chosen addresses and lengths, in
// RAM, in the hole, read-only, overflowing), then the bytes the guest put in
// memory. With bit 0 of the first byte the chain is instead written into a
// queue and taken with `SplitVirtqueue.popAvailable`, so only chains the
// walker accepts reach the parser, as in the device.
import FuzzKit
@testable import BlockDevice
@testable import GuestRAM
@testable import MemorySlots
@testable import VirtioCore
@testable import VirtioTestSupport

@_cdecl("FuzzBlockRequest_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

/// The queue the walker mode uses: 64 entries at the start of slot 1.
private let queueBase: UInt64 = 0x2_0000
private let queueSize: UInt16 = 64

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    FuzzGuest.wipe()
    let memory = FuzzGuest.memory

    let mode = input.byte()
    let limits = readLimits(&input)

    // The chain: up to 16 buffers.
    let count = Int(input.byte() % 17)
    var buffers: [(address: UInt64, length: UInt32, writable: Bool)] = []
    for _ in 0..<count {
        let address = FuzzGuest.address(input.integer())
        let lengthByte = input.byte()
        let length: UInt32
        switch lengthByte & 3 {
        case 0: length = UInt32(lengthByte >> 2)               // tiny: split headers and segments
        case 1: length = 512 * UInt32(lengthByte >> 2)         // sector multiples
        case 2: length = UInt32(input.integer(UInt16.self))
        default: length = input.integer()
        }
        buffers.append((address, length, input.bool()))
    }
    // Guest memory contents: (address, bytes) records until the input ends.
    while !input.isEmpty {
        let address = FuzzGuest.address(input.integer())
        FuzzGuest.poke(input.bytes(Int(input.byte())), at: address)
    }

    let chain: DescriptorChain
    if mode & 1 == 0 {
        chain = DescriptorChain(
            head: 0,
            readable: buffers.filter { !$0.writable }.map { DescriptorBuffer(address: GuestAddress($0.address), length: $0.length) },
            writable: buffers.filter(\.writable).map { DescriptorBuffer(address: GuestAddress($0.address), length: $0.length) })
    } else {
        guard let walked = walk(buffers, memory: memory) else { return 0 }
        chain = walked
    }

    let request: BlockRequest
    do {
        request = try BlockRequest.parse(chain, memory: memory, limits: limits)
    } catch {
        _ = error.status
        _ = error.description
        return 0
    }
    check(request, chain: chain, limits: limits)
    return 0
}

private func readLimits(_ input: inout FuzzInput) -> BlockRequestLimits {
    let capacityByte = input.byte()
    let capacity: UInt64
    switch capacityByte & 3 {
    case 0: capacity = UInt64(capacityByte >> 2)
    case 1: capacity = 1 << 21                     // 1 GiB
    case 2: capacity = input.integer()
    default: capacity = .max
    }
    let flags = input.byte()
    func segmentLimits(_ present: Bool, _ input: inout FuzzInput) -> BlockRequestLimits.SegmentLimits? {
        guard present else { return nil }
        // max_*_seg is what the device offers; keep it to what a device would offer.
        return .init(maxSectors: input.integer(), maxSegments: UInt32(input.integer(UInt16.self)))
    }
    return BlockRequestLimits(
        capacitySectors: capacity, readOnly: flags & 1 != 0,
        discard: segmentLimits(flags & 2 != 0, &input), writeZeroes: segmentLimits(flags & 4 != 0, &input))
}

/// Puts the buffers in a queue as one chain (readable first as the driver must,
/// so a guest that breaks the order is also tried) and pops it.
private func walk(_ buffers: [(address: UInt64, length: UInt32, writable: Bool)], memory: GuestMemory) -> DescriptorChain? {
    guard !buffers.isEmpty,
          var driver = try? VirtqueueDriver(memory: memory, base: GuestAddress(queueBase), size: queueSize),
          let configuration = try? driver.configuration() else { return nil }
    for (index, buffer) in buffers.enumerated() {
        let last = index == buffers.count - 1
        let flags = (last ? 0 : VirtqueueDescriptorFlags.next) | (buffer.writable ? VirtqueueDescriptorFlags.write : 0)
        try? driver.writeDescriptor(UInt16(index), address: buffer.address, length: buffer.length, flags: flags,
                                    next: UInt16(index + 1))
    }
    try? driver.writeAvailableSlot(0, head: 0)
    try? driver.setAvailableIndex(1)
    var queue = SplitVirtqueue(configuration: configuration, memory: memory, features: 0)
    guard case .chain(let chain)? = try? queue.popAvailable() else { return nil }
    return chain
}

/// What a parsed request promises the backend (virtio 1.2 §5.2.6).
private func check(_ request: BlockRequest, chain: DescriptorChain, limits: BlockRequestLimits) {
    // The status byte is the last byte of the last non-empty writable buffer.
    let last = chain.writable.last(where: { $0.length > 0 })
    fuzzCheck(last.map { request.status.value == $0.address.value + UInt64($0.length) - 1 } ?? false,
              "status byte \(request.status) is not the last writable byte")
    let readable = chain.readableLength, writable = chain.writableLength
    func inCapacity(_ sector: UInt64, _ sectors: UInt64) -> Bool {
        let (end, overflow) = sector.addingReportingOverflow(sectors)
        return !overflow && end <= limits.capacitySectors
    }
    func total(_ data: [DescriptorBuffer]) -> UInt64 { data.reduce(0) { $0 + UInt64($1.length) } }
    switch request.operation {
    case .read(let sector, let data):
        fuzzCheck(readable == 16 && total(data) == writable - 1, "read: data does not match the chain")
        fuzzCheck(total(data) % 512 == 0 && inCapacity(sector, total(data) / 512), "read beyond capacity")
        fuzzCheck(data.allSatisfy { $0.length > 0 }, "read: empty range")
    case .write(let sector, let data):
        fuzzCheck(!limits.readOnly, "write on a read-only disk")
        fuzzCheck(writable == 1 && total(data) == readable - 16, "write: data does not match the chain")
        fuzzCheck(total(data) % 512 == 0 && inCapacity(sector, total(data) / 512), "write beyond capacity")
    case .flush:
        fuzzCheck(readable == 16 && writable == 1, "flush with data")
    case .getID(let data):
        fuzzCheck(total(data) >= 20 && total(data) == writable - 1, "get-id buffer wrong")
    case .discard(let segments), .writeZeroes(let segments):
        let isDiscard = if case .discard = request.operation { true } else { false }
        guard let segmentLimits = isDiscard ? limits.discard : limits.writeZeroes else {
            fuzzCheck(false, "discard/write-zeroes not offered but accepted")
            return
        }
        fuzzCheck(!segments.isEmpty && segments.count <= Int(segmentLimits.maxSegments), "segment count")
        fuzzCheck(UInt64(segments.count) * 16 == readable - 16 && writable == 1, "segments do not match the chain")
        for segment in segments {
            fuzzCheck(segment.sectorCount <= segmentLimits.maxSectors, "segment too long")
            fuzzCheck(inCapacity(segment.sector, UInt64(segment.sectorCount)), "segment beyond capacity")
            fuzzCheck(!(isDiscard && segment.unmap), "discard with unmap")
        }
    }
}

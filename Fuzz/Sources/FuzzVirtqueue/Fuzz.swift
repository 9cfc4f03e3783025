// Fuzz target 1: the split-virtqueue walker (Sources/Shared/Virtio), device side.
//
// Input: a queue configuration, then a script of what a hostile driver does to
// guest memory (descriptors, indirect tables, ring entries, indices, raw bytes)
// interleaved with what the device does (popAvailable, pushUsed, notification
// suppression, reset). Guest memory is FuzzGuest: two RAM slots with a hole
// between them and a read-only slot. Errors are fine; a crash, or a chain that
// breaks what popAvailable promises (buffers in RAM, the right access, within
// the byte limit, readable before writable), is a finding.
import FuzzKit
@testable import GuestRAM
@testable import MemorySlots
@testable import VirtioCore
@testable import VirtioTestSupport
@testable import LinuxSystem

@_cdecl("FuzzVirtqueue_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    FuzzGuest.wipe()
    let memory = FuzzGuest.memory

    // Queue configuration. Sizes are mostly powers of two; bit 7 takes a raw size.
    let sizeByte = input.byte()
    let queueSize: UInt16 = sizeByte & 0x80 != 0 ? input.integer() : 1 << (sizeByte & 0x0F)
    let maximumSize: UInt16 = 1 << (input.byte() & 0x0F)
    let featureByte = input.byte()
    var features: UInt64 = 0
    if featureByte & 1 != 0 { features |= VirtioFeature.eventIndex }
    if featureByte & 2 != 0 { features |= VirtioFeature.indirectDescriptors }
    let maximumChainBytes: UInt32
    switch (featureByte >> 2) & 3 {
    case 0: maximumChainBytes = .max
    case 1: maximumChainBytes = 0x1_0000
    case 2: maximumChainBytes = input.integer()
    default: maximumChainBytes = 0
    }
    let descriptorTable = FuzzGuest.address(input.integer())
    let availableRing = FuzzGuest.address(input.integer())
    let usedRing = FuzzGuest.address(input.integer())

    let configuration: VirtqueueConfiguration
    do {
        configuration = try VirtqueueConfiguration(
            size: queueSize, descriptorTable: GuestAddress(descriptorTable), availableRing: GuestAddress(availableRing),
            usedRing: GuestAddress(usedRing), maximumSize: maximumSize, memory: memory)
    } catch {
        return 0
    }
    // What the configuration promises (virtio 1.2 §2.7).
    fuzzCheck(queueSize.nonzeroBitCount == 1 && queueSize <= maximumSize, "bad queue size \(queueSize) accepted")
    fuzzCheck(FuzzGuest.isInside(GuestAddress(usedRing), length: SplitRingLayout.usedRingBytes(size: queueSize), writable: true),
              "used ring outside writable RAM accepted")

    var queue = SplitVirtqueue(configuration: configuration, memory: memory, features: features,
                               maximumChainBytes: maximumChainBytes)
    var outstanding: [UInt16] = []  // heads popped and not yet used

    func write16(_ value: UInt16, at address: UInt64) {
        try? memory.write(value.littleEndian, at: GuestAddress(address))
    }
    func descriptorBytes(_ input: inout FuzzInput) -> [UInt8] {
        let address = FuzzGuest.address(input.integer())
        let length: UInt32 = input.byte() & 1 != 0 ? input.integer() : UInt32(input.integer(UInt16.self))
        let flags: UInt16 = UInt16(input.byte() & 0x07)
        let next: UInt16 = input.integer()
        var bytes: [UInt8] = []
        withUnsafeBytes(of: address.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: length.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: flags.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: next.littleEndian) { bytes += $0 }
        return bytes
    }

    var steps = 0
    while !input.isEmpty && steps < 512 {
        steps += 1
        switch input.byte() % 12 {
        case 0:  // driver: descriptor `index` of the table
            let index = input.integer(UInt16.self) % queueSize
            try? memory.writeBytes(descriptorBytes(&input), at: GuestAddress(descriptorTable + 16 * UInt64(index)))
        case 1:  // driver: an entry of an indirect table anywhere (the read-only slot too)
            let base = FuzzGuest.address(input.integer())
            let index = UInt64(input.byte())
            FuzzGuest.poke(descriptorBytes(&input), at: base &+ 16 * index)
        case 2:  // driver: available ring slot
            let slot = input.integer(UInt16.self) % queueSize
            write16(input.integer(), at: availableRing + 4 + 2 * UInt64(slot))
        case 3:  // driver: publish n more entries, or a raw avail.idx
            let byte = input.byte()
            let current = (try? memory.read(UInt16.self, at: GuestAddress(availableRing + 2))).map(UInt16.init(littleEndian:)) ?? 0
            write16(byte & 0x80 != 0 ? input.integer() : current &+ UInt16(byte & 0x7F), at: availableRing + 2)
        case 4:  // driver: avail.flags or used_event
            if input.bool() {
                write16(input.integer(), at: availableRing)
            } else {
                write16(input.integer(), at: availableRing + 4 + 2 * UInt64(queueSize))
            }
        case 5:  // device: take what is available
            let limit = Int(input.byte()) + 1
            for _ in 0..<limit {
                let entry: AvailableEntry?
                do {
                    entry = try queue.popAvailable()
                } catch {
                    // A queue fault: the device needs a reset (DEVICE_NEEDS_RESET).
                    queue.reset()
                    outstanding = []
                    break
                }
                guard let entry else { break }
                switch entry {
                case .chain(let chain):
                    check(chain, queueSize: queueSize, indirect: queue.indirectDescriptors, maximumBytes: maximumChainBytes)
                    outstanding.append(chain.head)
                case .malformed(let head, _):
                    fuzzCheck(head < queueSize, "malformed head \(head) >= size \(queueSize)")
                    outstanding.append(head)
                }
            }
        case 6:  // device: return the oldest outstanding chain
            let length: UInt32 = input.integer()
            if !outstanding.isEmpty {
                let head = outstanding.removeFirst()
                do { try queue.pushUsed(head: head, length: length) } catch { queue.reset(); outstanding = [] }
            }
        case 7:
            _ = try? queue.needsInterrupt()
        case 8:
            if input.bool() {
                try? queue.disableNotifications()
            } else {
                _ = try? queue.enableNotifications()
            }
        case 9:
            queue.reset()
            outstanding = []
        case 10:  // driver: raw bytes anywhere in RAM (a hostile guest rewriting rings under us)
            let address = FuzzGuest.address(input.integer())
            let count = Int(input.byte() & 0x3F)
            FuzzGuest.poke(input.bytes(count), at: address)
        default:  // driver: writes the used ring itself (the device must not care)
            write16(input.integer(), at: usedRing + 2 * UInt64(input.byte() & 3))
        }
    }
    return 0
}

/// What `popAvailable` promises of a `.chain` (virtio 1.2 §2.7.4.2, §2.7.5, §2.7.5.3, design §4).
private func check(_ chain: DescriptorChain, queueSize: UInt16, indirect: Bool, maximumBytes: UInt32) {
    fuzzCheck(chain.head < queueSize, "head \(chain.head) >= size \(queueSize)")
    let total = chain.readableLength + chain.writableLength
    fuzzCheck(total <= UInt64(maximumBytes), "chain of \(total) bytes over the limit \(maximumBytes)")
    let count = chain.readable.count + chain.writable.count
    // Direct chains visit each table entry at most once; one indirect table adds at most 32768.
    let limit = Int(queueSize) + (indirect ? Int(SplitRingLayout.maximumQueueSize) : 0)
    fuzzCheck(count <= limit, "chain of \(count) descriptors, at most \(limit) possible")
    fuzzCheck(count > 0 || indirect, "empty chain without indirect descriptors")
    for buffer in chain.readable {
        fuzzCheck(FuzzGuest.isInside(buffer.address, length: UInt64(buffer.length), writable: false),
                  "readable buffer \(buffer) outside RAM")
    }
    for buffer in chain.writable {
        fuzzCheck(FuzzGuest.isInside(buffer.address, length: UInt64(buffer.length), writable: true),
                  "writable buffer \(buffer) outside writable RAM")
    }
}

import Glibc
import GuestRAM
import VirtioCore

/// A receive chain taken from the ring and checked, kept until a packet fills it.
struct ReceiveBuffer: Equatable, Sendable {
    let head: UInt16
    let buffers: ReceiveBufferList
    let capacity: Int
    /// Guest slices the chain maps to (at most 2 per buffer, one per slot touched).
    let sliceCount: Int
}

/// The buffers of a receive chain. The first is kept inline: drivers usually post one
/// buffer per chain, and holding the chain's own array would make the queue allocate a new
/// one for every chain it walks while this one waits for a packet.
struct ReceiveBufferList: RandomAccessCollection, Equatable, Sendable {
    let first: DescriptorBuffer
    let rest: [DescriptorBuffer]

    init(_ buffers: ArraySlice<DescriptorBuffer>) {
        precondition(!buffers.isEmpty, "a receive chain has a buffer")
        first = buffers[buffers.startIndex]
        rest = buffers.count > 1 ? Array(buffers.dropFirst()) : []
    }

    var startIndex: Int { 0 }
    var endIndex: Int { 1 + rest.count }
    subscript(position: Int) -> DescriptorBuffer { position == 0 ? first : rest[position - 1] }
}

/// How a pass over the receive path ended; says whether to keep watching the tap.
enum NetReceiveOutcome: Equatable, Sendable {
    /// The tap has nothing more: keep watching it.
    case tapDrained
    /// The receive queue has no room for another packet: stop watching the tap until the
    /// driver adds buffers (back-pressure; the tap's queue holds packets meanwhile).
    case outOfBuffers
    /// The pass moved its quota of packets; the tap may have more (keep watching, the
    /// level-triggered watch fires again).
    case budgetSpent
    /// The interface's receive limit holds the tap back: stop watching it, and watch it
    /// again when `receiveLimiter` allows (the tap's queue holds packets meanwhile).
    case limited
}

extension NetDeviceModel {
    /// Packets moved per pass before returning to the event loop.
    static let receiveBudget = 64

    /// The room one packet needs (§5.1.6.3.1): a full 65562 bytes when the guest takes TSO or
    /// USO packets, else a 1526-byte Ethernet packet with its header.
    static func requiredReceiveRoom(features: UInt64) -> Int {
        features & VirtioNetFeature.guestSegmentation != 0 ? maximumPacketLength : smallPacketLength
    }

    /// Moves packets into the receive queue: first the device's own frames (DHCP replies),
    /// then, if `readTap`, packets from the backend, each read straight into guest buffers.
    /// Reads the backend only when a whole packet is sure to fit. Throws `VirtqueueError`
    /// when the ring is broken and host errors of the backend; the caller interrupts the driver.
    func receive(queue: inout SplitVirtqueue, memory: GuestMemory, features: UInt64, readTap: Bool,
                 budget: Int = receiveBudget) throws -> NetReceiveOutcome
    {
        let mergeable = features & VirtioNetFeature.mergeableReceiveBuffers != 0
        var moved = 0
        try queue.disableNotifications()
        while moved < budget {
            let local = localFrames.first
            if local == nil && !readTap { return .tapDrained }
            // Before any buffer is taken: a packet held back waits in the tap, not here.
            if local == nil, let receiveLimiter, !receiveLimiter.admits() { return .limited }
            let needed = local.map { $0.count + VirtioNetHeader.size } ?? Self.requiredReceiveRoom(features: features)
            guard let count = try takeBuffers(for: needed, mergeable: mergeable, queue: &queue, memory: memory) else {
                // §2.7.10: ask for a kick when buffers come; take them if they came meanwhile.
                if try queue.enableNotifications() { continue }
                return .outOfBuffers
            }
            if let local {
                localFrames.removeFirst()
                // A local frame is a bare Ethernet frame: its header stays all zero.
                try deliver(count, queue: &queue, memory: memory, features: features, fromTap: false) { _ in
                    let room = heldReceiveBuffers[0..<count].reduce(0) { $0 + $1.capacity } - VirtioNetHeader.size
                    let written = Swift.min(room, local.count)
                    var offset = 0
                    for (index, held) in heldReceiveBuffers[0..<count].enumerated() where offset < written {
                        let skip = index == 0 ? VirtioNetHeader.size : 0
                        let piece = Swift.min(written - offset, held.capacity - skip)
                        // SAFETY: offset + piece <= local.count (the loop's bound), used inside the closure.
                        try local.withUnsafeBytes { bytes in
                            try held.buffers.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + piece)]),
                                                        at: UInt64(skip), memory: memory)
                        }
                        offset += piece
                    }
                    return .packet(VirtioNetHeader.size + local.count)
                }
            } else {
                let result = try deliver(count, queue: &queue, memory: memory, features: features, fromTap: true) { vectors in
                    try backend.readPacket(into: vectors)
                }
                if result == .wouldBlock { return .tapDrained }
                if case .packet(let length) = result {
                    receiveLimiter?.charge(bytes: UInt64(Swift.max(length - VirtioNetHeader.size, 0)))
                }
            }
            moved += 1
        }
        return .budgetSpent
    }

    /// Makes sure the held chains at the front can take `needed` bytes; returns how many of
    /// them the packet gets (1 without MRG_RXBUF), nil if the ring has no room.
    private func takeBuffers(for needed: Int, mergeable: Bool, queue: inout SplitVirtqueue,
                             memory: GuestMemory) throws(VirtqueueError) -> Int?
    {
        while true {
            if let count = Self.prefixFitting(needed, in: heldReceiveBuffers, mergeable: mergeable) { return count }
            guard let entry = try queue.popAvailable() else { break }
            switch entry {
            case .malformed(let head, let error):
                counters.rxUnusableBuffers += 1
                onFailure?("virtio-net: receive chain \(head) refused: \(error)")
                try queue.pushUsed(head: head, length: 0)
            case .chain(let chain):
                if let buffer = Self.receiveBuffer(chain, memory: memory) {
                    heldReceiveBuffers.append(buffer)
                } else {
                    counters.rxUnusableBuffers += 1
                    onFailure?("virtio-net: receive chain \(chain.head) unusable (readable buffers, under 12 bytes or read-only)")
                    try queue.pushUsed(head: chain.head, length: 0)
                }
            }
        }
        guard !heldReceiveBuffers.isEmpty else { return nil }
        // Short of room with nothing more in the ring. If the driver cannot add more (every
        // descriptor is held here), waiting would never end: use what there is, and a packet
        // too large for it is dropped as truncated.
        let descriptors = heldReceiveBuffers.reduce(0) { $0 + $1.buffers.count }
        guard heldReceiveBuffers.count >= Int(queue.size) || descriptors >= Int(queue.size) else { return nil }
        return mergeable ? Self.prefixWithinIOVMax(heldReceiveBuffers) : 1
    }

    /// How many held chains from the front hold `needed` bytes (one must, without MRG_RXBUF),
    /// or stop at IOV_MAX iovecs; nil when they do not.
    static func prefixFitting(_ needed: Int, in held: [ReceiveBuffer], mergeable: Bool) -> Int? {
        guard !held.isEmpty else { return nil }
        // Without MRG_RXBUF a chain smaller than the spec's size is still used (§5.1.6.3.1 is a
        // SHOULD for the driver); a packet that does not fit is dropped as truncated.
        if !mergeable { return 1 }
        var room = 0
        var slices = 1  // the header's iovec
        for (index, buffer) in held.enumerated() {
            if slices + buffer.sliceCount > Int(UIO_MAXIOV) { return index == 0 ? nil : index }
            room += buffer.capacity
            slices += buffer.sliceCount
            if room >= needed { return index + 1 }
        }
        return nil
    }

    private static func prefixWithinIOVMax(_ held: [ReceiveBuffer]) -> Int {
        var slices = 1
        for (index, buffer) in held.enumerated() {
            slices += buffer.sliceCount
            if slices > Int(UIO_MAXIOV) { return Swift.max(index, 1) }
        }
        return held.count
    }

    /// Checks a receive chain (§5.1.6.3.1): only device-writable buffers, room for the
    /// header, all of it writable guest RAM.
    static func receiveBuffer(_ chain: DescriptorChain, memory: GuestMemory) -> ReceiveBuffer? {
        guard chain.readable.isEmpty, chain.writableLength >= UInt64(VirtioNetHeader.size),
              chain.writableLength <= UInt64(Int32.max) else { return nil }
        var slices = 0
        for buffer in chain.writable {
            guard let parts = try? memory.forEachSlice(at: buffer.address, length: UInt64(buffer.length), forWriting: true) else {
                return nil
            }
            slices += parts
        }
        guard slices < Int(UIO_MAXIOV) else { return nil }
        return ReceiveBuffer(head: chain.head, buffers: ReceiveBufferList(chain.writable), capacity: Int(chain.writableLength),
                             sliceCount: slices)
    }

    /// Fills the first `count` held chains with one packet from `fill`, which gets iovecs
    /// over a local 12-byte header and the guest buffers after the header, and returns the
    /// packet's length. Then fixes the header, writes it into the guest and returns the used
    /// chains. A packet that fails is dropped and the chains stay held. Allocates nothing.
    @discardableResult
    private func deliver(
        _ count: Int, queue: inout SplitVirtqueue, memory: GuestMemory, features: UInt64, fromTap: Bool,
        fill: (IOVectorBuffer) throws -> NetTransfer
    ) throws -> NetTransfer {
        var capacity = 0
        for index in 0..<count { capacity += heldReceiveBuffers[index].capacity }
        // SAFETY: one header's temporary, alive while the iovecs that name it are used.
        return try withUnsafeTemporaryAllocation(byteCount: VirtioNetHeader.size, alignment: 8) { headerBytes in
            headerBytes.initializeMemory(as: UInt8.self, repeating: 0)
            let vectors = receiveVectors
            vectors.removeAll()
            _ = vectors.append(UnsafeRawBufferPointer(headerBytes))
            for index in 0..<count {
                let held = heldReceiveBuffers[index]
                let skip = index == 0 ? VirtioNetHeader.size : 0
                // Fits: receiveBuffer and prefixFitting counted the slices against IOV_MAX.
                let fits = try held.buffers.appendSlices(from: UInt64(skip), count: UInt64(held.capacity - skip),
                                                         forWriting: true, memory: memory, to: vectors)
                precondition(fits, "receive slices counted against IOV_MAX")
            }
            let result = try fill(vectors)
            guard case .packet(let length) = result else { return result }

            guard length >= VirtioNetHeader.size else {
                counters.rxDropped.shorterThanHeader += 1
                return result
            }
            guard length <= capacity else {
                counters.rxDropped.truncated += 1
                onFailure?("virtio-net: \(length)-byte packet dropped: \(capacity) bytes of receive buffers")
                return result
            }
            var header = VirtioNetHeader(parsing: headerBytes)!
            if fromTap {
                do {
                    header = try header.adjustedForReceive(features: features)
                } catch {
                    counters.rxDropped.offloadNotNegotiated += 1
                    onFailure?("virtio-net: packet from the tap dropped: \(error)")
                    return result
                }
            }
            // The chains the packet reaches, each with the bytes it got (§5.1.6.4).
            var usedCount = 0
            var left = length
            while left > 0 {
                left -= Swift.min(left, heldReceiveBuffers[usedCount].capacity)
                usedCount += 1
            }
            // §5.1.6.4.1: num_buffers is the number of chains used (1 without MRG_RXBUF).
            header.bufferCount = UInt16(usedCount)
            header.store(into: headerBytes)
            // SAFETY: the header buffer is still alive (inside the same temporary allocation).
            try heldReceiveBuffers[0].buffers.writeBytes(UnsafeRawBufferPointer(headerBytes), at: 0, memory: memory)
            left = length
            for index in 0..<usedCount {
                let take = Swift.min(left, heldReceiveBuffers[index].capacity)
                try queue.pushUsed(head: heldReceiveBuffers[index].head, length: UInt32(take))
                left -= take
            }
            heldReceiveBuffers.removeFirst(usedCount)
            counters.rxPackets += 1
            counters.rxBytes += UInt64(length - VirtioNetHeader.size)
            return result
        }
    }
}

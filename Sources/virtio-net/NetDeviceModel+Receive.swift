import Glibc
import Shared

/// A receive chain taken from the ring and checked, kept until a packet fills it.
struct ReceiveBuffer: Equatable, Sendable {
    let head: UInt16
    let buffers: [DescriptorBuffer]
    let capacity: Int
    /// Guest slices the chain maps to (at most 2 per buffer, one per slot touched).
    let sliceCount: Int
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
}

extension NetDeviceModel {
    /// Packets moved per pass before returning to the event loop.
    static let receiveBudget = 64

    /// The room one packet needs (§5.1.6.3.1): a full 65562 bytes when the guest takes TSO
    /// packets, else a 1526-byte Ethernet packet with its header.
    static func requiredReceiveRoom(features: UInt64) -> Int {
        features & (VirtioNetFeature.guestTSO4 | VirtioNetFeature.guestTSO6) != 0 ? maximumPacketLength : smallPacketLength
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
            let needed = local.map { $0.count + VirtioNetHeader.size } ?? Self.requiredReceiveRoom(features: features)
            guard let count = try takeBuffers(for: needed, mergeable: mergeable, queue: &queue, memory: memory) else {
                // §2.7.10: ask for a kick when buffers come; take them if they came meanwhile.
                if try queue.enableNotifications() { continue }
                return .outOfBuffers
            }
            let chosen = Array(heldReceiveBuffers.prefix(count))
            if let local {
                localFrames.removeFirst()
                // A local frame is a bare Ethernet frame: its header stays all zero.
                try deliver(into: chosen, queue: &queue, memory: memory, features: features, fromTap: false) { _, data in
                    var offset = 0
                    for range in data where offset < local.count {
                        let piece = Array(local[offset..<Swift.min(local.count, offset + Int(range.length))])
                        try memory.writeBytes(piece, at: range.address)
                        offset += piece.count
                    }
                    return .packet(VirtioNetHeader.size + local.count)
                }
            } else {
                let result = try deliver(into: chosen, queue: &queue, memory: memory, features: features, fromTap: true) { header, data in
                    var vectors = [iovec(iov_base: header.baseAddress, iov_len: header.count)]
                    for range in data {
                        vectors += try memory.slices(at: range.address, length: UInt64(range.length), forWriting: true)
                            .filter { $0.count > 0 }.map(\.iovec)
                    }
                    return try backend.readPacket(into: vectors)
                }
                if result == .wouldBlock { return .tapDrained }
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
            guard let parts = try? memory.slices(at: buffer.address, length: UInt64(buffer.length), forWriting: true) else {
                return nil
            }
            slices += parts.count
        }
        guard slices < Int(UIO_MAXIOV) else { return nil }
        return ReceiveBuffer(head: chain.head, buffers: chain.writable, capacity: Int(chain.writableLength), sliceCount: slices)
    }

    /// Fills `chosen` (a prefix of the held chains) with one packet from `fill`, which gets a
    /// local 12-byte header buffer and the guest ranges after the header, and returns the
    /// packet's length. Then fixes the header, writes it into the guest and returns the used
    /// chains. A packet that fails is dropped and the chains stay held.
    @discardableResult
    private func deliver(
        into chosen: [ReceiveBuffer], queue: inout SplitVirtqueue, memory: GuestMemory, features: UInt64, fromTap: Bool,
        fill: (UnsafeMutableRawBufferPointer, [DescriptorBuffer]) throws -> NetTransfer
    ) throws -> NetTransfer {
        let firstData = chosen[0].buffers.ranges(from: UInt64(VirtioNetHeader.size),
                                                 count: UInt64(chosen[0].capacity - VirtioNetHeader.size))
        let data = firstData + chosen.dropFirst().flatMap(\.buffers)
        let capacity = chosen.reduce(0) { $0 + $1.capacity }
        var headerBytes = [UInt8](repeating: 0, count: VirtioNetHeader.size)
        let result = try headerBytes.withUnsafeMutableBytes { try fill($0, data) }
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
        var used: [(UInt16, UInt32)] = []
        var left = length
        for buffer in chosen where left > 0 {
            let take = Swift.min(left, buffer.capacity)
            used.append((buffer.head, UInt32(take)))
            left -= take
        }
        // §5.1.6.4.1: num_buffers is the number of chains used (1 without MRG_RXBUF).
        header.bufferCount = UInt16(used.count)
        let headerCopy = header.bytes
        var offset = 0
        for range in chosen[0].buffers.ranges(from: 0, count: UInt64(VirtioNetHeader.size)) {
            try memory.writeBytes(Array(headerCopy[offset..<(offset + Int(range.length))]), at: range.address)
            offset += Int(range.length)
        }
        for (head, length) in used {
            try queue.pushUsed(head: head, length: length)
        }
        heldReceiveBuffers.removeFirst(used.count)
        counters.rxPackets += 1
        counters.rxBytes += UInt64(length - VirtioNetHeader.size)
        return result
    }
}

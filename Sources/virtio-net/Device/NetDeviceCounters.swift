/// Why a packet the driver sent never reached the tap. Each is a guest fault except
/// `backendBusy` and `backendError` (host side); the device goes on after all of them.
struct NetTransmitDrops: Equatable, Sendable {
    /// The queue walker refused the chain (loops, buffers outside RAM, ...; virtio 1.2 §2.7).
    var malformedChain = 0
    /// Fewer bytes than the 12-byte virtio-net header (§5.1.6).
    var shorterThanHeader = 0
    /// A frame shorter than an Ethernet header (14 bytes): nothing a tap can send.
    var runt = 0
    /// A frame longer than 65550 bytes (§5.1.6.3.1: header + 65550 is the largest packet).
    var tooLong = 0
    /// Device-writable buffers on the transmit queue: the driver only gives readable ones (§5.1.6.2).
    var writableBuffers = 0
    /// More pieces than one writev takes (IOV_MAX), with indirect tables of many tiny buffers.
    var tooManySegments = 0
    /// A buffer the walker accepted but that could not be mapped (a read-only slot).
    var guestMemory = 0
    /// A header breaking §5.1.6.2.1 (flags, GSO without its feature, checksum outside the frame).
    var badHeader = 0
    /// The tap would have blocked (its queue is full).
    var backendBusy = 0
    /// The tap refused the packet (e.g. EIO while the interface is down, EINVAL).
    var backendError = 0

    mutating func add(_ other: NetTransmitDrops) {
        malformedChain += other.malformedChain
        shorterThanHeader += other.shorterThanHeader
        runt += other.runt
        tooLong += other.tooLong
        writableBuffers += other.writableBuffers
        tooManySegments += other.tooManySegments
        guestMemory += other.guestMemory
        badHeader += other.badHeader
        backendBusy += other.backendBusy
        backendError += other.backendError
    }

    var total: Int {
        malformedChain + shorterThanHeader + runt + tooLong + writableBuffers + tooManySegments + guestMemory
            + badHeader + backendBusy + backendError
    }
}

/// Why a packet from the tap never reached the driver.
struct NetReceiveDrops: Equatable, Sendable {
    /// Larger than the buffers that were posted for it (too small without MRG_RXBUF, §5.1.6.3.1).
    var truncated = 0
    /// An offload the guest did not negotiate (a GSO packet without GUEST_TSO, a partial
    /// checksum without GUEST_CSUM; §5.1.6.4.1): the tap's TUNSETOFFLOAD disagrees.
    var offloadNotNegotiated = 0
    /// The tap returned less than a virtio-net header.
    var shorterThanHeader = 0
    /// A frame the device made itself (a DHCP reply) with no room left to keep it.
    var localQueueFull = 0

    var total: Int { truncated + offloadNotNegotiated + shorterThanHeader + localQueueFull }

    mutating func add(_ other: NetReceiveDrops) {
        truncated += other.truncated
        offloadNotNegotiated += other.offloadNotNegotiated
        shorterThanHeader += other.shorterThanHeader
        localQueueFull += other.localQueueFull
    }
}

/// Counters for logging and `vmctl status`; never reset while the device lives.
struct NetDeviceCounters: Equatable, Sendable {
    var txPackets = 0
    /// Frame bytes sent to the tap, headers not counted.
    var txBytes: UInt64 = 0
    var txDropped = NetTransmitDrops()
    var rxPackets = 0
    /// Frame bytes given to the driver, headers not counted.
    var rxBytes: UInt64 = 0
    var rxDropped = NetReceiveDrops()
    /// Receive chains returned unused (length 0): readable buffers, no room for the header,
    /// or read-only memory (§5.1.6.3.1).
    var rxUnusableBuffers = 0
    /// DHCP requests the device answered itself instead of sending them to the tap.
    var dhcpReplies = 0

    /// Adds another queue pair's counts (the device's are the sum of its pairs').
    mutating func add(_ other: NetDeviceCounters) {
        txPackets += other.txPackets
        txBytes += other.txBytes
        txDropped.add(other.txDropped)
        rxPackets += other.rxPackets
        rxBytes += other.rxBytes
        rxDropped.add(other.rxDropped)
        rxUnusableBuffers += other.rxUnusableBuffers
        dhcpReplies += other.dhcpReplies
    }
}

/// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
/// 16-bit big-endian words, an odd last byte padded with zero. Used for the IPv4 header
/// (RFC 791) and for UDP over a pseudo-header (RFC 768).
struct InternetChecksum {
    private var sum: UInt32 = 0
    /// An odd byte waiting for its partner, so data may be added in pieces.
    private var pending: UInt8?

    init() {}

    mutating func add<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
        for byte in bytes {
            if let high = pending {
                sum += UInt32(high) << 8 | UInt32(byte)
                pending = nil
                // Fold now and then so the 32-bit sum never overflows.
                if sum > 0xFFFF_0000 { sum = (sum & 0xFFFF) + (sum >> 16) }
            } else {
                pending = byte
            }
        }
    }

    mutating func add(_ word: UInt16) {
        add([UInt8(word >> 8), UInt8(truncatingIfNeeded: word)])
    }

    /// The checksum of what was added, as stored in a header (big-endian order of the value).
    var value: UInt16 {
        var total = sum
        if let high = pending { total += UInt32(high) << 8 }
        while total > 0xFFFF { total = (total & 0xFFFF) + (total >> 16) }
        return ~UInt16(total)
    }

    static func of<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt16 {
        var checksum = InternetChecksum()
        checksum.add(bytes)
        return checksum.value
    }
}

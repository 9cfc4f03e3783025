/// How wide a qcow2 image's refcounts are (`refcount_order` 0-6: 1 to 64 bits, qemu-img's
/// `refcount_bits`), and where each entry lies in a refcount block, which is kept as the
/// cluster's bytes: decoded to 64-bit numbers, a block of 1-bit refcounts would take 64
/// times its cluster. Entries of 8 bits and more are big-endian; narrower ones are packed
/// into bytes from the least significant bit up (qcow2.txt, "Refcount block entry").
struct Qcow2RefcountWidth: Equatable {
    let bits: Int

    init(order: UInt32) {
        precondition(order <= 6, "the header parser admits refcount orders 0 to 6 only")
        bits = 1 << Int(order)
    }

    /// The largest refcount an entry holds.
    var maximum: UInt64 { bits == 64 ? .max : (1 << UInt64(bits)) - 1 }

    /// The bytes of a block that hold entry `index`, which is what a change of it rewrites.
    func byteRange(of index: Int) -> Range<Int> {
        bits < 8 ? (index * bits / 8)..<(index * bits / 8 + 1) : (index * bits / 8)..<((index + 1) * bits / 8)
    }

    func value(at index: Int, in block: [UInt8]) -> UInt64 {
        let range = byteRange(of: index)
        guard bits < 8 else { return block[range].reduce(0) { $0 << 8 | UInt64($1) } }
        return UInt64(block[range.lowerBound] >> UInt8(index * bits % 8)) & maximum
    }

    /// `value` must be at most `maximum`.
    func set(_ value: UInt64, at index: Int, in block: inout [UInt8]) {
        let range = byteRange(of: index)
        if bits < 8 {
            let shift = UInt8(index * bits % 8)
            let mask = UInt8(maximum) << shift
            block[range.lowerBound] = block[range.lowerBound] & ~mask | UInt8(value) << shift
        } else {
            for (position, byte) in range.enumerated() {
                block[byte] = UInt8(truncatingIfNeeded: value >> UInt64(bits - 8 * (position + 1)))
            }
        }
    }
}

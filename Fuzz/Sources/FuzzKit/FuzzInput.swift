/// Reads typed values off a fuzzer input, front to back. Past the end every read
/// gives zero, so a target never has to check lengths and short inputs still run.
public struct FuzzInput {
    public let bytes: UnsafeBufferPointer<UInt8>
    public private(set) var offset = 0

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = UnsafeBufferPointer(start: size > 0 ? data : nil, count: size)
    }

    public var remaining: Int { bytes.count - offset }
    public var isEmpty: Bool { remaining <= 0 }

    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func bool() -> Bool { byte() & 1 != 0 }

    /// A little-endian integer of the type's width.
    public mutating func integer<Value: FixedWidthInteger>(_ type: Value.Type = Value.self) -> Value {
        var value = Value.zero
        for index in 0..<(Value.bitWidth / 8) {
            value |= Value(truncatingIfNeeded: byte()) << (8 * index)
        }
        return value
    }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let taken = max(0, min(count, remaining))
        defer { offset += taken }
        return Array(bytes[offset..<(offset + taken)])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { bytes(remaining) }
}

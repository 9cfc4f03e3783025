import LinuxSystem
/// Builds the payload of one IPC message: little-endian integers, length-prefixed
/// strings and arrays, and descriptors that travel beside the bytes (SCM_RIGHTS).
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []
    /// Descriptors to attach, in the order the reader will take them.
    public private(set) var descriptors: [FileDescriptor] = []

    public init() {}

    public mutating func write<Value: FixedWidthInteger>(_ value: Value) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: Bool) { write(UInt8(value ? 1 : 0)) }

    public mutating func write(_ value: String) {
        let utf8 = Array(value.utf8)
        write(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    public mutating func write(_ values: [UInt8]) {
        write(UInt32(values.count))
        bytes.append(contentsOf: values)
    }

    public mutating func write(_ descriptor: FileDescriptor) {
        descriptors.append(descriptor)
    }
}

/// Reads a payload written by `WireWriter`. Every read is checked: a short or
/// malformed payload is an `IPCError`, never a crash.
public struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0
    private var descriptors: [FileDescriptor]
    private var nextDescriptor = 0

    public init(bytes: [UInt8], descriptors: [FileDescriptor] = []) {
        self.bytes = bytes
        self.descriptors = descriptors
    }

    public mutating func read<Value: FixedWidthInteger>(_ type: Value.Type = Value.self) throws -> Value {
        let size = MemoryLayout<Value>.size
        guard bytes.count - offset >= size else { throw IPCError.malformed("payload ends inside a \(Value.self)") }
        var value = Value.zero
        // SAFETY: `size` bytes remain after `offset` (checked above); any bit pattern is a valid integer.
        withUnsafeMutableBytes(of: &value) { target in
            bytes.withUnsafeBytes { source in
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + size)]))
            }
        }
        offset += size
        return Value(littleEndian: value)
    }

    public mutating func read(_ type: Bool.Type) throws -> Bool {
        switch try read(UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw IPCError.malformed("boolean byte \(other)")
        }
    }

    /// A length-prefixed byte array of at most `limit` bytes.
    public mutating func readBytes(limit: Int = IPCFrame.maximumPayload) throws -> [UInt8] {
        let count = Int(try read(UInt32.self))
        guard count <= limit else { throw IPCError.malformed("array of \(count) bytes exceeds \(limit)") }
        guard bytes.count - offset >= count else { throw IPCError.malformed("payload ends inside an array") }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    public mutating func read(_ type: String.Type, limit: Int = 4096) throws -> String {
        let utf8 = try readBytes(limit: limit)
        guard let string = String(validating: utf8, as: UTF8.self) else { throw IPCError.malformed("string is not UTF-8") }
        return string
    }

    /// A count that is about to size an array: bounded so garbage cannot make us allocate.
    public mutating func readCount(limit: Int) throws -> Int {
        let count = Int(try read(UInt32.self))
        guard count <= limit else { throw IPCError.malformed("count \(count) exceeds \(limit)") }
        return count
    }

    public mutating func readDescriptor() throws -> FileDescriptor {
        guard nextDescriptor < descriptors.count else { throw IPCError.missingDescriptors }
        defer { nextDescriptor += 1 }
        return descriptors[nextDescriptor]
    }

    /// Checks the whole payload and every descriptor was consumed.
    public func finish() throws {
        guard offset == bytes.count else { throw IPCError.malformed("\(bytes.count - offset) trailing bytes") }
        guard nextDescriptor == descriptors.count else { throw IPCError.unexpectedDescriptors(descriptors.count - nextDescriptor) }
    }
}

/// A closed set of messages for one direction of one channel (crosvm's ProxyDevice
/// commands are the model): each case has a tag, an encoding and a decoder.
public protocol ChannelMessage {
    var tag: UInt16 { get }
    func encode(into writer: inout WireWriter)
    static func decode(tag: UInt16, from reader: inout WireReader) throws -> Self
}

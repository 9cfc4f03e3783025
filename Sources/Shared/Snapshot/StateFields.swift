import IPC

/// The payload of a state section: tagged byte strings (a vCPU's registers, a device's
/// registers), each owner deciding what its tags mean and checking each field's size. A
/// reader ignores no tag silently: `take` hands each out once and `finish` names leftovers.
public struct StateFields: Equatable, Sendable {
    public private(set) var fields: [(tag: UInt16, bytes: [UInt8])] = []

    public init() {}

    public static func == (a: StateFields, b: StateFields) -> Bool {
        a.fields.map(\.tag) == b.fields.map(\.tag) && a.fields.map(\.bytes) == b.fields.map(\.bytes)
    }

    public mutating func append(_ tag: UInt16, _ bytes: [UInt8]) { fields.append((tag, bytes)) }

    /// The value as its raw bytes (a C struct of KVM's, an integer).
    public mutating func append<Value>(_ tag: UInt16, raw value: Value) {
        append(tag, withUnsafeBytes(of: value) { Array($0) })
    }

    public mutating func append(_ tag: UInt16, _ build: (inout WireWriter) -> Void) {
        var writer = WireWriter()
        build(&writer)
        append(tag, writer.bytes)
    }

    public func bytes(_ tag: UInt16) -> [UInt8]? { fields.first { $0.tag == tag }?.bytes }

    public func contains(_ tag: UInt16) -> Bool { bytes(tag) != nil }

    /// Field `tag` as a `Value` of exactly its size; `what` names it in the error.
    /// `Value` must be plain data (an integer or an imported C struct): any bit pattern is valid.
    public func raw<Value>(_ tag: UInt16, as type: Value.Type, _ what: String, into value: inout Value) throws {
        guard let bytes = bytes(tag) else { throw SnapshotError.malformed("\(what) is missing") }
        guard bytes.count == MemoryLayout<Value>.size else {
            throw SnapshotError.malformed("\(what) is \(bytes.count) bytes, not \(MemoryLayout<Value>.size)")
        }
        // SAFETY: exactly MemoryLayout<Value>.size bytes are copied over a plain-data value.
        withUnsafeMutableBytes(of: &value) { target in bytes.withUnsafeBytes { target.copyMemory(from: $0) } }
    }

    /// Field `tag` read with a `WireReader` that must consume it whole.
    public func read<Result>(_ tag: UInt16, _ what: String, _ body: (inout WireReader) throws -> Result) throws -> Result {
        guard let bytes = bytes(tag) else { throw SnapshotError.malformed("\(what) is missing") }
        var reader = WireReader(bytes: bytes)
        do {
            let result = try body(&reader)
            try reader.finish()
            return result
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError.malformed("\(what): \(error)")
        }
    }

    var encoded: [UInt8] {
        var writer = WireWriter()
        writer.write(UInt32(fields.count))
        for field in fields { writer.write(field.tag); writer.write(field.bytes) }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> StateFields {
        var reader = WireReader(bytes: bytes)
        var result = StateFields()
        do {
            for _ in 0..<(try reader.readCount(limit: 4096)) {
                result.append(try reader.read(UInt16.self), try reader.readBytes(limit: SnapshotFormat.maximumStateSection))
            }
            try reader.finish()
        } catch {
            throw SnapshotError.malformed("state fields: \(error)")
        }
        return result
    }
}

import IPC

/// Writes a snapshot in `SnapshotFormat`'s order: the header at `init`, then sections, then `finish`.
public struct SnapshotWriter<Sink: SnapshotSink> {
    private var sink: Sink
    private var sections: UInt32 = 0
    /// Where a live page is copied before it is checksummed and sent.
    private var scratch = [UInt8](repeating: 0, count: 1 << 20)
    public private(set) var bytesWritten: UInt64 = 0

    public init(sink: Sink, shape: SnapshotShape) throws {
        self.sink = sink
        var writer = WireWriter()
        shape.encode(into: &writer)
        let checksum = SnapshotChecksum()
        checksum.update(writer.bytes)
        var header = WireWriter()
        header.write(SnapshotFormat.version)
        header.write(UInt32(writer.bytes.count))
        try put(SnapshotFormat.magic + header.bytes + writer.bytes)
        try put(integer: checksum.value)
    }

    public mutating func writeState(_ kind: SnapshotSectionKind, index: Int, _ fields: StateFields) throws {
        let payload = fields.encoded
        let checksum = SnapshotChecksum()
        try putSectionHeader(kind, index: index, length: UInt64(payload.count), checksum: checksum)
        checksum.update(payload)
        try put(payload)
        try put(integer: checksum.value)
    }

    /// One RAM slot: `runs` are its non-zero pages, `pages(run)` their bytes (the slot's
    /// memory). `live`: the guest runs and may change them meanwhile, so each piece is copied
    /// first and its checksum taken over the copy that is sent (a later round sends the page again).
    public mutating func writeMemory(slot: Int, runs: [PageRun], live: Bool = false,
                                     pages: (PageRun) throws -> UnsafeRawBufferPointer) throws {
        var table = WireWriter()
        table.write(SnapshotFormat.pageSize)
        table.write(UInt32(runs.count))
        for run in runs { table.write(run.firstPage); table.write(run.pageCount) }
        let data = runs.reduce(UInt64(0)) { $0 + $1.pageCount * SnapshotFormat.pageSize }
        let tableChecksum = SnapshotChecksum()
        try putSectionHeader(.memory, index: slot, length: UInt64(table.bytes.count) + data, checksum: tableChecksum)
        tableChecksum.update(table.bytes)
        try put(table.bytes)
        try put(integer: tableChecksum.value)
        let checksum = SnapshotChecksum()
        for run in runs {
            let bytes = try pages(run)
            precondition(UInt64(bytes.count) == run.pageCount * SnapshotFormat.pageSize, "a run's bytes are its pages")
            guard live else {
                checksum.update(bytes)
                try sink.write(bytes)
                bytesWritten += UInt64(bytes.count)
                continue
            }
            var offset = 0
            while offset < bytes.count {
                let count = min(bytes.count - offset, scratch.count)
                try scratch.withUnsafeMutableBytes { copy in
                    copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
                    let piece = UnsafeRawBufferPointer(rebasing: copy[0..<count])
                    checksum.update(piece)
                    try sink.write(piece)
                }
                offset += count
                bytesWritten += UInt64(count)
            }
        }
        try put(integer: checksum.value)
    }

    /// The end marker; returns the sink (a `MemoryStream` holds the snapshot).
    public mutating func finish() throws -> Sink {
        let count = sections
        var fields = WireWriter()
        fields.write(count)
        let checksum = SnapshotChecksum()
        try putSectionHeader(.end, index: 0, length: UInt64(fields.bytes.count), checksum: checksum)
        checksum.update(fields.bytes)
        try put(fields.bytes)
        try put(integer: checksum.value)
        return sink
    }

    private mutating func putSectionHeader(_ kind: SnapshotSectionKind, index: Int, length: UInt64,
                                           checksum: SnapshotChecksum) throws {
        var header = WireWriter()
        header.write(kind.rawValue)
        header.write(UInt32(index))
        header.write(length)
        checksum.update(header.bytes)
        try put(header.bytes)
        if kind != .end { sections += 1 }
    }

    private mutating func put(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sink.write($0) }
        bytesWritten += UInt64(bytes.count)
    }

    private mutating func put(integer value: UInt64) throws {
        var writer = WireWriter()
        writer.write(value)
        try put(writer.bytes)
    }
}

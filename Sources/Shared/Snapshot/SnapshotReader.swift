import IPC

/// A RAM slot's pages left in the snapshot file by `skipPages` (lazy restore): run `i`'s
/// pages follow those of the runs before it, from `fileOffset` on.
public struct DeferredPages: Equatable, Sendable {
    public let slot: Int
    public let runs: [PageRun]
    public let fileOffset: UInt64
    /// The pages' checksum (`SnapshotChecksum` over them all, in order), or the file is corrupt.
    public let expectedChecksum: UInt64

    public init(slot: Int, runs: [PageRun], fileOffset: UInt64, expectedChecksum: UInt64) {
        (self.slot, self.runs, self.fileOffset, self.expectedChecksum) = (slot, runs, fileOffset, expectedChecksum)
    }
}

/// One section as `SnapshotReader.next()` hands it out.
public enum SnapshotSection: Equatable {
    case state(SnapshotSectionKind, index: Int, StateFields)
    /// A RAM slot's table; its pages come next, through `readPages`.
    case memory(slot: Int, runs: [PageRun])
}

/// Reads a snapshot as a hostile file: every length is bounded by the VM it is restored
/// into (`expecting`), which must match the snapshot's shape before anything else is read;
/// every section's checksum is checked; a section twice or one missing is refused.
public struct SnapshotReader<Source: SnapshotSource> {
    public private(set) var shape = SnapshotShape(vcpus: 0, firmware: false, slots: [], devices: [])
    private var source: Source
    /// Bytes consumed so far: where the next byte is in the file.
    public private(set) var position: UInt64 = 0
    private var seen: Set<SectionID> = []
    private var pendingMemory: (slot: Int, runs: [PageRun], checksum: SnapshotChecksum)?
    private var ended = false

    private struct SectionID: Hashable { let kind: UInt32; let index: UInt32 }

    /// Whether a memory section may come again for the same slot (a live migration sends
    /// RAM in rounds: a later section's pages replace what came before).
    private let memoryInRounds: Bool
    private var memorySections = 0

    public init(source: Source, expecting vm: SnapshotShape, memoryInRounds: Bool = false) throws {
        self.source = source
        self.memoryInRounds = memoryInRounds
        let magic = try take(SnapshotFormat.magic.count, "the header")
        guard magic == SnapshotFormat.magic else { throw SnapshotError.notASnapshot }
        var header = WireReader(bytes: try take(8, "the header"))
        let version = try header.read(UInt32.self)
        guard version == SnapshotFormat.version else { throw SnapshotError.unsupportedVersion(version) }
        let length = Int(try header.read(UInt32.self))
        guard length <= SnapshotFormat.maximumShape else { throw SnapshotError.malformed("a shape of \(length) bytes") }
        let bytes = try take(length, "the shape")
        let checksum = SnapshotChecksum()
        checksum.update(bytes)
        guard try integer("the shape's checksum") == checksum.value else {
            throw SnapshotError.checksumMismatch("the shape")
        }
        var reader = WireReader(bytes: bytes)
        do {
            shape = try SnapshotShape.decode(from: &reader)
            try reader.finish()
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError.malformed("shape: \(error)")
        }
        if let mismatch = shape.mismatch(against: vm) { throw SnapshotError.shapeMismatch(mismatch) }
    }

    /// The next section, nil once the end marker was read and every section was there.
    public mutating func next() throws -> SnapshotSection? {
        guard pendingMemory == nil else { throw SnapshotError.malformed("memory pages not read") }
        guard !ended else { return nil }
        let headerBytes = try take(16, "a section header")
        var header = WireReader(bytes: headerBytes)
        let kindValue = try header.read(UInt32.self), index = try header.read(UInt32.self), length = try header.read(UInt64.self)
        guard let kind = SnapshotSectionKind(rawValue: kindValue) else { throw SnapshotError.malformed("section kind \(kindValue)") }
        let checksum = SnapshotChecksum()
        checksum.update(headerBytes)
        if kind != .end {
            guard Int(index) < count(of: kind) else { throw SnapshotError.malformed("\(kind) section \(index) does not exist in this shape") }
            if kind == .memory { memorySections += 1 }
            guard seen.insert(SectionID(kind: kindValue, index: index)).inserted || (kind == .memory && memoryInRounds) else {
                throw SnapshotError.malformed("\(kind) section \(index) appears twice")
            }
        }
        switch kind {
        case .memory:
            return try memoryTable(slot: Int(index), length: length, checksum: checksum)
        case .end:
            let payload = try sectionPayload(length: length, limit: 4, checksum: checksum, what: "the end marker")
            var reader = WireReader(bytes: payload)
            let counted = try reader.read(UInt32.self)
            let sections = seen.filter { $0.kind != SnapshotSectionKind.memory.rawValue }.count + memorySections
            guard counted == sections else { throw SnapshotError.malformed("the end marker counts \(counted) sections, not \(sections)") }
            for kind in [SnapshotSectionKind.machine, .vcpu, .device, .memory] {
                for index in 0..<count(of: kind) where !seen.contains(SectionID(kind: kind.rawValue, index: UInt32(index))) {
                    throw SnapshotError.malformed("\(kind) section \(index) is missing")
                }
            }
            ended = true
            return nil
        case .machine, .vcpu, .device:
            let payload = try sectionPayload(length: length, limit: SnapshotFormat.maximumStateSection, checksum: checksum,
                                             what: "\(kind) section \(index)")
            return .state(kind, index: Int(index), try StateFields.decode(payload))
        }
    }

    /// The pages of the memory section `next()` returned: `destination(run)` gives the
    /// guest memory each run is read into. The checksum is checked at the end, so on an
    /// error the memory holds garbage and the VM must not run.
    public mutating func readPages(into destination: (PageRun) throws -> UnsafeMutableRawBufferPointer) throws {
        guard let memory = pendingMemory else { throw SnapshotError.malformed("no memory section to read") }
        for run in memory.runs {
            let buffer = try destination(run)
            guard UInt64(buffer.count) == run.pageCount * SnapshotFormat.pageSize else {
                throw SnapshotError.malformed("a destination of \(buffer.count) bytes for \(run.pageCount) pages")
            }
            // A piece at a time, each checksummed as soon as it is in (still in the cache): a
            // run may be most of RAM, and a migration's end must not wait for its whole checksum.
            var offset = 0
            while offset < buffer.count {
                let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<min(buffer.count, offset + (1 << 20))])
                try read(into: piece)
                memory.checksum.update(UnsafeRawBufferPointer(piece))
                offset += piece.count
            }
        }
        pendingMemory = nil
        guard try integer("memory slot \(memory.slot)'s checksum") == memory.checksum.value else {
            throw SnapshotError.checksumMismatch("memory slot \(memory.slot)")
        }
    }

    /// The pages of the memory section `next()` returned, left in the file for a lazy
    /// restore: where they start, and the checksum to verify once they have all been read
    /// (by the pager, in order). The source must be able to seek (a file, not a pipe).
    public mutating func skipPages() throws -> DeferredPages {
        guard let memory = pendingMemory else { throw SnapshotError.malformed("no memory section to skip") }
        let pages = memory.runs.reduce(UInt64(0)) { $0 + $1.pageCount }
        let offset = position
        try source.skip(pages * SnapshotFormat.pageSize)
        position += pages * SnapshotFormat.pageSize
        pendingMemory = nil
        let expected = try integer("memory slot \(memory.slot)'s checksum")
        return DeferredPages(slot: memory.slot, runs: memory.runs, fileOffset: offset, expectedChecksum: expected)
    }

    private func count(of kind: SnapshotSectionKind) -> Int {
        switch kind {
        case .machine: 1
        case .vcpu: shape.vcpus
        case .device: shape.devices.count
        case .memory: shape.slots.count
        case .end: 0
        }
    }

    private mutating func memoryTable(slot: Int, length: UInt64, checksum: SnapshotChecksum) throws -> SnapshotSection {
        let slotPages = shape.slots[slot].size / SnapshotFormat.pageSize
        let headBytes = try take(12, "memory slot \(slot)'s table")
        checksum.update(headBytes)
        var head = WireReader(bytes: headBytes)
        let pageSize = try head.read(UInt64.self), runCount = UInt64(try head.read(UInt32.self))
        guard pageSize == SnapshotFormat.pageSize else { throw SnapshotError.malformed("page size \(pageSize)") }
        // Runs are apart (a gap of at least a page between two), so a slot holds at most half its pages plus one.
        guard runCount <= slotPages / 2 + 1 else { throw SnapshotError.malformed("\(runCount) runs in a slot of \(slotPages) pages") }
        let tableBytes = try take(Int(runCount) * 16, "memory slot \(slot)'s table")
        checksum.update(tableBytes)
        var table = WireReader(bytes: tableBytes)
        var runs: [PageRun] = []
        var nextFree: UInt64 = 0
        var dataPages: UInt64 = 0
        for _ in 0..<runCount {
            let run = PageRun(firstPage: try table.read(UInt64.self), pageCount: try table.read(UInt64.self))
            guard run.pageCount > 0, run.firstPage >= nextFree, run.firstPage <= slotPages, run.pageCount <= slotPages - run.firstPage,
                  runs.isEmpty || run.firstPage > nextFree else {
                throw SnapshotError.malformed("memory slot \(slot): run of \(run.pageCount) pages at page \(run.firstPage) is out of order or outside the slot")
            }
            runs.append(run)
            nextFree = run.firstPage + run.pageCount
            dataPages += run.pageCount
        }
        guard length == 12 + runCount * 16 + dataPages * SnapshotFormat.pageSize else {
            throw SnapshotError.malformed("memory slot \(slot)'s length \(length) does not match its \(dataPages) pages")
        }
        guard try integer("memory slot \(slot)'s table checksum") == checksum.value else {
            throw SnapshotError.checksumMismatch("memory slot \(slot)'s table")
        }
        pendingMemory = (slot, runs, SnapshotChecksum())
        return .memory(slot: slot, runs: runs)
    }

    private mutating func sectionPayload(length: UInt64, limit: Int, checksum: SnapshotChecksum, what: String) throws -> [UInt8] {
        guard length <= UInt64(limit) else { throw SnapshotError.malformed("\(what) is \(length) bytes, more than \(limit)") }
        let payload = try take(Int(length), what)
        checksum.update(payload)
        guard try integer("\(what)'s checksum") == checksum.value else { throw SnapshotError.checksumMismatch(what) }
        return payload
    }

    private mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws {
        try source.read(into: buffer)
        position += UInt64(buffer.count)
    }

    private mutating func take(_ count: Int, _ what: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        do {
            try bytes.withUnsafeMutableBytes { try read(into: $0) }
        } catch SnapshotError.truncated {
            throw SnapshotError.truncated("inside \(what)")
        }
        return bytes
    }

    private mutating func integer(_ what: String) throws -> UInt64 {
        var reader = WireReader(bytes: try take(8, what))
        return try reader.read(UInt64.self)
    }
}

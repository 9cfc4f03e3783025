import GuestRAM
import MemorySlots
import VirtioCore

/// Constants of the virtio block device (virtio 1.2 §5.2).
enum VirtioBlock {
    /// Request sizes are in 512-byte sectors whatever blk_size says (§5.2.6: "sector ... multiplied by 512").
    static let sectorSize: UInt64 = 512
    static let sectorShift: UInt64 = 9
    /// `struct virtio_blk_req` header: le32 type, le32 reserved, le64 sector (§5.2.6).
    static let headerSize: UInt64 = 16
    /// `struct virtio_blk_discard_write_zeroes`: le64 sector, le32 num_sectors, le32 flags (§5.2.6).
    static let segmentSize: UInt64 = 16
    /// The device ID string of GET_ID is at most 20 bytes, NUL-padded (§5.2.6).
    static let idBytes = 20

    /// Request types (§5.2.6).
    enum RequestType {
        static let read: UInt32 = 0          // VIRTIO_BLK_T_IN
        static let write: UInt32 = 1         // VIRTIO_BLK_T_OUT
        static let flush: UInt32 = 4         // VIRTIO_BLK_T_FLUSH
        static let getID: UInt32 = 8         // VIRTIO_BLK_T_GET_ID
        static let discard: UInt32 = 11      // VIRTIO_BLK_T_DISCARD
        static let writeZeroes: UInt32 = 13  // VIRTIO_BLK_T_WRITE_ZEROES
    }

    /// Bits of the `flags` field of a discard/write-zeroes segment (§5.2.6).
    enum SegmentFlag {
        static let unmap: UInt32 = 1 << 0
    }
}

/// The status byte the device writes last (§5.2.6: VIRTIO_BLK_S_*).
enum BlockStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}

/// One range of a discard or write-zeroes request, already checked against the limits.
struct BlockSegment: Equatable, Sendable {
    let sector: UInt64
    let sectorCount: UInt32
    /// Write-zeroes only: the driver allows the device to deallocate the range.
    let unmap: Bool

    var byteOffset: UInt64 { sector << VirtioBlock.sectorShift }
    var byteLength: UInt64 { UInt64(sectorCount) << VirtioBlock.sectorShift }
}

/// What the parser must know about the device to judge a request.
struct BlockRequestLimits: Equatable, Sendable {
    struct SegmentLimits: Equatable, Sendable {
        /// max_discard_sectors / max_write_zeroes_sectors: the most sectors in one segment.
        let maxSectors: UInt32
        /// max_discard_seg / max_write_zeroes_seg: the most segments in one request.
        let maxSegments: UInt32
    }

    let capacitySectors: UInt64
    let readOnly: Bool
    /// Nil when VIRTIO_BLK_F_DISCARD is not offered.
    let discard: SegmentLimits?
    /// Nil when VIRTIO_BLK_F_WRITE_ZEROES is not offered.
    let writeZeroes: SegmentLimits?
}

/// A request that failed validation: a guest fault. It fails that request only.
enum BlockRequestError: Error, Equatable, CustomStringConvertible {
    /// A buffer whose end does not fit in 64 bits (the walker's check, §2.7.5, repeated for safety).
    case bufferOverflow(GuestAddress, length: UInt32)
    /// No device-writable byte to put the status in (§5.2.6: the request ends with `u8 status`).
    case missingStatus
    /// Fewer than 16 device-readable bytes (§5.2.6: the request starts with the 16-byte header).
    case headerTooShort(readable: UInt64)
    /// A type this device does not implement or did not offer (§5.2.6.2: status VIRTIO_BLK_S_UNSUPP).
    case unsupportedType(UInt32)
    /// IN/OUT data not a multiple of 512 bytes (§5.2.6.1).
    case dataLengthNotSectorMultiple(UInt64)
    /// Bytes in a direction the request type does not use (§5.2.6: the layout of each request type).
    case unexpectedData(readable: UInt64, writable: UInt64)
    /// `sector + sectors` overflows or exceeds the capacity (§5.2.6.1: a driver MUST NOT submit
    /// a request which would cause a read or write beyond capacity).
    case beyondCapacity(sector: UInt64, sectors: UInt64)
    /// OUT on a read-only device (§5.2.6.2: status VIRTIO_BLK_S_IOERR, no data written).
    case readOnly
    /// GET_ID with fewer than 20 data bytes (§5.2.6: the ID string is up to 20 bytes).
    case idBufferTooShort(UInt64)
    /// Discard/write-zeroes payload empty or not a whole number of 16-byte segments (§5.2.6).
    case malformedSegments(length: UInt64)
    /// More segments than max_discard_seg / max_write_zeroes_seg (§5.2.4, §5.2.6.1).
    case tooManySegments(UInt64, maximum: UInt32)
    /// A segment longer than max_discard_sectors / max_write_zeroes_sectors (§5.2.4, §5.2.6.1).
    case tooManySectors(UInt32, maximum: UInt32)
    /// Reserved flag bits set, or unmap on a discard (§5.2.6.2: status VIRTIO_BLK_S_UNSUPP).
    case unsupportedFlags(UInt32)
    /// Reading the header or segments from guest memory failed.
    case guestMemory(GuestMemoryError)

    /// The status byte this failure reports to the driver.
    var status: BlockStatus {
        switch self {
        case .unsupportedType, .unsupportedFlags: .unsupported
        default: .ioError
        }
    }

    var description: String {
        switch self {
        case .bufferOverflow(let address, let length): "buffer \(address)+\(length) overflows"
        case .missingStatus: "no device-writable byte for the status"
        case .headerTooShort(let readable): "header needs 16 readable bytes, chain has \(readable)"
        case .unsupportedType(let type): "unsupported request type \(type)"
        case .dataLengthNotSectorMultiple(let length): "data length \(length) is not a multiple of 512"
        case .unexpectedData(let readable, let writable):
            "unexpected data for this request type (\(readable) readable, \(writable) writable bytes)"
        case .beyondCapacity(let sector, let sectors): "sectors \(sector)+\(sectors) are beyond the capacity"
        case .readOnly: "write to a read-only disk"
        case .idBufferTooShort(let length): "GET_ID buffer of \(length) bytes, 20 needed"
        case .malformedSegments(let length): "segment payload of \(length) bytes is not whole 16-byte segments"
        case .tooManySegments(let count, let maximum): "\(count) segments, at most \(maximum) allowed"
        case .tooManySectors(let count, let maximum): "segment of \(count) sectors, at most \(maximum) allowed"
        case .unsupportedFlags(let flags): "unsupported segment flags 0x\(String(flags, radix: 16))"
        case .guestMemory(let error): error.description
        }
    }
}

/// A parsed virtio-blk request (virtio 1.2 §5.2.6). Data is described as guest ranges;
/// nothing is copied until the backend executes it.
struct BlockRequest: Equatable, Sendable {
    enum Operation: Equatable, Sendable {
        /// VIRTIO_BLK_T_IN: read from `sector` into the device-writable `data`.
        case read(sector: UInt64, data: [DescriptorBuffer])
        /// VIRTIO_BLK_T_OUT: write the device-readable `data` at `sector`.
        case write(sector: UInt64, data: [DescriptorBuffer])
        case flush
        /// VIRTIO_BLK_T_GET_ID: the ID string goes into `data` (at least 20 bytes).
        case getID(data: [DescriptorBuffer])
        case discard([BlockSegment])
        case writeZeroes([BlockSegment])
    }

    let operation: Operation
    /// Where the status byte goes: the last device-writable byte of the chain (§5.2.6).
    let status: GuestAddress

    /// Bytes of data the operation writes into device-writable buffers when it succeeds
    /// (for the used length, status byte not included).
    var writableDataLength: UInt64 {
        switch operation {
        case .read(_, let data): data.reduce(0) { $0 + UInt64($1.length) }
        case .getID: UInt64(VirtioBlock.idBytes)   // only the ID itself is written
        default: 0
        }
    }

    // MARK: Parsing

    /// The guest address of the status byte: the last byte of the device-writable part
    /// (§5.2.6; it may share a buffer with data). Nil if the chain has no writable byte.
    static func statusAddress(of chain: DescriptorChain) -> GuestAddress? {
        guard let last = chain.writable.last(where: { $0.length > 0 }) else { return nil }
        return last.address.adding(UInt64(last.length) - 1)
    }

    /// Parses and validates `chain`. Reads the header and any segments through `memory`
    /// only; never touches data buffers.
    static func parse(
        _ chain: DescriptorChain, memory: GuestMemory, limits: BlockRequestLimits
    ) throws(BlockRequestError) -> BlockRequest {
        for buffer in chain.buffers where buffer.address.adding(UInt64(buffer.length)) == nil {
            throw .bufferOverflow(buffer.address, length: buffer.length)
        }
        let readable = chain.readableLength
        let writable = chain.writableLength
        // §5.2.6: `u8 status` is the last device-writable byte.
        guard let status = statusAddress(of: chain) else { throw .missingStatus }
        // §5.2.6: le32 type, le32 reserved, le64 sector, device-readable, possibly split over buffers.
        guard readable >= VirtioBlock.headerSize else { throw .headerTooShort(readable: readable) }
        let (type, sector) = try readHeader(chain.readable, memory: memory)

        let payload = readable - VirtioBlock.headerSize   // device-readable bytes after the header
        let writableData = writable - 1                  // device-writable bytes before the status

        switch type {
        case VirtioBlock.RequestType.read:
            // §5.2.6: IN data is device-writable; nothing readable follows the header.
            guard payload == 0 else { throw .unexpectedData(readable: payload, writable: writableData) }
            try checkTransfer(sector: sector, length: writableData, limits: limits)
            return BlockRequest(
                operation: .read(sector: sector, data: chain.writable.ranges(from: 0, count: writableData)),
                status: status)

        case VirtioBlock.RequestType.write:
            // §5.2.6: OUT data is device-readable; only the status is device-writable.
            guard writableData == 0 else { throw .unexpectedData(readable: payload, writable: writableData) }
            // §5.2.6.2: a device offering VIRTIO_BLK_F_RO fails writes with IOERR and writes nothing.
            guard !limits.readOnly else { throw .readOnly }
            try checkTransfer(sector: sector, length: payload, limits: limits)
            return BlockRequest(
                operation: .write(
                    sector: sector,
                    data: chain.readable.ranges(from: VirtioBlock.headerSize, count: payload)),
                status: status)

        case VirtioBlock.RequestType.flush:
            // §5.2.6: a flush carries no data (the sector field is unused).
            guard payload == 0, writableData == 0 else {
                throw .unexpectedData(readable: payload, writable: writableData)
            }
            return BlockRequest(operation: .flush, status: status)

        case VirtioBlock.RequestType.getID:
            // §5.2.6: the ID string (up to 20 bytes, NUL-padded) goes to device-writable data.
            guard payload == 0 else { throw .unexpectedData(readable: payload, writable: writableData) }
            guard writableData >= UInt64(VirtioBlock.idBytes) else { throw .idBufferTooShort(writableData) }
            return BlockRequest(
                operation: .getID(data: chain.writable.ranges(from: 0, count: writableData)),
                status: status)

        case VirtioBlock.RequestType.discard:
            // §5.2.3: without VIRTIO_BLK_F_DISCARD offered the type is unsupported (§5.2.6.2: UNSUPP).
            guard let segmentLimits = limits.discard else { throw .unsupportedType(type) }
            let segments = try parseSegments(
                chain, payload: payload, writableData: writableData, limits: segmentLimits,
                capacitySectors: limits.capacitySectors, memory: memory, allowUnmap: false)
            return BlockRequest(operation: .discard(segments), status: status)

        case VirtioBlock.RequestType.writeZeroes:
            guard let segmentLimits = limits.writeZeroes else { throw .unsupportedType(type) }
            let segments = try parseSegments(
                chain, payload: payload, writableData: writableData, limits: segmentLimits,
                capacitySectors: limits.capacitySectors, memory: memory, allowUnmap: true)
            return BlockRequest(operation: .writeZeroes(segments), status: status)

        default:
            // §5.2.6.2: unknown types complete with VIRTIO_BLK_S_UNSUPP.
            throw .unsupportedType(type)
        }
    }

    /// IN/OUT: whole sectors (§5.2.6.1) and inside the capacity, overflow-checked (§5.2.6.1).
    private static func checkTransfer(
        sector: UInt64, length: UInt64, limits: BlockRequestLimits
    ) throws(BlockRequestError) {
        guard length % VirtioBlock.sectorSize == 0 else { throw .dataLengthNotSectorMultiple(length) }
        try checkRange(sector: sector, sectors: length >> VirtioBlock.sectorShift, capacity: limits.capacitySectors)
    }

    private static func checkRange(sector: UInt64, sectors: UInt64, capacity: UInt64) throws(BlockRequestError) {
        let (end, overflow) = sector.addingReportingOverflow(sectors)
        guard !overflow, end <= capacity else { throw .beyondCapacity(sector: sector, sectors: sectors) }
    }

    /// Discard and write-zeroes payloads: an array of `virtio_blk_discard_write_zeroes` (§5.2.6).
    private static func parseSegments(
        _ chain: DescriptorChain, payload: UInt64, writableData: UInt64,
        limits: BlockRequestLimits.SegmentLimits, capacitySectors: UInt64,
        memory: GuestMemory, allowUnmap: Bool
    ) throws(BlockRequestError) -> [BlockSegment] {
        // §5.2.6: only the status is device-writable.
        guard writableData == 0 else { throw .unexpectedData(readable: payload, writable: writableData) }
        guard payload > 0, payload % VirtioBlock.segmentSize == 0 else { throw .malformedSegments(length: payload) }
        let count = payload / VirtioBlock.segmentSize
        // §5.2.6.1: the driver MUST NOT exceed max_discard_seg / max_write_zeroes_seg. Checked
        // before reading, so a hostile count never makes us copy more than the limit allows.
        guard count <= UInt64(limits.maxSegments) else { throw .tooManySegments(count, maximum: limits.maxSegments) }
        let bytes = try readStream(chain.readable, from: VirtioBlock.headerSize, count: Int(payload), memory: memory)
        var segments: [BlockSegment] = []
        segments.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let base = index * Int(VirtioBlock.segmentSize)
            let sector = littleEndian(UInt64.self, bytes, at: base)
            let sectorCount = littleEndian(UInt32.self, bytes, at: base + 8)
            let flags = littleEndian(UInt32.self, bytes, at: base + 12)
            // §5.2.6.2: UNSUPP if any unknown flag is set, and for a discard with unmap set.
            let allowed = allowUnmap ? VirtioBlock.SegmentFlag.unmap : 0
            guard flags & ~allowed == 0 else { throw .unsupportedFlags(flags) }
            // §5.2.6.1: num_sectors MUST NOT exceed max_discard_sectors / max_write_zeroes_sectors.
            guard sectorCount <= limits.maxSectors else {
                throw .tooManySectors(sectorCount, maximum: limits.maxSectors)
            }
            try checkRange(sector: sector, sectors: UInt64(sectorCount), capacity: capacitySectors)
            segments.append(BlockSegment(
                sector: sector, sectorCount: sectorCount, unmap: flags & VirtioBlock.SegmentFlag.unmap != 0))
        }
        return segments
    }

    // MARK: Byte streams over buffers

    /// The 16-byte header at the start of the readable stream, copied out once, into the
    /// stack (each request reads one: an array for it was a heap allocation per request).
    private static func readHeader(
        _ buffers: ArraySlice<DescriptorBuffer>, memory: GuestMemory
    ) throws(BlockRequestError) -> (type: UInt32, sector: UInt64) {
        var words: (typeAndReserved: UInt64, sector: UInt64) = (0, 0)
        var failure: GuestMemoryError?
        withUnsafeMutableBytes(of: &words) { destination in
            // SAFETY: copyBytes writes exactly destination.count (16) bytes; the caller checked
            // that the readable buffers hold at least that many.
            do throws(GuestMemoryError) { try buffers.copyBytes(from: 0, into: destination, memory: memory) } catch {
                failure = error
            }
        }
        if let failure { throw .guestMemory(failure) }
        return (UInt32(truncatingIfNeeded: UInt64(littleEndian: words.typeAndReserved)), UInt64(littleEndian: words.sector))
    }

    /// Copies bytes `[start, start + count)` of the readable stream out of guest memory, once.
    private static func readStream(
        _ buffers: ArraySlice<DescriptorBuffer>, from start: UInt64, count: Int, memory: GuestMemory
    ) throws(BlockRequestError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: GuestMemoryError?
        // SAFETY: copyBytes writes exactly destination.count (= count) bytes, checked against the buffers.
        bytes.withUnsafeMutableBytes { destination in
            do throws(GuestMemoryError) { try buffers.copyBytes(from: start, into: destination, memory: memory) } catch {
                failure = error
            }
        }
        if let failure { throw .guestMemory(failure) }
        return bytes
    }

    private static func littleEndian<Value: FixedWidthInteger>(_ type: Value.Type, _ bytes: [UInt8], at offset: Int) -> Value {
        var value: Value = 0
        for index in 0..<(Value.bitWidth / 8) {
            value |= Value(bytes[offset + index]) << (8 * index)
        }
        return value
    }
}

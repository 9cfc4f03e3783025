import Glibc
import BlockDeviceShape
import GuestRAM
import IPC
import VirtioCore

/// Feature bits of the block device (virtio 1.2 §5.2.3).
enum VirtioBlockFeature {
    static let sizeMax: UInt64 = 1 << 1
    static let segMax: UInt64 = 1 << 2
    static let geometry: UInt64 = 1 << 4
    static let readOnly: UInt64 = 1 << 5
    static let blockSize: UInt64 = 1 << 6
    static let flush: UInt64 = 1 << 9
    static let topology: UInt64 = 1 << 10
    static let configWCE: UInt64 = 1 << 11
    static let multiQueue: UInt64 = 1 << 12
    static let discard: UInt64 = 1 << 13
    static let writeZeroes: UInt64 = 1 << 14
}

/// Counters for logging and `vmctl status`; never reset while the device lives.
struct BlockDeviceCounters: Equatable, Sendable {
    var requests = 0
    var reads = 0
    var writes = 0
    var flushes = 0
    var getIDs = 0
    var discards = 0
    var writeZeroes = 0
    var bytesRead: UInt64 = 0
    var bytesWritten: UInt64 = 0
    /// Requests the parser refused with VIRTIO_BLK_S_IOERR (guest faults).
    var malformed = 0
    /// Requests answered VIRTIO_BLK_S_UNSUPP (unknown type, unknown flags).
    var unsupported = 0
    /// Data buffers outside guest RAM or not writable, found while executing (guest faults).
    var guestMemoryErrors = 0
    /// Backend failures (host errors), answered VIRTIO_BLK_S_IOERR.
    var ioErrors = 0
    /// Chains with no usable status byte: nothing written, used length 0.
    var dropped = 0
    /// Requests answered (or dropped): `requests - completed` are in flight.
    var completed = 0

    var errors: Int { malformed + unsupported + guestMemoryErrors + ioErrors + dropped }
}

/// A configuration the device model refuses (host side, reported at startup).
enum BlockDeviceConfigurationError: Error, Equatable, CustomStringConvertible {
    case serialTooLong(Int)
    case serialNotASCII
    case queueCount(Int)

    var description: String {
        switch self {
        case .queueCount(let count): "\(count) request queues, 1 to \(DeviceShape.maximumBlockQueues) allowed"
        case .serialTooLong(let count): "disk serial is \(count) bytes, at most 20 allowed"
        case .serialNotASCII: "disk serial must be printable ASCII"
        }
    }
}

/// The virtio block device as the transport sees it: features, configuration space,
/// queue shape, and one call per descriptor chain. Single-threaded: the device
/// process's event loop owns it (or one worker, each worker having its own).
final class BlockDeviceModel {
    static let maximumQueueSize = DeviceShape.blockQueueSize
    /// seg_max: a chain is at most queue-size descriptors (§2.7.5.3.1), two of which are
    /// the header and the status.
    static let segmentsMax = UInt32(maximumQueueSize) - 2
    /// size_max: the largest single data segment we advertise.
    static let segmentSizeMax: UInt32 = 1 << 20
    /// Discard and write-zeroes limits (§5.2.4): 2 GiB per segment, 32 segments per request.
    static let maxDiscardSectors: UInt32 = 1 << 22
    static let maxDiscardSegments: UInt32 = 32
    /// In 512-byte sectors: 4 KiB, the usual block of the host file system.
    static let discardSectorAlignment: UInt32 = 8
    static let maxWriteZeroesSectors: UInt32 = 1 << 22
    static let maxWriteZeroesSegments: UInt32 = 32

    let backend: BlockBackend
    /// The ID string of GET_ID: up to 20 ASCII bytes, NUL-padded to 20 (§5.2.6).
    let serial: [UInt8]
    let limits: BlockRequestLimits
    let deviceFeatures: UInt64
    let configSpace: [UInt8]
    /// Request queues: VIRTIO_BLK_F_MQ is always offered, with this in num_queues.
    let queueCount: Int
    var maximumQueueSize: UInt16 { Self.maximumQueueSize }

    /// Written by the model only (here, and in BlockDeviceModel+Ring.swift).
    var counters = BlockDeviceCounters()
    /// Where `counters` are published for vmd (vmctl stats), in this model's region.
    var published: (page: CounterPage, region: Int)?
    /// The iovecs of the request being served, reused: its capacity stays, so a request
    /// costs no allocation for them.
    private var vectors: [iovec] = []
    /// Called with a one-line description of each failed request; the event loop passes a
    /// rate-limited logger (design §7).
    var onFailure: ((String) -> Void)?

    init(backend: BlockBackend, serial: String = "", queueCount: Int = 1) throws(BlockDeviceConfigurationError) {
        guard (1...DeviceShape.maximumBlockQueues).contains(queueCount) else { throw .queueCount(queueCount) }
        self.queueCount = queueCount
        let bytes = Array(serial.utf8)
        guard bytes.count <= VirtioBlock.idBytes else { throw .serialTooLong(bytes.count) }
        guard bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else { throw .serialNotASCII }
        self.backend = backend
        self.serial = bytes + [UInt8](repeating: 0, count: VirtioBlock.idBytes - bytes.count)

        let capacitySectors = backend.capacityBytes >> VirtioBlock.sectorShift
        let writable = !backend.readOnly
        limits = BlockRequestLimits(
            capacitySectors: capacitySectors,
            readOnly: backend.readOnly,
            discard: writable ? .init(maxSectors: Self.maxDiscardSectors, maxSegments: Self.maxDiscardSegments) : nil,
            writeZeroes: writable
                ? .init(maxSectors: Self.maxWriteZeroesSectors, maxSegments: Self.maxWriteZeroesSegments) : nil)

        var features = VirtioFeature.version1 | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors
            | VirtioBlockFeature.sizeMax | VirtioBlockFeature.segMax | VirtioBlockFeature.blockSize
            | VirtioBlockFeature.flush | VirtioBlockFeature.multiQueue
        // GET_ID has no feature bit in virtio 1.2; the request type is always accepted.
        features |= backend.readOnly
            ? VirtioBlockFeature.readOnly
            : VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes
        deviceFeatures = features
        configSpace = Self.makeConfigSpace(capacitySectors: capacitySectors, queueCount: queueCount)
    }

    // MARK: Configuration space

    /// `struct virtio_blk_config` (virtio 1.2 §5.2.4), little-endian, at the spec's offsets.
    static let configSpaceSize = 72

    private static func makeConfigSpace(capacitySectors: UInt64, queueCount: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: configSpaceSize)
        func put<Value: FixedWidthInteger>(_ value: Value, at offset: Int) {
            for index in 0..<(Value.bitWidth / 8) {
                bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index))
            }
        }
        put(capacitySectors, at: 0)             // le64 capacity (512-byte sectors)
        put(segmentSizeMax, at: 8)              // le32 size_max
        put(segmentsMax, at: 12)                // le32 seg_max
        // 16: geometry (le16 cylinders, u8 heads, u8 sectors): zero, GEOMETRY not offered
        put(UInt32(512), at: 20)                // le32 blk_size
        // 24: topology (u8 physical_block_exp, u8 alignment_offset, le16 min_io_size,
        //     le32 opt_io_size): zero, TOPOLOGY not offered
        put(UInt8(0), at: 32)                   // u8 writeback: writethrough (CONFIG_WCE not offered)
        // 33: u8 unused0
        put(UInt16(queueCount), at: 34)         // le16 num_queues
        put(maxDiscardSectors, at: 36)          // le32 max_discard_sectors
        put(maxDiscardSegments, at: 40)         // le32 max_discard_seg
        put(discardSectorAlignment, at: 44)     // le32 discard_sector_alignment
        put(maxWriteZeroesSectors, at: 48)      // le32 max_write_zeroes_sectors
        put(maxWriteZeroesSegments, at: 52)     // le32 max_write_zeroes_seg
        // u8 write_zeroes_may_unmap: an unmapping write-zeroes punches a hole (§5.2.6.2: set
        // iff a write-zeroes can deallocate).
        put(UInt8(1), at: 56)
        // 57: u8 unused1[3]; 60..72: secure erase fields, zero (SECURE_ERASE not offered)
        return bytes
    }

    // MARK: Requests

    /// Parses and executes one chain, writes its status byte and returns the used length:
    /// the bytes written into device-writable buffers, status included. A chain with no
    /// usable status byte gets nothing written and 0.
    func process(_ chain: DescriptorChain, memory: GuestMemory) -> UInt32 {
        counters.requests += 1
        defer {
            counters.completed += 1
            publishCounters()
        }
        // §5.2.6: the status is the last device-writable byte; without one nothing can be reported.
        guard let statusAddress = BlockRequest.statusAddress(of: chain) else {
            counters.dropped += 1
            onFailure?("virtio-blk: request \(chain.head) dropped: \(BlockRequestError.missingStatus)")
            return 0
        }

        var status = BlockStatus.ok
        var dataWritten: UInt64 = 0
        do {
            let request = try BlockRequest.parse(chain, memory: memory, limits: limits)
            do {
                dataWritten = try execute(request, memory: memory)
            } catch let error as GuestMemoryError {
                counters.guestMemoryErrors += 1
                status = .ioError
                onFailure?("virtio-blk: request \(chain.head) failed: \(error)")
            } catch {
                counters.ioErrors += 1
                status = .ioError
                onFailure?("virtio-blk: request \(chain.head) failed: \(error)")
            }
        } catch {
            if error.status == .unsupported { counters.unsupported += 1 } else { counters.malformed += 1 }
            status = error.status
            onFailure?("virtio-blk: request \(chain.head) refused: \(error)")
        }
        if status != .ok { dataWritten = 0 }

        do {
            try memory.write(status.rawValue, at: statusAddress)
        } catch {
            counters.dropped += 1
            onFailure?("virtio-blk: request \(chain.head): status byte not writable: \(error)")
            return 0
        }
        return UInt32(clamping: dataWritten + 1)
    }

    /// Copies the counters to the page vmd reads: a few stores a request, by this model's one thread.
    func publishCounters() {
        guard let (page, region) = published else { return }
        func put(_ counter: BlockCounter, _ value: Int) { page.store(counter.slot(region: region), UInt64(value)) }
        put(.reads, counters.reads)
        put(.writes, counters.writes)
        put(.flushes, counters.flushes)
        put(.discards, counters.discards)
        put(.writeZeroes, counters.writeZeroes)
        put(.errors, counters.errors)
        put(.started, counters.requests)
        put(.completed, counters.completed)
        page.store(BlockCounter.bytesRead.slot(region: region), counters.bytesRead)
        page.store(BlockCounter.bytesWritten.slot(region: region), counters.bytesWritten)
    }

    /// Runs a validated request on the backend; returns the data bytes written to the guest.
    private func execute(_ request: BlockRequest, memory: GuestMemory) throws -> UInt64 {
        switch request.operation {
        case .read(let sector, let data):
            try gather(data, forWriting: true, memory: memory)
            let length = request.writableDataLength
            try backend.read(into: &vectors, at: sector << VirtioBlock.sectorShift)
            counters.reads += 1
            counters.bytesRead += length
            return length

        case .write(let sector, let data):
            try gather(data, forWriting: false, memory: memory)
            try backend.write(from: &vectors, at: sector << VirtioBlock.sectorShift)
            counters.writes += 1
            counters.bytesWritten += data.reduce(0) { $0 + UInt64($1.length) }
            return 0

        case .flush:
            try backend.flush()
            counters.flushes += 1
            return 0

        case .getID(let data):
            // The 20-byte NUL-padded ID into the first 20 data bytes; the parser checked there are 20.
            // SAFETY: the serial's at most 20 bytes, alive for the guarded copy into the checked data buffers.
            try serial.prefix(VirtioBlock.idBytes).withUnsafeBytes { try data.writeBytes($0, at: 0, memory: memory) }
            counters.getIDs += 1
            return request.writableDataLength

        case .discard(let segments):
            for segment in segments {
                try backend.discard(offset: segment.byteOffset, length: segment.byteLength)
            }
            counters.discards += 1
            return 0

        case .writeZeroes(let segments):
            for segment in segments {
                try backend.writeZeroes(offset: segment.byteOffset, length: segment.byteLength, unmap: segment.unmap)
            }
            counters.writeZeroes += 1
            return 0
        }
    }

    /// Fills `vectors` with the guest slices of `data`, empty ones left out.
    private func gather(_ data: [DescriptorBuffer], forWriting: Bool, memory: GuestMemory) throws(GuestMemoryError) {
        vectors.removeAll(keepingCapacity: true)
        for range in data {
            try memory.forEachSlice(at: range.address, length: UInt64(range.length), forWriting: forWriting) { slice in
                if slice.count > 0 { vectors.append(slice.iovec) }
            }
        }
    }
}

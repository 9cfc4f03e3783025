import XCTest
@testable import GuestRAM
@testable import MemorySlots
@testable import VirtioCore
@testable import VirtioTestSupport

/// Split virtqueue (virtio 1.2 §2.7): the device side against `VirtqueueDriver`.
final class VirtqueueTests: XCTestCase {
    private static let ramSize: UInt64 = 0x20_0000  // 2 MiB at 0
    private static let queueBase = GuestAddress(0x1000)
    private static let data = GuestAddress(0x4_0000)
    private static let table = GuestAddress(0x8_0000)
    private static let bothFeatures = VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors

    private func ram(_ slots: [SlotDescriptor]? = nil) throws -> GuestMemory {
        try GuestMemory.anonymous(slots ?? [SlotDescriptor(guestBase: GuestAddress(0), size: Self.ramSize)])
    }

    private func makeQueue(
        size: UInt16 = 8,
        features: UInt64 = bothFeatures,
        memory: GuestMemory? = nil,
        maximumChainBytes: UInt32 = .max
    ) throws -> (VirtqueueDriver, SplitVirtqueue) {
        let memory = try memory ?? ram()
        let driver = try VirtqueueDriver(memory: memory, base: Self.queueBase, size: size)
        let queue = SplitVirtqueue(
            configuration: try driver.configuration(maximumSize: 256),
            memory: memory, features: features, maximumChainBytes: maximumChainBytes
        )
        return (driver, queue)
    }

    private func readable(_ offset: UInt64, _ length: UInt32) -> VirtqueueDriver.Buffer {
        .init(address: GuestAddress(Self.data.value + offset), length: length, writable: false)
    }

    private func writable(_ offset: UInt64, _ length: UInt32) -> VirtqueueDriver.Buffer {
        .init(address: GuestAddress(Self.data.value + offset), length: length, writable: true)
    }

    private func buffer(_ offset: UInt64, _ length: UInt32) -> DescriptorBuffer {
        DescriptorBuffer(address: GuestAddress(Self.data.value + offset), length: length)
    }

    private func tableEntry(_ index: UInt64) -> GuestAddress {
        GuestAddress(Self.table.value + 16 * index)
    }

    /// Publishes what the driver wrote, pops one entry and expects `.malformed(head, error)`,
    /// completes it, then proves the queue still serves a good chain.
    private func assertMalformed(
        _ driver: inout VirtqueueDriver, _ queue: inout SplitVirtqueue, head: UInt16,
        _ expected: VirtqueueError, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try driver.publish()
        let entry = try queue.popAvailable()
        XCTAssertEqual(entry, .malformed(head: head, expected), file: file, line: line)
        XCTAssertFalse(expected.isQueueFault, file: file, line: line)
        try queue.pushUsed(head: head, length: 0)
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(head), length: 0), file: file, line: line)

        let good = try driver.add([readable(0, 64), writable(0x100, 1)])
        try driver.publish()
        XCTAssertEqual(
            try queue.popAvailable(),
            .chain(DescriptorChain(head: good, readable: [buffer(0, 64)], writable: [buffer(0x100, 1)])),
            "the queue keeps working after a malformed chain", file: file, line: line
        )
        XCTAssertNil(try queue.popAvailable(), file: file, line: line)
    }

    // MARK: Good chains

    func testEmptyQueueAndUnpublishedChainsPopNothing() throws {
        var (driver, queue) = try makeQueue()
        XCTAssertNil(try queue.popAvailable())
        try driver.add([readable(0, 16)])
        XCTAssertNil(try queue.popAvailable(), "added but not published")
        try driver.publish()
        XCTAssertNotNil(try queue.popAvailable())
        XCTAssertNil(try queue.popAvailable())
        XCTAssertEqual(queue.lastAvailableIndex, 1)
    }

    func testDirectChainWithReadableThenWritableBuffers() throws {
        var (driver, queue) = try makeQueue()
        let head = try driver.add([readable(0, 16), readable(0x100, 512), writable(0x400, 1), writable(0x800, 0x1000)])
        try driver.publish()
        guard case .chain(let chain) = try queue.popAvailable() else { return XCTFail("expected a chain") }
        XCTAssertEqual(chain.head, head)
        XCTAssertEqual(Array(chain.readable), [buffer(0, 16), buffer(0x100, 512)])
        XCTAssertEqual(Array(chain.writable), [buffer(0x400, 1), buffer(0x800, 0x1000)])
        XCTAssertEqual(chain.readableLength, 528)
        XCTAssertEqual(chain.writableLength, 0x1001)
    }

    func testAChainKeptByTheDeviceIsNotChangedByTheNextOne() throws {
        // The queue reuses one buffer for the chains it walks; a chain the device holds on to
        // (virtio-net keeps receive chains) must keep its own buffers.
        var (driver, queue) = try makeQueue()
        try driver.add([readable(0, 16), writable(0x100, 32)])
        try driver.add([writable(0x400, 64), writable(0x800, 128), writable(0xC00, 256)])
        try driver.publish()
        guard case .chain(let first) = try queue.popAvailable() else { return XCTFail("expected a chain") }
        guard case .chain(let second) = try queue.popAvailable() else { return XCTFail("expected a chain") }
        XCTAssertEqual(Array(first.readable), [buffer(0, 16)])
        XCTAssertEqual(Array(first.writable), [buffer(0x100, 32)])
        XCTAssertEqual(Array(second.readable), [])
        XCTAssertEqual(Array(second.writable), [buffer(0x400, 64), buffer(0x800, 128), buffer(0xC00, 256)])
    }

    func testIndirectChain() throws {
        var (driver, queue) = try makeQueue()
        let head = try driver.add(indirect: [readable(0, 16), writable(0x100, 8), writable(0x200, 1)], tableAt: Self.table)
        try driver.publish()
        XCTAssertEqual(
            try queue.popAvailable(),
            .chain(DescriptorChain(head: head, readable: [buffer(0, 16)], writable: [buffer(0x100, 8), buffer(0x200, 1)]))
        )
    }

    func testDirectDescriptorsFollowedByAnIndirectTable() throws {
        // §2.7.5.3.2: zero or more direct descriptors, then one indirect one.
        var (driver, queue) = try makeQueue()
        let head = try driver.add([readable(0, 16)], indirect: [readable(0x100, 32), writable(0x200, 4)], tableAt: Self.table)
        try driver.publish()
        XCTAssertEqual(
            try queue.popAvailable(),
            .chain(DescriptorChain(head: head, readable: [buffer(0, 16), buffer(0x100, 32)], writable: [buffer(0x200, 4)]))
        )
    }

    func testWriteFlagOnTheIndirectDescriptorIsIgnored() throws {
        // §2.7.5.3.2: the device ignores VIRTQ_DESC_F_WRITE on the descriptor naming the table.
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 16, flags: 0, next: 0)
        try driver.writeDescriptor(3, address: Self.table.value, length: 16,
                                   flags: VirtqueueDescriptorFlags.indirect | VirtqueueDescriptorFlags.write, next: 0)
        try driver.makeAvailable(head: 3)
        try driver.publish()
        XCTAssertEqual(try queue.popAvailable(), .chain(DescriptorChain(head: 3, readable: [buffer(0, 16)], writable: [])))
    }

    func testZeroLengthDescriptorsAreAccepted() throws {
        var (driver, queue) = try makeQueue()
        let head = try driver.add([readable(0, 0), writable(0x100, 0)])
        try driver.publish()
        XCTAssertEqual(try queue.popAvailable(), .chain(DescriptorChain(head: head, readable: [buffer(0, 0)], writable: [buffer(0x100, 0)])))
    }

    func testChainOfExactlyQueueSizeDescriptorsIsAccepted() throws {
        var (driver, queue) = try makeQueue(size: 8)
        let head = try driver.add((0..<8).map { readable(UInt64($0) * 0x10, 0x10) })
        try driver.publish()
        guard case .chain(let chain) = try queue.popAvailable() else { return XCTFail("expected a chain") }
        XCTAssertEqual(chain.head, head)
        XCTAssertEqual(chain.readable.count, 8)
    }

    func testLargestIndirectTableIsAccepted() throws {
        // 32768 entries (512 KiB): the largest we allow; only the first is used.
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 4, flags: 0, next: 0)
        try driver.writeDescriptor(0, address: Self.table.value, length: 32768 * 16, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try driver.publish()
        XCTAssertEqual(try queue.popAvailable(), .chain(DescriptorChain(head: 0, readable: [buffer(0, 4)], writable: [])))
    }

    func testSeveralChainsInFlightAndTheUsedRing() throws {
        var (driver, queue) = try makeQueue()
        let first = try driver.add([readable(0, 16), writable(0x100, 16)])
        let second = try driver.add([writable(0x200, 32)])
        let third = try driver.add(indirect: [readable(0x300, 8)], tableAt: Self.table)
        try driver.publish()
        var heads: [UInt16] = []
        while let entry = try queue.popAvailable() {
            guard case .chain(let chain) = entry else { return XCTFail("unexpected \(entry)") }
            heads.append(chain.head)
        }
        XCTAssertEqual(heads, [first, second, third])
        XCTAssertEqual(Set(heads).count, 3, "three distinct heads")

        // Completed out of order: the used ring holds them in completion order.
        try queue.pushUsed(head: third, length: 0)
        XCTAssertEqual(try driver.usedIndex(), 1)
        try queue.pushUsed(head: first, length: 16)
        try queue.pushUsed(head: second, length: 32)
        XCTAssertEqual(try driver.usedIndex(), 3)
        XCTAssertEqual(queue.usedIndex, 3)
        XCTAssertEqual(try driver.usedElement(slot: 0), .init(id: UInt32(third), length: 0))
        XCTAssertEqual(try driver.usedElement(slot: 1), .init(id: UInt32(first), length: 16))
        XCTAssertEqual(try driver.usedElement(slot: 2), .init(id: UInt32(second), length: 32))
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(third), length: 0))
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(first), length: 16))
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(second), length: 32))
        XCTAssertNil(try driver.popUsed())
    }

    func testIndicesWrapPast65535() throws {
        // Four chains of two descriptors in flight per round in a queue of 8:
        // ring slots wrap every two rounds, the 16-bit indices after 16384.
        var (driver, queue) = try makeQueue(size: 8)
        let rounds = 65540 / 4 + 1
        for round in 0..<rounds {
            for slot in 0..<4 {
                try driver.add([readable(UInt64(slot) * 0x10, 0x10), writable(0x100, UInt32(round % 7))])
            }
            try driver.publish()
            for slot in 0..<4 {
                guard case .chain(let chain) = try queue.popAvailable() else {
                    return XCTFail("round \(round): expected a chain")
                }
                XCTAssertEqual(Array(chain.readable), [buffer(UInt64(slot) * 0x10, 0x10)])
                try queue.pushUsed(head: chain.head, length: UInt32(round))
            }
            XCTAssertNil(try queue.popAvailable())
            for _ in 0..<4 {
                guard let used = try driver.popUsed() else { return XCTFail("round \(round): used entry missing") }
                XCTAssertEqual(used.length, UInt32(round))
            }
        }
        let total = UInt16(truncatingIfNeeded: rounds * 4)
        XCTAssertLessThan(total, 100, "the indices wrapped")
        XCTAssertEqual(queue.lastAvailableIndex, total)
        XCTAssertEqual(queue.usedIndex, total)
        XCTAssertEqual(try driver.usedIndex(), total)
    }

    func testResetForgetsIndices() throws {
        var (driver, queue) = try makeQueue()
        try driver.add([readable(0, 1)])
        try driver.publish()
        XCTAssertNotNil(try queue.popAvailable())
        queue.reset()
        XCTAssertEqual(queue.lastAvailableIndex, 0)
        XCTAssertEqual(queue.usedIndex, 0)
        // avail.idx is still 1, so the same entry is offered again from index 0.
        XCTAssertNotNil(try queue.popAvailable())
    }

    // MARK: Notification suppression

    func testEventIndexInterruptsOnlyWhenUsedEventIsPassed() throws {
        var (driver, queue) = try makeQueue(features: Self.bothFeatures)
        for _ in 0..<6 { try driver.add([writable(0, 4)]) }
        try driver.publish()
        var heads: [UInt16] = []
        while case .chain(let chain) = try queue.popAvailable() { heads.append(chain.head) }
        XCTAssertEqual(heads.count, 6)

        XCTAssertFalse(try queue.needsInterrupt(), "nothing used yet")
        try driver.setUsedEvent(2)  // interrupt once used entry 2 is written (used.idx 2 -> 3)
        try queue.pushUsed(head: heads[0], length: 4)
        XCTAssertFalse(try queue.needsInterrupt())
        try queue.pushUsed(head: heads[1], length: 4)
        XCTAssertFalse(try queue.needsInterrupt())
        try queue.pushUsed(head: heads[2], length: 4)
        XCTAssertTrue(try queue.needsInterrupt())
        XCTAssertFalse(try queue.needsInterrupt(), "nothing new since")
        try queue.pushUsed(head: heads[3], length: 4)
        XCTAssertFalse(try queue.needsInterrupt(), "used_event already passed")
        // The driver moves used_event while the device is ahead: passed from 4 to 6.
        try driver.setUsedEvent(5)
        try queue.pushUsed(head: heads[4], length: 4)
        try queue.pushUsed(head: heads[5], length: 4)
        XCTAssertTrue(try queue.needsInterrupt())
    }

    func testEventIndexComparesWithTheLastDecisionAcrossBatches() throws {
        var (driver, queue) = try makeQueue(features: Self.bothFeatures)
        for _ in 0..<5 { try driver.add([writable(0, 4)]) }
        try driver.publish()
        var heads: [UInt16] = []
        while case .chain(let chain) = try queue.popAvailable() { heads.append(chain.head) }

        try driver.setUsedEvent(3)
        for head in heads[0..<3] { try queue.pushUsed(head: head, length: 0) }
        XCTAssertFalse(try queue.needsInterrupt(), "used.idx 0 -> 3 does not pass entry 3")
        // A second batch 3 -> 5 passes entry 3: the comparison is against the
        // index at the last decision (3), not against the last push (4).
        for head in heads[3..<5] { try queue.pushUsed(head: head, length: 0) }
        XCTAssertTrue(try queue.needsInterrupt())
    }

    /// Several chains pushed together: in order, one used.idx for all, and the EVENT_IDX
    /// decision sees the whole batch; an empty batch is nothing.
    func testChainsPushedTogetherAreUsedInOrderUnderOneIndex() throws {
        var (driver, queue) = try makeQueue(features: Self.bothFeatures)
        for _ in 0..<4 { try driver.add([writable(0, 4)]) }
        try driver.publish()
        var heads: [UInt16] = []
        while case .chain(let chain) = try queue.popAvailable() { heads.append(chain.head) }
        try driver.setUsedEvent(1)
        try queue.pushUsed(contentsOf: [])
        XCTAssertEqual(try driver.usedIndex(), 0)
        XCTAssertFalse(try queue.needsInterrupt(), "an empty batch pushed nothing")
        try queue.pushUsed(contentsOf: [(heads[2], 8), (heads[0], 4), (heads[1], 0)])
        XCTAssertEqual(try driver.usedIndex(), 3)
        XCTAssertEqual(queue.usedIndex, 3)
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(heads[2]), length: 8))
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(heads[0]), length: 4))
        XCTAssertEqual(try driver.popUsed(), .init(id: UInt32(heads[1]), length: 0))
        XCTAssertNil(try driver.popUsed())
        XCTAssertTrue(try queue.needsInterrupt(), "0 -> 3 passed used_event 1")
        try driver.setUsedEvent(5)
        try queue.pushUsed(contentsOf: [(heads[3], 0)])
        XCTAssertFalse(try queue.needsInterrupt(), "3 -> 4 does not pass 5")
    }

    func testEventIndexInterruptsWhenUsedIndexLappedTheLastDecision() throws {
        // 65536 used entries without a decision bring used.idx back to where it
        // was: modulo 2^16 nothing moved, yet the driver must hear about them.
        var (driver, queue) = try makeQueue(features: Self.bothFeatures)
        let head = try driver.add([writable(0, 4)])
        try driver.publish()
        _ = try queue.popAvailable()
        try driver.setUsedEvent(5)
        for _ in 0..<65536 { try queue.pushUsed(head: head, length: 0) }
        XCTAssertEqual(queue.usedIndex, 0)
        XCTAssertTrue(try queue.needsInterrupt())
    }

    func testEventIndexEnableWritesAvailEventAndReportsNewBuffers() throws {
        var (driver, queue) = try makeQueue(features: Self.bothFeatures)
        try driver.add([readable(0, 1)])
        try driver.add([readable(0, 1)])
        try driver.publish()
        try queue.disableNotifications()
        XCTAssertEqual(try driver.usedFlags(), 0, "EVENT_IDX does not use VIRTQ_USED_F_NO_NOTIFY")
        XCTAssertNotNil(try queue.popAvailable())
        XCTAssertTrue(try queue.enableNotifications(), "one entry still waiting")
        XCTAssertEqual(try driver.availableEvent(), 1)
        XCTAssertNotNil(try queue.popAvailable())
        XCTAssertFalse(try queue.enableNotifications())
        XCTAssertEqual(try driver.availableEvent(), 2)

        // The driver now must kick for the next entry, and not again after it.
        let before = driver.availableIndex
        try driver.add([readable(0, 1)])
        XCTAssertTrue(try driver.needsKick(since: before, eventIndex: true))
        try driver.publish()
        XCTAssertTrue(try queue.enableNotifications(), "buffer arrived while notifications were off")
        let after = driver.availableIndex
        try driver.add([readable(0, 1)])
        XCTAssertFalse(try driver.needsKick(since: after, eventIndex: true), "the device has not taken entry 2 yet")
    }

    func testNoInterruptFlagWithoutEventIndex() throws {
        var (driver, queue) = try makeQueue(features: VirtioFeature.indirectDescriptors)
        let first = try driver.add([writable(0, 4)])
        let second = try driver.add([writable(0, 4)])
        try driver.publish()
        _ = try queue.popAvailable()
        _ = try queue.popAvailable()
        try driver.setUsedEvent(100)  // ignored without EVENT_IDX
        try driver.setAvailableFlags(VirtqueueRingFlags.availableNoInterrupt)
        try queue.pushUsed(head: first, length: 4)
        XCTAssertFalse(try queue.needsInterrupt())
        try driver.setAvailableFlags(0)
        try queue.pushUsed(head: second, length: 4)
        XCTAssertTrue(try queue.needsInterrupt())
        XCTAssertFalse(try queue.needsInterrupt(), "nothing new since")
    }

    func testNoNotifyFlagWithoutEventIndex() throws {
        var (driver, queue) = try makeQueue(features: 0)
        try queue.disableNotifications()
        XCTAssertEqual(try driver.usedFlags(), VirtqueueRingFlags.usedNoNotify)
        let before = driver.availableIndex
        try driver.add([readable(0, 1)])
        XCTAssertFalse(try driver.needsKick(since: before, eventIndex: false))
        try driver.publish()
        XCTAssertTrue(try queue.enableNotifications(), "a buffer arrived while notifications were off")
        XCTAssertEqual(try driver.usedFlags(), 0)
        XCTAssertNotNil(try queue.popAvailable())
        XCTAssertFalse(try queue.enableNotifications())
        XCTAssertEqual(try driver.availableEvent(), 0, "avail_event is not written without EVENT_IDX")
    }

    // MARK: Queue faults

    func testAvailableIndexJumpPastTheQueueSizeIsAQueueFault() throws {
        var (driver, queue) = try makeQueue(size: 8)
        // Exactly `size` outstanding is legal (all heads 0 are fine descriptors).
        try driver.writeDescriptor(0, address: Self.data.value, length: 1, flags: 0, next: 0)
        try driver.setAvailableIndex(8)
        XCTAssertEqual(try queue.popAvailable(), .chain(DescriptorChain(head: 0, readable: [buffer(0, 1)], writable: [])))
        // avail.idx - last_avail = 9 - 1 is fine; 10 - 1 = 9 > 8 is not.
        try driver.setAvailableIndex(10)
        XCTAssertThrowsError(try queue.popAvailable()) {
            XCTAssertEqual($0 as? VirtqueueError, .availableIndexJump(availableIndex: 10, lastAvailable: 1, size: 8))
            XCTAssertEqual(($0 as? VirtqueueError)?.isQueueFault, true)
        }
        // Backwards is a jump too (modulo 2^16 it is far ahead).
        try driver.setAvailableIndex(0)
        XCTAssertThrowsError(try queue.popAvailable()) {
            XCTAssertEqual($0 as? VirtqueueError, .availableIndexJump(availableIndex: 0, lastAvailable: 1, size: 8))
        }
    }

    func testHeadIndexAtOrAboveQueueSizeIsAQueueFault() throws {
        var (driver, queue) = try makeQueue(size: 8)
        try driver.makeAvailable(head: 8)
        try driver.publish()
        XCTAssertThrowsError(try queue.popAvailable()) {
            XCTAssertEqual($0 as? VirtqueueError, .headOutOfRange(head: 8, size: 8))
        }
        XCTAssertEqual(queue.lastAvailableIndex, 0, "the bad entry is not consumed")
    }

    // MARK: Malformed chains

    func testNextIndexAtOrAboveQueueSize() throws {
        var (driver, queue) = try makeQueue(size: 8)
        try driver.writeDescriptor(0, address: Self.data.value, length: 8, flags: VirtqueueDescriptorFlags.next, next: 8)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .nextOutOfRange(next: 8, size: 8))
    }

    func testLoopInAChain() throws {
        var (driver, queue) = try makeQueue(size: 8)
        try driver.writeDescriptor(0, address: Self.data.value, length: 8, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(1, address: Self.data.value, length: 8, flags: VirtqueueDescriptorFlags.next, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .chainTooLong(limit: 8))
    }

    func testLoopIsCaughtAtExactlyQueueSizePlusOneDescriptors() throws {
        // A byte limit that a ninth 8-byte descriptor would break: the loop must
        // be reported before that, when the ninth descriptor is reached.
        var (driver, queue) = try makeQueue(size: 8, maximumChainBytes: 8 * 8 + 4)
        try driver.writeDescriptor(0, address: Self.data.value, length: 8, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(1, address: Self.data.value, length: 8, flags: VirtqueueDescriptorFlags.next, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .chainTooLong(limit: 8))
    }

    func testIndirectLoopIsCaughtAtExactlyTableSizePlusOneDescriptors() throws {
        var (driver, queue) = try makeQueue(maximumChainBytes: 3 * 100 + 50)
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 100, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(at: tableEntry(1), address: Self.data.value, length: 100, flags: VirtqueueDescriptorFlags.next, next: 2)
        try driver.writeDescriptor(at: tableEntry(2), address: Self.data.value, length: 100, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(0, address: Self.table.value, length: 48, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectChainTooLong(limit: 3))
    }

    func testChainLongerThanTheQueue() throws {
        // Every descriptor of a queue of 4 chained 0 -> 1 -> 2 -> 3 -> 0: the fifth is one too many.
        var (driver, queue) = try makeQueue(size: 4)
        for index: UInt16 in 0..<4 {
            try driver.writeDescriptor(index, address: Self.data.value, length: 8,
                                       flags: VirtqueueDescriptorFlags.next, next: (index + 1) % 4)
        }
        try driver.makeAvailable(head: 2)
        try assertMalformed(&driver, &queue, head: 2, .chainTooLong(limit: 4))
    }

    func testZeroLengthDescriptorsCountTowardsTheChainLimit() throws {
        var (driver, queue) = try makeQueue(size: 8)
        try driver.writeDescriptor(5, address: 0, length: 0, flags: VirtqueueDescriptorFlags.next, next: 5)
        try driver.makeAvailable(head: 5)
        try assertMalformed(&driver, &queue, head: 5, .chainTooLong(limit: 8))
    }

    func testIndirectWithoutTheFeature() throws {
        var (driver, queue) = try makeQueue(features: VirtioFeature.eventIndex)
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 4, flags: 0, next: 0)
        try driver.writeDescriptor(1, address: Self.table.value, length: 16, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 1)
        try assertMalformed(&driver, &queue, head: 1, .indirectNotNegotiated(index: 1))
    }

    func testIndirectTogetherWithNext() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 4, flags: 0, next: 0)
        try driver.writeDescriptor(0, address: Self.data.value, length: 4, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(1, address: Self.table.value, length: 16,
                                   flags: VirtqueueDescriptorFlags.indirect | VirtqueueDescriptorFlags.next, next: 2)
        try driver.writeDescriptor(2, address: Self.data.value, length: 4, flags: 0, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectWithNext(index: 1))
    }

    func testNestedIndirect() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 4, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(at: tableEntry(1), address: Self.table.value + 0x100, length: 16,
                                   flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.writeDescriptor(0, address: Self.table.value, length: 32, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .nestedIndirect(index: 1))
    }

    func testIndirectTableLengthNotAMultipleOf16() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(0, address: Self.table.value, length: 24, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectTableLength(24))
    }

    func testIndirectTableOfLengthZero() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(0, address: Self.table.value, length: 0, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectTableLength(0))
    }

    func testIndirectTableTooLarge() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(0, address: Self.table.value, length: 32769 * 16, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectTableTooLarge(entries: 32769))
    }

    func testIndirectTableOutsideRAM() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(0, address: Self.ramSize - 16, length: 32, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectTableOutsideGuestMemory(.unmapped(GuestAddress(Self.ramSize))))
    }

    func testIndirectNextOutsideTheTable() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 4, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(at: tableEntry(1), address: Self.data.value, length: 4, flags: VirtqueueDescriptorFlags.next, next: 2)
        try driver.writeDescriptor(0, address: Self.table.value, length: 32, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectNextOutOfRange(next: 2, entries: 2))
    }

    func testLoopInsideAnIndirectTable() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(at: tableEntry(0), address: Self.data.value, length: 4, flags: VirtqueueDescriptorFlags.next, next: 1)
        try driver.writeDescriptor(at: tableEntry(1), address: Self.data.value, length: 4, flags: VirtqueueDescriptorFlags.next, next: 0)
        try driver.writeDescriptor(at: tableEntry(2), address: Self.data.value, length: 4, flags: 0, next: 0)
        try driver.writeDescriptor(0, address: Self.table.value, length: 48, flags: VirtqueueDescriptorFlags.indirect, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .indirectChainTooLong(limit: 3))
    }

    func testWritableBeforeReadable() throws {
        var (driver, queue) = try makeQueue()
        let head = try driver.add([readable(0, 4), writable(0x100, 4), readable(0x200, 4)])
        try assertMalformed(&driver, &queue, head: head, .readableAfterWritable)
    }

    func testWritableBeforeReadableInsideAnIndirectTable() throws {
        var (driver, queue) = try makeQueue()
        let head = try driver.add(indirect: [writable(0x100, 4), readable(0x200, 4)], tableAt: Self.table)
        try assertMalformed(&driver, &queue, head: head, .readableAfterWritable)
    }

    func testWritableDirectDescriptorBeforeReadableIndirectOne() throws {
        var (driver, queue) = try makeQueue()
        let head = try driver.add([writable(0x100, 4)], indirect: [readable(0x200, 4)], tableAt: Self.table)
        try assertMalformed(&driver, &queue, head: head, .readableAfterWritable)
    }

    func testDescriptorBeyondRAM() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(0, address: Self.ramSize - 8, length: 16, flags: 0, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .bufferOutsideGuestMemory(.unmapped(GuestAddress(Self.ramSize))))
    }

    func testDescriptorInTheMMIOHole() throws {
        // RAM at [0, 2 MiB) and [3 MiB, 4 MiB): a gap standing in for the MMIO hole.
        let hole = GuestAddress(Self.ramSize)
        let memory = try ram([
            SlotDescriptor(guestBase: GuestAddress(0), size: Self.ramSize),
            SlotDescriptor(guestBase: GuestAddress(Self.ramSize + 0x10_0000), size: 0x10_0000),
        ])
        var (driver, queue) = try makeQueue(memory: memory)
        // Entirely inside the hole.
        try driver.writeDescriptor(0, address: hole.value + 0x1000, length: 16, flags: 0, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .bufferOutsideGuestMemory(.unmapped(GuestAddress(hole.value + 0x1000))))
        // From the end of the low slot across the hole into the high one.
        try driver.writeDescriptor(1, address: hole.value - 0x10, length: 0x10_0020, flags: VirtqueueDescriptorFlags.write, next: 0)
        try driver.makeAvailable(head: 1)
        try assertMalformed(&driver, &queue, head: 1, .bufferOutsideGuestMemory(.unmapped(hole)))
    }

    func testWritableDescriptorInReadOnlyMemory() throws {
        let memory = try ram([
            SlotDescriptor(guestBase: GuestAddress(0), size: Self.ramSize),
            SlotDescriptor(guestBase: GuestAddress(Self.ramSize), size: 0x1000, access: .readOnly),
        ])
        var (driver, queue) = try makeQueue(memory: memory)
        try driver.writeDescriptor(0, address: Self.ramSize, length: 16, flags: VirtqueueDescriptorFlags.write, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .bufferOutsideGuestMemory(.readOnly(GuestAddress(Self.ramSize))))
    }

    func testDescriptorAddressPlusLengthOverflows() throws {
        var (driver, queue) = try makeQueue()
        try driver.writeDescriptor(0, address: UInt64.max - 3, length: 8, flags: 0, next: 0)
        try driver.makeAvailable(head: 0)
        try assertMalformed(&driver, &queue, head: 0, .bufferOutsideGuestMemory(.overflow(GuestAddress(UInt64.max - 3), length: 8)))
    }

    func testChainLengthSumOverflowingUInt32() throws {
        // 4 GiB of RAM, mapped but never touched beyond the queue.
        let memory = try ram([SlotDescriptor(guestBase: GuestAddress(0), size: 1 << 32)])
        var (driver, queue) = try makeQueue(memory: memory)
        let head = try driver.add([
            .init(address: GuestAddress(0), length: 0xFFFF_F000, writable: false),
            .init(address: GuestAddress(0), length: 0x1000, writable: true),
        ])
        try assertMalformed(&driver, &queue, head: head, .chainTooLarge(total: 1 << 32, limit: .max))
    }

    func testChainLongerThanTheDeviceMaximumRequest() throws {
        var (driver, queue) = try makeQueue(maximumChainBytes: 4096)
        let fits = try driver.add([readable(0, 4000), writable(0x1000, 96)])
        try driver.publish()
        XCTAssertEqual(try queue.popAvailable(), .chain(DescriptorChain(head: fits, readable: [buffer(0, 4000)], writable: [buffer(0x1000, 96)])))
        let head = try driver.add(indirect: [readable(0, 4000), writable(0x1000, 97)], tableAt: Self.table)
        try assertMalformed(&driver, &queue, head: head, .chainTooLarge(total: 4097, limit: 4096))
    }

    // MARK: Configuration

    private func configure(
        size: UInt16 = 8, descriptorTable: UInt64 = 0x1000, availableRing: UInt64 = 0x2000,
        usedRing: UInt64 = 0x3000, maximumSize: UInt16 = 256, memory: GuestMemory
    ) -> Result<VirtqueueConfiguration, VirtqueueConfigurationError> {
        Result { () throws(VirtqueueConfigurationError) in
            try VirtqueueConfiguration(
                size: size, descriptorTable: GuestAddress(descriptorTable), availableRing: GuestAddress(availableRing),
                usedRing: GuestAddress(usedRing), maximumSize: maximumSize, memory: memory
            )
        }
    }

    private func assertRejected(
        _ result: Result<VirtqueueConfiguration, VirtqueueConfigurationError>, _ expected: VirtqueueConfigurationError,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        switch result {
        case .success(let configuration): XCTFail("accepted \(configuration)", file: file, line: line)
        case .failure(let error): XCTAssertEqual(error, expected, file: file, line: line)
        }
    }

    func testValidConfiguration() throws {
        let memory = try ram()
        let configuration = try configure(size: 256, memory: memory).get()
        XCTAssertEqual(configuration.size, 256)
        XCTAssertEqual(configuration.usedRing, GuestAddress(0x3000))
        XCTAssertNoThrow(try configure(size: 1, memory: memory).get())
        // Rings ending exactly at the end of RAM.
        let end = Self.ramSize
        XCTAssertNoThrow(try configure(
            size: 8, descriptorTable: end - 128, availableRing: end - 128 - 22, usedRing: end - 224, memory: memory
        ).get())
    }

    func testQueueSizesOutOfRangeOrNotPowersOfTwo() throws {
        let memory = try ram()
        assertRejected(configure(size: 0, memory: memory), .sizeOutOfRange(0, maximum: 256))
        assertRejected(configure(size: 512, memory: memory), .sizeOutOfRange(512, maximum: 256))
        assertRejected(configure(size: 3, memory: memory), .sizeNotPowerOfTwo(3))
        assertRejected(configure(size: 255, memory: memory), .sizeNotPowerOfTwo(255))
        assertRejected(configure(size: 0xFFFF, maximumSize: 32768, memory: memory), .sizeOutOfRange(0xFFFF, maximum: 32768))
    }

    func testMisalignedRings() throws {
        let memory = try ram()
        assertRejected(configure(descriptorTable: 0x1008, memory: memory), .misaligned(.descriptorTable, GuestAddress(0x1008), alignment: 16))
        assertRejected(configure(availableRing: 0x2001, memory: memory), .misaligned(.availableRing, GuestAddress(0x2001), alignment: 2))
        assertRejected(configure(usedRing: 0x3002, memory: memory), .misaligned(.usedRing, GuestAddress(0x3002), alignment: 4))
        XCTAssertNoThrow(try configure(descriptorTable: 0x1010, availableRing: 0x2002, usedRing: 0x3004, memory: memory).get())
    }

    func testRingsOutsideRAM() throws {
        let memory = try ram()
        let end = Self.ramSize
        // The descriptor table (8 * 16 bytes) 16 bytes too long for RAM.
        assertRejected(configure(descriptorTable: end - 0x70, memory: memory), .outsideGuestMemory(.descriptorTable, .unmapped(GuestAddress(end))))
        // The available ring is 6 + 2 * 8 = 22 bytes, the last 2 of which are used_event.
        assertRejected(configure(availableRing: end - 20, memory: memory), .outsideGuestMemory(.availableRing, .unmapped(GuestAddress(end))))
        // The used ring is 6 + 8 * 8 = 70 bytes, the last 2 of which are avail_event.
        assertRejected(configure(usedRing: end - 68, memory: memory), .outsideGuestMemory(.usedRing, .unmapped(GuestAddress(end))))
        assertRejected(configure(usedRing: UInt64.max - 3, memory: memory), .outsideGuestMemory(.usedRing, .overflow(GuestAddress(UInt64.max - 3), length: 70)))
        assertRejected(configure(availableRing: 1 << 40, memory: memory), .outsideGuestMemory(.availableRing, .unmapped(GuestAddress(1 << 40))))
    }

    func testRingSpanningAHoleOrInReadOnlyMemory() throws {
        let memory = try ram([
            SlotDescriptor(guestBase: GuestAddress(0), size: 0x10_0000),
            SlotDescriptor(guestBase: GuestAddress(0x20_0000), size: 0x1000, access: .readOnly),
        ])
        assertRejected(configure(descriptorTable: 0x10_0000 - 0x40, memory: memory),
                       .outsideGuestMemory(.descriptorTable, .unmapped(GuestAddress(0x10_0000))))
        assertRejected(configure(availableRing: 0x10_0000 + 0x800, memory: memory),
                       .outsideGuestMemory(.availableRing, .unmapped(GuestAddress(0x10_0800))))
        // The device only reads the descriptor table and available ring, but writes the used ring.
        XCTAssertNoThrow(try configure(descriptorTable: 0x20_0000, availableRing: 0x20_0100, memory: memory).get())
        assertRejected(configure(usedRing: 0x20_0000, memory: memory), .outsideGuestMemory(.usedRing, .readOnly(GuestAddress(0x20_0000))))
    }

    func testRingAcrossTwoAdjacentSlotsIsRejected() throws {
        // GuestMemory.contiguousSlice: a ring lies in one slot.
        let memory = try ram([
            SlotDescriptor(guestBase: GuestAddress(0), size: 0x1_0000),
            SlotDescriptor(guestBase: GuestAddress(0x1_0000), size: 0x1_0000),
        ])
        assertRejected(configure(usedRing: 0x1_0000 - 0x20, memory: memory),
                       .outsideGuestMemory(.usedRing, .unmapped(GuestAddress(0x1_0000))))
    }
}

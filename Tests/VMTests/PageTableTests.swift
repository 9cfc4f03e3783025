import XCTest
@testable import MemorySlots
@testable import VMCore

private let KiB: UInt64 = 1 << 10
private let MiB: UInt64 = 1 << 20
private let GiB: UInt64 = 1 << 30

/// PageWalkError without the underlying error, so tests can compare with XCTAssertEqual.
private enum WalkFailure: Equatable {
    case nonCanonical(UInt64)
    case notPresent(PagingLevel, UInt64)
    case reserved(PagingLevel)
    case readFailed(PagingLevel, UInt64)

    init(_ error: PageWalkError) {
        switch error {
        case .nonCanonical(let address): self = .nonCanonical(address)
        case .notPresent(let level, let entryAddress): self = .notPresent(level, entryAddress)
        case .reservedBitSet(let level): self = .reserved(level)
        case .memoryReadFailed(let level, let entryAddress, _): self = .readFailed(level, entryAddress)
        }
    }
}

/// IdentityMapError without the underlying error.
private enum BuildFailure: Equatable {
    case sizeZero
    case sizeNotPageMultiple(UInt64, PageSize)
    case sizeTooLarge(UInt64)
    case baseNotAligned(UInt64)
    case tablesOutside(UInt64)
    case writeFailed(UInt64)

    init(_ error: IdentityMapError) {
        switch error {
        case .sizeZero: self = .sizeZero
        case .sizeNotPageMultiple(let size, let pageSize): self = .sizeNotPageMultiple(size, pageSize)
        case .sizeTooLarge(let size, _): self = .sizeTooLarge(size)
        case .baseNotAligned(let base): self = .baseNotAligned(base)
        case .tablesOutsidePhysicalAddressSpace(let base, _): self = .tablesOutside(base)
        case .memoryWriteFailed(let address, _): self = .writeFailed(address)
        }
    }
}

private func walkFailure(
    _ address: UInt64, cr3: UInt64, memory: FakePhysicalMemory, walker: PageTableWalker = PageTableWalker()
) -> WalkFailure? {
    do throws(PageWalkError) {
        let translation = try walker.translate(virtualAddress: address, cr3: cr3, memory: memory)
        XCTFail("expected a walk failure for 0x\(String(address, radix: 16)), got \(translation)")
        return nil
    } catch {
        return WalkFailure(error)
    }
}

private func buildFailure(
    _ builder: IdentityPageTableBuilder, size: UInt64, base: UInt64, memory: FakePhysicalMemory
) -> BuildFailure? {
    do throws(IdentityMapError) {
        let layout = try builder.build(size: size, tableBase: base, memory: memory)
        XCTFail("expected a build failure, got \(layout)")
        return nil
    } catch {
        return BuildFailure(error)
    }
}

/// A reproducible stream of addresses (SplitMix64) so failures can be replayed.
private struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func entry(
    _ address: UInt64, writable: Bool = true, user: Bool = true, noExecute: Bool = false,
    pageSize: Bool = false, extraBits: UInt64 = 0
) -> PageTableEntry {
    var entry = PageTableEntry.empty
    entry.present = true
    entry.physicalAddress = address
    entry.writable = writable
    entry.user = user
    entry.noExecute = noExecute
    entry.pageSize = pageSize
    // Last, so bits inside the address field (PAT, reserved) survive.
    entry.rawValue |= extraBits
    return entry
}

final class PageTableEntryTests: XCTestCase {
    func testEachFlagAccessorOwnsExactlyItsBit() {
        let flags: [(WritableKeyPath<PageTableEntry, Bool>, UInt64)] = [
            (\.present, 1 << 0), (\.writable, 1 << 1), (\.user, 1 << 2), (\.writeThrough, 1 << 3),
            (\.cacheDisable, 1 << 4), (\.accessed, 1 << 5), (\.dirty, 1 << 6), (\.pageSize, 1 << 7),
            (\.global, 1 << 8), (\.noExecute, 1 << 63),
        ]
        for (keyPath, bit) in flags {
            var entry = PageTableEntry.empty
            XCTAssertFalse(entry[keyPath: keyPath])
            entry[keyPath: keyPath] = true
            XCTAssertEqual(entry.rawValue, bit, "setting \(keyPath)")
            XCTAssertTrue(entry[keyPath: keyPath])

            var full = PageTableEntry(rawValue: .max)
            XCTAssertTrue(full[keyPath: keyPath])
            full[keyPath: keyPath] = false
            XCTAssertEqual(full.rawValue, ~bit, "clearing \(keyPath)")
        }
    }

    func testAddressFieldIsBits12Through51() {
        var entry = PageTableEntry(rawValue: PageTableEntry.noExecuteBit | PageTableEntry.presentBit)
        entry.physicalAddress = .max
        XCTAssertEqual(entry.physicalAddress, 0x000F_FFFF_FFFF_F000)
        XCTAssertEqual(entry.rawValue, 0x800F_FFFF_FFFF_F001, "flags outside the field survive")
        entry.physicalAddress = 0x1234_5000
        XCTAssertEqual(entry.rawValue, 0x8000_0000_1234_5001)
        XCTAssertEqual(PageTableEntry.addressMask, 0x000F_FFFF_FFFF_F000)
        XCTAssertEqual(PageTableEntry.frameMask2MiB, 0x000F_FFFF_FFE0_0000)
        XCTAssertEqual(PageTableEntry.frameMask1GiB, 0x000F_FFFF_C000_0000)
    }

    func testFrameAddressDropsPATAndLowBitsOfLargePages() {
        // Bit 12 of a large-page entry is PAT, not address.
        let entry = PageTableEntry(rawValue: 0x0000_0012_3450_0000 | PageTableEntry.largePagePATBit | 0x183)
        XCTAssertEqual(entry.frameAddress(for: .fourKiB), 0x0000_0012_3450_1000)
        XCTAssertEqual(entry.frameAddress(for: .twoMiB), 0x0000_0012_3440_0000)
        XCTAssertEqual(entry.frameAddress(for: .oneGiB), 0x0000_0012_0000_0000)
    }

    func testLevelIndexing() {
        XCTAssertEqual(PagingLevel.allCases.map(\.indexShift), [39, 30, 21, 12])
        XCTAssertEqual(PagingLevel.pml4.bytesPerEntry, 512 * GiB)
        let address: UInt64 = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0xABC
        XCTAssertEqual(PagingLevel.allCases.map { $0.index(of: address) }, [3, 5, 7, 9])
        XCTAssertEqual(PagingLevel.pml4.index(of: 0xFFFF_FFFF_FFFF_FFFF), 511)
        XCTAssertEqual(PagingLevel.pml4.next, .pageDirectoryPointerTable)
        XCTAssertNil(PagingLevel.pageTable.next)
    }
}

final class IdentityPageTableBuilderTests: XCTestCase {
    /// Builds the map and checks that every address in `addresses` translates
    /// to itself with the expected page size and rights.
    private func assertRoundTrip(
        _ builder: IdentityPageTableBuilder, size: UInt64, base: UInt64, addresses: [UInt64],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let layout = try builder.layout(size: size, tableBase: base)
        let memory = FakePhysicalMemory(size: layout.tableRange.upperBound, filledWith: 0xDEAD_BEEF_DEAD_BEEF)
        XCTAssertEqual(try builder.build(size: size, tableBase: base, memory: memory), layout, file: file, line: line)
        var mismatches = 0
        for address in addresses {
            let expected = Translation(
                physicalAddress: address, pageSize: builder.leafPageSize.pageSize,
                writable: builder.writable, user: builder.user, executable: !builder.noExecute)
            let actual = try PageTableWalker.translate(virtualAddress: address, cr3: layout.cr3, memory: memory)
            if actual != expected {
                mismatches += 1
                // Report the first few only; a broken builder would flood the log.
                if mismatches <= 5 {
                    XCTFail("0x\(String(address, radix: 16)): \(actual) != \(expected)", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "of \(addresses.count) addresses", file: file, line: line)
    }

    /// First and last byte, both sides of every 2 MiB and 1 GiB boundary
    /// (every `stride`th 2 MiB boundary for huge maps), and random addresses.
    private func sampleAddresses(size: UInt64, twoMiBStride: UInt64 = 1) -> [UInt64] {
        var addresses: [UInt64] = [0, 1, size - 1, size - 8]
        for boundary in Swift.stride(from: 2 * MiB, to: size, by: Int(2 * MiB * twoMiBStride)) {
            addresses += [boundary - 1, boundary, boundary + 1]
        }
        for boundary in Swift.stride(from: GiB, to: size, by: Int(GiB)) {
            addresses += [boundary - 1, boundary, boundary + 4095, boundary + 4096]
        }
        var random = SplitMix64(state: size)
        for _ in 0..<1000 {
            addresses.append(random.next() % size)
        }
        return addresses
    }

    func testTwoMiBMapOfSlotZeroRoundTrips() throws {
        let size = 3 * GiB
        try assertRoundTrip(IdentityPageTableBuilder(), size: size, base: 0x9000, addresses: sampleAddresses(size: size))
    }

    func testTwoMiBMapWithPartialLastDirectoryRoundTrips() throws {
        let size = 4 * GiB + 6 * MiB
        let builder = IdentityPageTableBuilder(writable: false, user: true, global: true, noExecute: true)
        try assertRoundTrip(builder, size: size, base: 0x1_0000, addresses: sampleAddresses(size: size))
    }

    func testSmallestMapRoundTrips() throws {
        try assertRoundTrip(
            IdentityPageTableBuilder(user: true), size: 2 * MiB, base: 0x1000,
            addresses: sampleAddresses(size: 2 * MiB))
    }

    func testLargestTwoMiBMapRoundTrips() throws {
        let size = IdentityPageTableBuilder.maximumSize
        try assertRoundTrip(
            IdentityPageTableBuilder(), size: size, base: MiB,
            addresses: sampleAddresses(size: size, twoMiBStride: 97))
    }

    func testOneGiBMapRoundTrips() throws {
        let size = 64 * GiB
        let builder = IdentityPageTableBuilder(leafPageSize: .oneGiB, user: true, noExecute: true)
        try assertRoundTrip(builder, size: size, base: 0x7000, addresses: sampleAddresses(size: size, twoMiBStride: 13))
        try assertRoundTrip(
            IdentityPageTableBuilder(leafPageSize: .oneGiB), size: IdentityPageTableBuilder.maximumSize, base: 0,
            addresses: sampleAddresses(size: IdentityPageTableBuilder.maximumSize, twoMiBStride: 4099))
    }

    func testLayoutPlacesTablesContiguouslyFromBase() throws {
        let cases: [(IdentityPageTableBuilder.LeafPageSize, UInt64, Int)] = [
            (.twoMiB, 2 * MiB, 3), (.twoMiB, GiB, 3), (.twoMiB, GiB + 2 * MiB, 4), (.twoMiB, 3 * GiB, 5),
            (.twoMiB, 512 * GiB, 514), (.oneGiB, GiB, 2), (.oneGiB, 512 * GiB, 2),
        ]
        for (leaf, size, tables) in cases {
            let base: UInt64 = 0x20_0000
            let layout = try IdentityPageTableBuilder(leafPageSize: leaf).layout(size: size, tableBase: base)
            XCTAssertEqual(layout.cr3, base)
            XCTAssertEqual(layout.tableCount, tables, "\(leaf) 0x\(String(size, radix: 16))")
            XCTAssertEqual(layout.tableRange, base..<(base + UInt64(tables) * 4 * KiB))
            XCTAssertEqual(layout.mappedSize, size)
            XCTAssertEqual(layout.pageSize, leaf.pageSize)
        }
    }

    func testBuiltEntriesCarryTheRequestedBitsAndOnlyThose() throws {
        let base: UInt64 = 0x1000
        let memory = FakePhysicalMemory(size: 16 * 4 * KiB)
        let builder = IdentityPageTableBuilder(writable: true, user: true, global: true)
        let layout = try builder.build(size: GiB + 4 * MiB, tableBase: base, memory: memory)
        let pdpt = layout.pageDirectoryPointerTableAddress
        XCTAssertEqual(pdpt, base + 0x1000)
        XCTAssertEqual(layout.pageDirectoryAddress(1), base + 0x3000)

        // Upper levels: P, R/W, U/S, A; no PS, G or NX there.
        XCTAssertEqual(try memory.entry(table: base, index: 0).rawValue, pdpt | 0x27)
        XCTAssertEqual(try memory.entry(table: pdpt, index: 1).rawValue, layout.pageDirectoryAddress(1) | 0x27)
        // Leaves: P, R/W, U/S, A, D, PS, G.
        XCTAssertEqual(try memory.entry(table: layout.pageDirectoryAddress(1), index: 1).rawValue, (GiB + 2 * MiB) | 0x1E7)
        XCTAssertEqual(try memory.entry(table: layout.pageDirectoryAddress(0), index: 511).rawValue, (GiB - 2 * MiB) | 0x1E7)
        // Past the end: empty.
        XCTAssertEqual(try memory.entry(table: layout.pageDirectoryAddress(1), index: 2), .empty)
        XCTAssertEqual(try memory.entry(table: pdpt, index: 2), .empty)
        XCTAssertEqual(try memory.entry(table: base, index: 1), .empty)

        // Never NX unless asked; NX only on leaves when asked.
        let noExec = try IdentityPageTableBuilder(leafPageSize: .oneGiB, writable: false, noExecute: true)
            .build(size: 2 * GiB, tableBase: base, memory: memory)
        XCTAssertEqual(try memory.entry(table: base, index: 0).rawValue, noExec.pageDirectoryPointerTableAddress | 0x21)
        XCTAssertEqual(try memory.entry(table: noExec.pageDirectoryPointerTableAddress, index: 1).rawValue,
                       GiB | 0x8000_0000_0000_00E1)
    }

    func testEveryWordOfEveryTableIsWritten() throws {
        let garbage: UInt64 = 0xFFFF_FFFF_FFFF_FFFF
        let memory = FakePhysicalMemory(size: 0x10_0000, filledWith: garbage)
        let base: UInt64 = 0x4000
        let layout = try IdentityPageTableBuilder().build(size: 2 * GiB + 2 * MiB, tableBase: base, memory: memory)
        XCTAssertEqual(memory.writeCount, layout.tableCount * 512)
        for address in Swift.stride(from: layout.tableRange.lowerBound, to: layout.tableRange.upperBound, by: 8) {
            XCTAssertNotEqual(try memory.readUInt64(at: address), garbage, "0x\(String(address, radix: 16))")
        }
        // Neighbouring memory is untouched.
        XCTAssertEqual(try memory.readUInt64(at: base - 8), garbage)
        XCTAssertEqual(try memory.readUInt64(at: layout.tableRange.upperBound), garbage)

        // Beyond the mapped size the walk stops at the first empty entry.
        let size = layout.mappedSize
        XCTAssertEqual(walkFailure(size, cr3: layout.cr3, memory: memory),
                       .notPresent(.pageDirectory, layout.pageDirectoryAddress(2) + 8))
        XCTAssertEqual(walkFailure(3 * GiB, cr3: layout.cr3, memory: memory),
                       .notPresent(.pageDirectoryPointerTable, layout.pageDirectoryPointerTableAddress + 3 * 8))
        XCTAssertEqual(walkFailure(512 * GiB, cr3: layout.cr3, memory: memory), .notPresent(.pml4, base + 8))
    }

    func testBuilderRejectsBadArguments() {
        let memory = FakePhysicalMemory(size: 0x10_0000)
        let twoMiB = IdentityPageTableBuilder()
        let oneGiB = IdentityPageTableBuilder(leafPageSize: .oneGiB)
        XCTAssertEqual(buildFailure(twoMiB, size: 0, base: 0x1000, memory: memory), .sizeZero)
        XCTAssertEqual(buildFailure(twoMiB, size: 3 * MiB, base: 0x1000, memory: memory),
                       .sizeNotPageMultiple(3 * MiB, .twoMiB))
        XCTAssertEqual(buildFailure(oneGiB, size: 3 * GiB + 512 * MiB, base: 0x1000, memory: memory),
                       .sizeNotPageMultiple(3 * GiB + 512 * MiB, .oneGiB))
        XCTAssertEqual(buildFailure(twoMiB, size: 512 * GiB + 2 * MiB, base: 0x1000, memory: memory),
                       .sizeTooLarge(512 * GiB + 2 * MiB))
        XCTAssertEqual(buildFailure(oneGiB, size: 513 * GiB, base: 0x1000, memory: memory), .sizeTooLarge(513 * GiB))
        XCTAssertEqual(buildFailure(twoMiB, size: 2 * MiB, base: 0x1800, memory: memory), .baseNotAligned(0x1800))
        XCTAssertEqual(buildFailure(twoMiB, size: 2 * MiB, base: 0x1008, memory: memory), .baseNotAligned(0x1008))
        // Tables that would wrap around or end past 2^52.
        XCTAssertEqual(buildFailure(twoMiB, size: 2 * MiB, base: 0xFFFF_FFFF_FFFF_F000, memory: memory),
                       .tablesOutside(0xFFFF_FFFF_FFFF_F000))
        XCTAssertEqual(buildFailure(twoMiB, size: 2 * MiB, base: 0x000F_FFFF_FFFF_E000, memory: memory),
                       .tablesOutside(0x000F_FFFF_FFFF_E000))
        XCTAssertEqual(memory.writeCount, 0, "argument errors are found before anything is written")
        // The very last table that still fits the address field is accepted.
        XCTAssertNoThrow(try twoMiB.layout(size: 2 * MiB, tableBase: 0x000F_FFFF_FFFF_D000))
    }

    func testWriteFailureIsPropagatedWithItsAddress() throws {
        // Room for the PML4 and PDPT at 0x1000 and 0x2000, but not the PD at 0x3000.
        let memory = FakePhysicalMemory(size: 0x3000)
        let base: UInt64 = 0x1000
        do throws(IdentityMapError) {
            try IdentityPageTableBuilder().build(size: 2 * MiB, tableBase: base, memory: memory)
            XCTFail("build should fail")
        } catch {
            guard case .memoryWriteFailed(let address, let underlying) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(address, 0x3000)
            XCTAssertEqual(underlying as? FakeMemoryError, .outOfRange(0x3000))
        }
        XCTAssertEqual(memory.writeCount, 2 * 512)
    }
}

final class PageTableWalkerTests: XCTestCase {
    // Hand-built tables in a 64 KiB fake memory.
    private static let pml4: UInt64 = 0x1000
    private static let pdptLow: UInt64 = 0x2000
    private static let pdLow: UInt64 = 0x3000
    private static let ptLow: UInt64 = 0x4000
    private static let pdptHigh: UInt64 = 0x5000
    private static let pdReadOnly: UInt64 = 0x6000
    private static let outsideMemory: UInt64 = 0x10_0000
    private static let memorySize: UInt64 = 0x1_0000

    private var memory = FakePhysicalMemory(size: PageTableWalkerTests.memorySize)
    private let cr3 = PageTableWalkerTests.pml4

    override func setUpWithError() throws {
        let memory = FakePhysicalMemory(size: Self.memorySize)
        // PML4[0]: everything allowed. PML4[1]: same PDPT, supervisor only.
        // PML4[511]: the top 512 GiB, execute-disabled here and nowhere below.
        try memory.setEntry(table: Self.pml4, index: 0, entry(Self.pdptLow))
        try memory.setEntry(table: Self.pml4, index: 1, entry(Self.pdptLow, user: false))
        try memory.setEntry(table: Self.pml4, index: 511, entry(Self.pdptHigh, noExecute: true))
        // PML4[3]: PS is reserved in a PML4E.
        try memory.setEntry(table: Self.pml4, index: 3, entry(Self.pdptLow, pageSize: true))

        // PDPT[0] -> PD; PDPT[1]: 1 GiB read-only user page; PDPT[2] -> PD through a read-only entry.
        try memory.setEntry(table: Self.pdptLow, index: 0, entry(Self.pdLow))
        try memory.setEntry(table: Self.pdptLow, index: 1, entry(0x40_0000_0000, writable: false, pageSize: true))
        try memory.setEntry(table: Self.pdptLow, index: 2, entry(Self.pdReadOnly, writable: false))
        // PDPT[4]: 1 GiB page with reserved bit 29 set.
        try memory.setEntry(table: Self.pdptLow, index: 4, entry(0x80_0000_0000, pageSize: true, extraBits: 1 << 29))
        try memory.setEntry(table: Self.pdptHigh, index: 511, entry(0, pageSize: true))

        // PD[0] -> PT; PD[1]: 2 MiB NX page; PD[2] -> same PT, supervisor only;
        // PD[3]: 2 MiB supervisor page with its PAT bit (12) set;
        // PD[4]: 2 MiB page with reserved bit 13; PD[5] -> a PT outside memory.
        try memory.setEntry(table: Self.pdLow, index: 0, entry(Self.ptLow))
        try memory.setEntry(table: Self.pdLow, index: 1, entry(0x1_2340_0000, noExecute: true, pageSize: true))
        try memory.setEntry(table: Self.pdLow, index: 2, entry(Self.ptLow, user: false))
        try memory.setEntry(table: Self.pdLow, index: 3,
                            entry(0x8000_0000, user: false, pageSize: true, extraBits: PageTableEntry.largePagePATBit))
        try memory.setEntry(table: Self.pdLow, index: 4, entry(0x8000_0000, pageSize: true, extraBits: 1 << 13))
        try memory.setEntry(table: Self.pdLow, index: 5, entry(Self.outsideMemory))
        try memory.setEntry(table: Self.pdReadOnly, index: 0, entry(0x2_0000_0000, pageSize: true))

        // PT[1]: RWX user; PT[2]: read-only NX user; PT[3]: supervisor;
        // PT[4]: PAT bit (7) set, which is not PS in a PTE;
        // PT[5]: not present, every other bit set; PT[6]: address bit 45.
        try memory.setEntry(table: Self.ptLow, index: 1, entry(0xABCD_E000))
        try memory.setEntry(table: Self.ptLow, index: 2, entry(0xABCD_F000, writable: false, noExecute: true))
        try memory.setEntry(table: Self.ptLow, index: 3, entry(0x5000_0000, user: false))
        try memory.setEntry(table: Self.ptLow, index: 4, entry(0x6000_0000, extraBits: PageTableEntry.pageSizeBit))
        try memory.setEntry(table: Self.ptLow, index: 5, PageTableEntry(rawValue: ~PageTableEntry.presentBit))
        try memory.setEntry(table: Self.ptLow, index: 6, entry(1 << 45))
        self.memory = memory
    }

    private func translate(_ address: UInt64, walker: PageTableWalker = PageTableWalker()) throws -> Translation {
        try walker.translate(virtualAddress: address, cr3: cr3, memory: memory)
    }

    private func expect(
        _ address: UInt64, _ physicalAddress: UInt64, _ pageSize: PageSize, _ rights: String,
        walker: PageTableWalker = PageTableWalker(), file: StaticString = #filePath, line: UInt = #line
    ) throws {
        // Rights as "WUX" with "-" for a missing one.
        let expected = Translation(
            physicalAddress: physicalAddress, pageSize: pageSize, writable: rights.contains("W"),
            user: rights.contains("U"), executable: rights.contains("X"))
        XCTAssertEqual(try translate(address, walker: walker), expected, file: file, line: line)
    }

    func testFourKiBPagesCombineRightsOverAllLevels() throws {
        try expect(0x1000, 0xABCD_E000, .fourKiB, "WUX")
        try expect(0x1FFF, 0xABCD_EFFF, .fourKiB, "WUX")
        try expect(0x2123, 0xABCD_F123, .fourKiB, "-U-")
        try expect(0x3008, 0x5000_0008, .fourKiB, "W-X")
        try expect(0x4010, 0x6000_0010, .fourKiB, "WUX")
        // The same PTE reached through a supervisor PDE or PML4E loses U.
        try expect(0x40_1234, 0xABCD_E234, .fourKiB, "W-X")
        try expect(0x80_0000_1234, 0xABCD_E234, .fourKiB, "W-X")
    }

    func testTwoMiBPages() throws {
        try expect(0x20_0000, 0x1_2340_0000, .twoMiB, "WU-")
        try expect(0x3F_FFFF, 0x1_235F_FFFF, .twoMiB, "WU-")
        try expect(0x60_1234, 0x8000_1234, .twoMiB, "W-X")
        // A 2 MiB page under a read-only PDPTE is read-only.
        try expect(2 * GiB + 0x1_2345, 0x2_0001_2345, .twoMiB, "-UX")
    }

    func testOneGiBPages() throws {
        try expect(GiB, 0x40_0000_0000, .oneGiB, "-UX")
        try expect(2 * GiB - 1, 0x40_3FFF_FFFF, .oneGiB, "-UX")
        // Top of the address space: canonical high half, NX only at the PML4E.
        try expect(0xFFFF_FFFF_C000_0000, 0, .oneGiB, "WU-")
        try expect(0xFFFF_FFFF_FFFF_FFFF, GiB - 1, .oneGiB, "WU-")
    }

    func testStaticTranslateMatchesDefaultWalker() throws {
        XCTAssertEqual(
            try PageTableWalker.translate(virtualAddress: 0x2123, cr3: cr3, memory: memory),
            try translate(0x2123))
    }

    func testCR3LowBitsAreNotPartOfTheAddress() throws {
        // PWT/PCD (bits 3, 4) or a PCID (bits 11:0), and bit 63, do not move the PML4.
        for extra: UInt64 in [0x18, 0xFFF, 1 << 63] {
            let translation = try PageTableWalker.translate(virtualAddress: 0x1000, cr3: cr3 | extra, memory: memory)
            XCTAssertEqual(translation.physicalAddress, 0xABCD_E000)
        }
    }

    func testNotPresentAtEachLevel() {
        XCTAssertEqual(walkFailure(2 << 39, cr3: cr3, memory: memory), .notPresent(.pml4, Self.pml4 + 2 * 8))
        XCTAssertEqual(walkFailure(3 * GiB, cr3: cr3, memory: memory),
                       .notPresent(.pageDirectoryPointerTable, Self.pdptLow + 3 * 8))
        XCTAssertEqual(walkFailure(10 * 2 * MiB, cr3: cr3, memory: memory),
                       .notPresent(.pageDirectory, Self.pdLow + 10 * 8))
        XCTAssertEqual(walkFailure(0x9000, cr3: cr3, memory: memory), .notPresent(.pageTable, Self.ptLow + 9 * 8))
        XCTAssertEqual(walkFailure(0x0, cr3: cr3, memory: memory), .notPresent(.pageTable, Self.ptLow))
        // A not-present entry is not checked for reserved bits.
        XCTAssertEqual(walkFailure(0x5000, cr3: cr3, memory: memory), .notPresent(.pageTable, Self.ptLow + 5 * 8))
    }

    func testNonCanonicalAddressesAreRejectedBeforeAnyRead() {
        let empty = FakePhysicalMemory(size: 0)
        for address: UInt64 in [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x0001_0000_0000_0000] {
            XCTAssertEqual(walkFailure(address, cr3: cr3, memory: empty), .nonCanonical(address))
        }
        for address: UInt64 in [0, 0x0000_7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000, .max] {
            XCTAssertTrue(PageTableWalker.isCanonical(address), "0x\(String(address, radix: 16))")
        }
        // The canonical edges go on to the walk (and fail only there).
        XCTAssertEqual(walkFailure(0x0000_7FFF_FFFF_FFFF, cr3: cr3, memory: memory),
                       .notPresent(.pml4, Self.pml4 + 255 * 8))
        XCTAssertEqual(walkFailure(0xFFFF_8000_0000_0000, cr3: cr3, memory: memory),
                       .notPresent(.pml4, Self.pml4 + 256 * 8))
    }

    func testReservedBits() {
        XCTAssertEqual(walkFailure(3 << 39, cr3: cr3, memory: memory), .reserved(.pml4))
        XCTAssertEqual(walkFailure(4 * GiB, cr3: cr3, memory: memory), .reserved(.pageDirectoryPointerTable))
        XCTAssertEqual(walkFailure(4 * 2 * MiB, cr3: cr3, memory: memory), .reserved(.pageDirectory))
        // Address bit 45 is fine with MAXPHYADDR 52 and reserved with 40.
        XCTAssertEqual(try translate(0x6000).physicalAddress, 1 << 45)
        let narrow = PageTableWalker(physicalAddressWidth: 40)
        XCTAssertEqual(walkFailure(0x6000, cr3: cr3, memory: memory, walker: narrow), .reserved(.pageTable))
    }

    func testWithoutNXEBit63IsReservedAndAllIsExecutable() throws {
        let noNX = PageTableWalker(noExecuteEnabled: false)
        try expect(0x1000, 0xABCD_E000, .fourKiB, "WUX", walker: noNX)
        XCTAssertEqual(walkFailure(0x2000, cr3: cr3, memory: memory, walker: noNX), .reserved(.pageTable))
        XCTAssertEqual(walkFailure(0x20_0000, cr3: cr3, memory: memory, walker: noNX), .reserved(.pageDirectory))
        XCTAssertEqual(walkFailure(0xFFFF_FFFF_C000_0000, cr3: cr3, memory: memory, walker: noNX), .reserved(.pml4))
    }

    func testTablesOutsideMemoryReportTheLevel() {
        XCTAssertEqual(walkFailure(5 * 2 * MiB + 7 * 4 * KiB, cr3: cr3, memory: memory),
                       .readFailed(.pageTable, Self.outsideMemory + 7 * 8))
        XCTAssertEqual(walkFailure(0x1000, cr3: Self.outsideMemory, memory: memory),
                       .readFailed(.pml4, Self.outsideMemory))
        do throws(PageWalkError) {
            _ = try PageTableWalker().translate(virtualAddress: 5 * 2 * MiB, cr3: cr3, memory: memory)
            XCTFail("walk should fail")
        } catch {
            guard case .memoryReadFailed(_, _, let underlying) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(underlying as? FakeMemoryError, .outOfRange(Self.outsideMemory))
        }
    }
}

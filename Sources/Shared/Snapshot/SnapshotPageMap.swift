/// Where a lazy restore finds each guest page: an address in the faulting process's mapping
/// of a RAM slot, to the page's offset in the snapshot file, or to nothing (a zero page).
public struct SnapshotPageMap {
    public struct Region {
        public let hostAddress: UInt64
        public let size: UInt64
        public let pages: DeferredPages
        /// For each run, how many pages of the section come before it.
        public let fileIndex: [UInt64]
    }

    public enum Page: Equatable {
        /// In the snapshot, at this file offset.
        case file(offset: UInt64)
        /// In the slot but not in the snapshot: it was all zero.
        case zero
        /// Not guest RAM of this map.
        case outside
    }

    public let regions: [Region]

    public init(regions: [(hostAddress: UInt64, size: UInt64, pages: DeferredPages)]) {
        self.regions = regions.map { region in
            var before: UInt64 = 0
            let index = region.pages.runs.map { run -> UInt64 in
                defer { before += run.pageCount }
                return before
            }
            return Region(hostAddress: region.hostAddress, size: region.size, pages: region.pages, fileIndex: index)
        }
    }

    /// The page holding `address`: its first address, and where its bytes are.
    public func page(at address: UInt64) -> (address: UInt64, page: Page) {
        let pageSize = SnapshotFormat.pageSize
        let start = address & ~(pageSize - 1)
        guard let region = regions.first(where: { start >= $0.hostAddress && start - $0.hostAddress < $0.size }) else {
            return (start, .outside)
        }
        let number = (start - region.hostAddress) / pageSize
        let runs = region.pages.runs
        // The last run starting at or before `number` (runs are ascending and apart).
        var low = 0, high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].firstPage <= number { low = middle + 1 } else { high = middle }
        }
        guard low > 0, number < runs[low - 1].firstPage + runs[low - 1].pageCount else { return (start, .zero) }
        let run = low - 1
        let offset = region.pages.fileOffset + (region.fileIndex[run] + number - runs[run].firstPage) * pageSize
        return (start, .file(offset: offset))
    }
}

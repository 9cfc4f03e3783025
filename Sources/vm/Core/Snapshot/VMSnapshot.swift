import CLinux
import Glibc
import GuestRAM
import LinuxSystem
import MemorySlots
import Snapshot

/// `vmctl send` and `vmctl receive` in the vm process: the whole VM written as a snapshot
/// while paused, and a new VM of the same shape brought to that state before it runs.
extension VirtualMachine {
    /// What a snapshot of this VM is, and what one must be to be restored here.
    var snapshotShape: SnapshotShape {
        SnapshotShape(
            vcpus: request.vcpus, firmware: request.firmware,
            slots: memory.slots.map { SnapshotShape.Slot(guestBase: $0.guestBase.value, size: $0.size) },
            devices: virtioDevices.map {
                SnapshotShape.Device(type: $0.transport.description.type.rawValue, queueCount: $0.transport.description.queueCount,
                                     name: $0.transport.name)
            })
    }

    /// Writes the paused VM to `fd` (vmctl's standard output): machine, vCPUs, RAM, devices.
    /// Returns the bytes written. The VM stays paused; a failure leaves it as it was.
    /// `ramFiles`: each slot's memfd, lent by vmd for this (vm keeps none: see
    /// `GuestPageScan`), to read only the pages the guest ever wrote.
    func writeSnapshot(to fd: FileDescriptor, ramFiles: [FileDescriptor]) throws -> UInt64 {
        guard isPaused else { throw SnapshotError.malformed("the VM is not paused") }
        var writer = try SnapshotWriter(sink: DescriptorStream(fd), shape: snapshotShape)
        _ = try writeRAM(ramFiles: ramFiles, live: false, with: &writer)
        try writeState(with: &writer)
        _ = try writer.finish()
        return writer.bytesWritten
    }

    /// Every RAM slot's pages the guest ever wrote that are not all zero; returns how many.
    /// `live`: the guest runs meanwhile (a migration's first round).
    func writeRAM<Sink>(ramFiles: [FileDescriptor], live: Bool, with writer: inout SnapshotWriter<Sink>) throws -> UInt64 {
        var pages: UInt64 = 0
        for (index, slot) in memory.slots.enumerated() {
            let slice = try memory.contiguousSlice(at: slot.guestBase, length: slot.size, forWriting: false)
            let runs = try GuestPageScan.nonZeroRuns(of: slice.unsafeBytes, file: index < ramFiles.count ? ramFiles[index] : nil)
            pages += try writePages(runs, slot: index, live: live, with: &writer)
        }
        return pages
    }

    /// `runs` of RAM slot `slot` as one memory section; returns how many pages.
    func writePages<Sink>(_ runs: [PageRun], slot: Int, live: Bool, with writer: inout SnapshotWriter<Sink>) throws -> UInt64 {
        guard !runs.isEmpty else { return 0 }
        let descriptor = memory.slots[slot]
        let slice = try memory.contiguousSlice(at: descriptor.guestBase, length: descriptor.size, forWriting: false)
        try writer.writeMemory(slot: slot, runs: runs, live: live) { run in
            UnsafeRawBufferPointer(rebasing: slice.unsafeBytes[GuestPageScan.byteRange(of: run)])
        }
        return runs.reduce(0) { $0 + $1.pageCount }
    }

    /// The state sections of the paused VM: the machine, each vCPU, each device (where its
    /// process stands in its queues is asked now). A restore applies them once it has read
    /// everything, so they may come after RAM.
    ///
    /// The vCPUs are captured last, after the devices' round trips: a LAPIC timer counts on
    /// while the VM is paused, and the later its count is read, the less of the pause the
    /// restored guest's next tick is late by.
    func writeState<Sink>(with writer: inout SnapshotWriter<Sink>) throws {
        let machine = try machineState()
        let devices = try virtioDevices.map { try $0.transport.captureState() }
        let vcpus = try vcpuThreads.enumerated().map { position, thread in
            let countAtPark = position < timerCountsAtPark.count ? timerCountsAtPark[position] : nil
            return (thread.vcpu.index, try thread.vcpu.captureState(vcpuStateSupport, timerCountAtPark: countAtPark))
        }
        try writer.writeState(.machine, index: 0, machine)
        for (index, fields) in vcpus { try writer.writeState(.vcpu, index: index, fields) }
        for (index, fields) in devices.enumerated() { try writer.writeState(.device, index: index, fields) }
    }

    /// Pauses the guest with every device quiesced, or leaves it running and says which did not.
    func pauseQuiesced() throws {
        let unconfirmed = pause()
        guard unconfirmed.isEmpty else {
            resume()
            throw NotQuiesced(devices: unconfirmed)
        }
    }

    struct NotQuiesced: Error, CustomStringConvertible {
        let devices: [String]
        var description: String { "\(devices.joined(separator: ", ")) did not quiesce" }
    }

    /// Brings this VM, built with `restoring: true` and not started, to the state in `fd`.
    /// The shape is checked before anything else is read; state is applied only once the
    /// whole file has been read and checked, RAM as it comes (a failure leaves a VM that must
    /// not run: the caller ends the process).
    ///
    /// `lazy`: RAM stays in the file (which must be a regular file); `beforeState` runs once
    /// the tables are read and before any state is set (setting MSRs can make KVM touch guest
    /// RAM, so the pager must be serving by then). The devices' activations are returned, to
    /// be sent once every page is in; without `lazy` they are sent here.
    /// `migration`: the stream of a live migration, whose RAM comes in rounds.
    func restore(from fd: FileDescriptor, lazy: Bool = false, migration: Bool = false,
                 beforeState: () throws -> Void = {}) throws -> [PendingDevice] {
        var reader = try SnapshotReader(source: DescriptorStream(fd), expecting: snapshotShape, memoryInRounds: migration)
        var machine: StateFields?
        var vcpus: [Int: StateFields] = [:], devices: [Int: StateFields] = [:]
        while let section = try reader.next() {
            switch section {
            case .state(.machine, _, let fields): machine = fields
            case .state(.vcpu, let index, let fields): vcpus[index] = fields
            case .state(.device, let index, let fields): devices[index] = fields
            case .state: break  // the reader hands out no other kind
            case .memory where lazy:
                _ = try reader.skipPages()
            case .memory(let slotIndex, _):
                let slot = memory.slots[slotIndex]
                let slice = try memory.contiguousSlice(at: slot.guestBase, length: slot.size, forWriting: true)
                try reader.readPages { run in UnsafeMutableRawBufferPointer(rebasing: slice.unsafeBytes[GuestPageScan.byteRange(of: run)]) }
            }
        }
        guard let machine else { throw SnapshotError.malformed("no machine section") }
        try beforeState()
        try restoreMachine(machine)
        for thread in vcpuThreads {
            guard let fields = vcpus[thread.vcpu.index] else { throw SnapshotError.malformed("vCPU \(thread.vcpu.index) is missing") }
            try thread.vcpu.restoreState(fields)
        }
        var pending: [PendingDevice] = []
        for (index, device) in virtioDevices.enumerated() {
            guard let fields = devices[index] else { throw SnapshotError.malformed("device \(device.transport.name) is missing") }
            if let activation = try device.transport.restoreState(fields) { pending.append(PendingDevice(transport: device.transport, activation: activation)) }
        }
        try router.release()  // every queue's route in one table, before a device can signal
        if !lazy { try pending.forEach { try $0.activate() } }
        return lazy ? pending : []
    }

    /// A restored device waiting for guest RAM before it is activated.
    struct PendingDevice {
        let transport: VirtioPCITransport
        let activation: VirtioPCITransport.PendingActivation
        func activate() throws { try transport.activate(activation) }
    }
}

/// Finds the pages of a RAM slot a snapshot must hold: those the guest ever wrote (the
/// memfd's data extents, so untouched RAM is not even read, which would allocate it) that
/// are not all zero.
enum GuestPageScan {
    static let pageSize = Int(SnapshotFormat.pageSize)
    private static let zeroPage = [UInt8](repeating: 0, count: pageSize)

    static func byteRange(of run: PageRun) -> Range<Int> {
        Int(run.firstPage) * pageSize..<Int(run.firstPage + run.pageCount) * pageSize
    }

    static func nonZeroRuns(of bytes: UnsafeMutableRawBufferPointer, file: FileDescriptor?) throws -> [PageRun] {
        var runs: [PageRun] = []
        for extent in try dataExtents(file, size: bytes.count) {
            var page = extent.lowerBound / pageSize
            while page < extent.upperBound / pageSize {
                // SAFETY: the page lies inside `bytes` (extents are clamped to its size, in whole pages).
                let zero = zeroPage.withUnsafeBytes { memcmp(bytes.baseAddress! + page * pageSize, $0.baseAddress!, pageSize) == 0 }
                if !zero {
                    if let last = runs.last, last.firstPage + last.pageCount == UInt64(page) {
                        runs[runs.count - 1].pageCount += 1
                    } else {
                        runs.append(PageRun(firstPage: UInt64(page), pageCount: 1))
                    }
                }
                page += 1
            }
        }
        return runs
    }

    /// Byte ranges of the slot's memfd that hold data (SEEK_DATA/SEEK_HOLE: swapped-out
    /// pages count as data, holes were never written), page-aligned; the whole slot without a file.
    private static func dataExtents(_ file: FileDescriptor?, size: Int) throws -> [Range<Int>] {
        guard let file else { return [0..<size] }
        var extents: [Range<Int>] = []
        var offset = 0
        while offset < size {
            let data = lseek(file.rawValue, off_t(offset), VMD_SEEK_DATA)
            if data < 0 {
                if errno == ENXIO { break }  // no data after `offset`
                throw SystemError("lseek(SEEK_DATA)", errno: errno)
            }
            let hole = lseek(file.rawValue, data, VMD_SEEK_HOLE)
            guard hole >= 0 else { throw SystemError("lseek(SEEK_HOLE)", errno: errno) }
            let start = Int(data) / pageSize * pageSize
            let end = min(size, (Int(hole) + pageSize - 1) / pageSize * pageSize)
            if start < end { extents.append(start..<end) }
            offset = max(end, start + pageSize)
        }
        return extents
    }
}

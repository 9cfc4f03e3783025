import GuestRAM
import LinuxSystem
import Snapshot

/// `vmctl migrate` in the sending vm process: pre-copy. RAM goes out while the guest runs,
/// then again each page written since (KVM's dirty log, and the pages vm and the devices
/// wrote), in rounds until what is left is small; then the guest is paused and the rest goes
/// with the whole state, in the snapshot format with memory sections in rounds. The guest
/// stays paused at the end: vmd stops it once the receiver confirms, or resumes it.
extension VirtualMachine {
    struct MigrationReport {
        var rounds = 0
        var pages: UInt64 = 0
        var bytes: UInt64 = 0
        /// Pages sent while paused, and when the pause began (MonotonicClock).
        var finalPages: UInt64 = 0
        var pausedAt: Double = 0
    }

    /// A round this small (4 MiB) is sent with the guest paused: its copy takes about a millisecond.
    static let finalRoundPages: UInt64 = 1024
    static let maximumRounds = 30

    /// `ramFiles` as for `writeSnapshot`.
    func migrate(to fd: FileDescriptor, ramFiles: [FileDescriptor]) throws -> MigrationReport {
        var report = MigrationReport()
        var writer = try SnapshotWriter(sink: DescriptorStream(fd), shape: snapshotShape)
        try startLoggingWrites()
        defer { stopLoggingWrites() }
        _ = try dirtyPages.take(kvm: kvm)  // from here on: round 0 sends what is there, later rounds what changed

        for (index, slot) in memory.slots.enumerated() {
            let slice = try memory.contiguousSlice(at: slot.guestBase, length: slot.size, forWriting: false)
            let runs = try GuestPageScan.nonZeroRuns(of: slice.unsafeBytes, file: index < ramFiles.count ? ramFiles[index] : nil)
            report.pages += try write(runs, slot: index, live: true, with: &writer)
        }
        report.rounds = 1
        var last = UInt64.max, growing = 0
        var dirty = try dirtyPages.take(kvm: kvm)
        while true {
            let count = dirty.reduce(0) { $0 + $1.reduce(0) { $0 + $1.pageCount } }
            growing = count >= last ? growing + 1 : 0
            // Small enough, or not converging (the guest writes faster than we send): pause now.
            if count <= Self.finalRoundPages || report.rounds >= Self.maximumRounds || growing >= 3 { break }
            last = count
            for (slot, runs) in dirty.enumerated() { report.pages += try write(runs, slot: slot, live: true, with: &writer) }
            report.rounds += 1
            dirty = try dirtyPages.take(kvm: kvm)
        }

        let unconfirmed = pause()
        guard unconfirmed.isEmpty else {
            resume()
            throw SnapshotError.malformed("\(unconfirmed.joined(separator: ", ")) did not quiesce")
        }
        report.pausedAt = MonotonicClock.seconds()
        do {
            // What the last round left, then what was written since (devices finished their requests).
            let rest = try dirtyPages.take(kvm: kvm)
            for pass in [dirty, rest] {
                for (slot, runs) in pass.enumerated() { report.finalPages += try write(runs, slot: slot, with: &writer) }
            }
            try writer.writeState(.machine, index: 0, machineState())
            for thread in vcpuThreads {
                try writer.writeState(.vcpu, index: thread.vcpu.index, thread.vcpu.captureState(vcpuStateSupport))
            }
            for (index, device) in virtioDevices.enumerated() {
                try writer.writeState(.device, index: index, device.transport.captureState())
            }
            _ = try writer.finish()
        } catch {
            resume()
            throw error
        }
        report.rounds += 1
        report.pages += report.finalPages
        report.bytes = writer.bytesWritten
        return report
    }

    private func write<Sink>(_ runs: [PageRun], slot: Int, live: Bool = false, with writer: inout SnapshotWriter<Sink>) throws -> UInt64 {
        guard !runs.isEmpty else { return 0 }
        let descriptor = memory.slots[slot]
        let slice = try memory.contiguousSlice(at: descriptor.guestBase, length: descriptor.size, forWriting: false)
        try writer.writeMemory(slot: slot, runs: runs, live: live) { run in
            UnsafeRawBufferPointer(rebasing: slice.unsafeBytes[GuestPageScan.byteRange(of: run)])
        }
        return runs.reduce(0) { $0 + $1.pageCount }
    }

    private func startLoggingWrites() throws {
        try kvm.setDirtyLogging(memory, enabled: true)
        try memory.logWrites(into: dirtyPages.file)
        for device in virtioDevices { try device.transport.logWrites(dirtyPages.file) }
    }

    private func stopLoggingWrites() {
        for device in virtioDevices { try? device.transport.logWrites(nil) }
        memory.stopLoggingWrites()
        try? kvm.setDirtyLogging(memory, enabled: false)
    }
}

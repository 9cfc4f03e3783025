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
        /// Pages sent while paused, and when the pause began (MonotonicClock nanoseconds).
        var finalPages: UInt64 = 0
        var pausedAt: UInt64 = 0
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

        report.pages = try writeRAM(ramFiles: ramFiles, live: true, with: &writer)
        report.rounds = 1
        var last = UInt64.max, growing = 0
        var dirty = try dirtyPages.take(kvm: kvm)
        while true {
            let count = dirty.reduce(0) { $0 + $1.reduce(0) { $0 + $1.pageCount } }
            growing = count >= last ? growing + 1 : 0
            // Small enough, or not converging (the guest writes faster than we send): pause now.
            if count <= Self.finalRoundPages || report.rounds >= Self.maximumRounds || growing >= 3 { break }
            last = count
            for (slot, runs) in dirty.enumerated() { report.pages += try writePages(runs, slot: slot, live: true, with: &writer) }
            report.rounds += 1
            dirty = try dirtyPages.take(kvm: kvm)
        }

        report.pausedAt = MonotonicClock.nanoseconds()  // the guest stops at the kick that follows
        try pauseQuiesced()
        do {
            // What the last round left, then what was written since (devices finished their requests).
            let rest = try dirtyPages.take(kvm: kvm)
            for pass in [dirty, rest] {
                for (slot, runs) in pass.enumerated() { report.finalPages += try writePages(runs, slot: slot, live: false, with: &writer) }
            }
            try writeState(with: &writer)
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

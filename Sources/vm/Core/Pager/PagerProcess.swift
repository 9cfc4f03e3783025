import Glibc
import IPC
import LinuxSystem
import Logging
import Snapshot

/// The pager process of a lazy restore (`vm NAME --pager`, started by vmd for `vmctl receive
/// -l`). It lives apart from vm so that the one process reading the snapshot while the guest
/// runs holds that file and the userfaultfd only: no KVM, no guest RAM mapped, no device.
/// It sandboxes itself first, then waits for vmd to hand it both.
struct PagerProcess {
    let channel: Channel
    var logger = Logger(label: "pager")

    func run() throws {
        let profile = SandboxProfile.pager
        try Sandbox.isolate(profile)
        ProcessRole.current = "pager"
        try Sandbox.enter(profile, logger: logger)
        let command = try channel.receive(PagerCommand.self)
        guard case .serve(let uffdFD, let snapshot, let shapeBytes, let hostAddresses) = command else { return }
        let started = MonotonicClock.seconds()
        let pager: SnapshotPager
        do {
            var reader = WireReader(bytes: shapeBytes)
            let shape = try SnapshotShape.decode(from: &reader)
            pager = try SnapshotPager(uffd: UserFaultFD(fd: uffdFD), snapshot: snapshot, shape: shape, hostAddresses: hostAddresses)
        } catch {
            try channel.send(PagerEvent.failed("\(error)"))
            return
        }
        var reported = false
        var watchingFaults = true
        while true {
            do {
                if watchingFaults { try pager.serveFaults() }
                if !pager.backgroundDone {
                    try pager.copyNextChunk()
                    continue
                }
            } catch where reported {
                // Every page is in and vm has let go of the userfaultfd (or is gone): nothing left to serve.
                logger.debug("userfaultfd: \(error); waiting for vmd only")
                watchingFaults = false
            } catch {
                logger.error("lazy restore failed: \(error)")
                try channel.send(PagerEvent.failed("\(error)"))
                return
            }
            if !reported {
                reported = true
                let milliseconds = UInt32(clamping: Int((MonotonicClock.seconds() - started) * 1000))
                logger.info("every page in: \(pager.pagesCopied) copied, \(pager.faultsServed) faults served, in \(milliseconds) ms")
                try channel.send(PagerEvent.loaded(pages: pager.pagesCopied, faults: pager.faultsServed, milliseconds: milliseconds))
            }
            // Until vm stops routing faults here (it unregisters on `memoryLoaded`): zero pages for holes.
            var waits = [pollfd(fd: channel.socket.rawValue, events: Int16(POLLIN), revents: 0),
                         pollfd(fd: uffdFD.rawValue, events: Int16(POLLIN), revents: 0)]
            guard poll(&waits, watchingFaults ? 2 : 1, -1) >= 0 || errno == EINTR else { throw SystemError("poll", errno: errno) }
            if watchingFaults && waits[1].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { watchingFaults = false }
            if waits[0].revents != 0 {
                if case .serve = (try? channel.receive(PagerCommand.self)) ?? .stop { continue }
                return  // stop, or vmd went away
            }
        }
    }
}

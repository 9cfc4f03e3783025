import Glibc
import GuestRAM
import LinuxSystem
import VirtioCore

/// Serves a disk's reads, flushes and (under `cache none`) writes through a
/// `RestrictedIOUring`, on the event loop: chains taken off a request queue are submitted
/// together after each pass, and their completions come back at once (page-cache hits)
/// or through the ring's eventfd. So the guest's queue depth reaches the host with no
/// thread of our own. A request may be several submissions (a qcow2 request over
/// clusters that are not adjacent in the file); it completes with its last.
///
/// Not thread-safe: the event loop owns it.
final class BlockRingServer {
    typealias Completion = (queue: Int, head: UInt16, length: UInt32)

    /// Submissions one request may take; a request needing more is served by the model.
    static let maximumPieces = 16

    private let ring: RestrictedIOUring
    private let model: BlockDeviceModel
    private let backend: RingBackend
    /// Requests in flight, by slot, with the queue each came from.
    private var requests: [(queue: Int, request: BlockRingRequest)?]
    private var freeSlots: [Int]
    /// Submissions in flight, by tag (the ring's user_data): the pieces they carry.
    private var submissions: [RingSubmission?]
    /// The iovec array each tag gives the kernel, kept for the tag's next submission (one
    /// allocated per submission was a malloc and a free per request); grown when too small,
    /// and let go at the completion when larger than `keptVectors`, so that what the guest's
    /// largest requests once needed is not held by every tag for good.
    private var vectorArrays: [UnsafeMutableBufferPointer<iovec>]
    private static let keptVectors = 64
    private var freeTags: [Int]
    /// This pass's pieces, merged and prepared at `submit` (each has a tag waiting for it).
    private var pendingPieces: [RingSubmission] = []
    /// Completed while a layout change waited for the ring: published with the next batch.
    private var completedMeanwhile: [Completion] = []
    /// This pass: requests prepared, and whether one of them is a flush.
    private var startedThisPass = 0
    private var flushThisPass = false
    /// How long a lone request's completion is watched for before sleeping on it: up to
    /// four times the queues' polling window (200 µs by default; VMD_POLL_WINDOW_NS=0 turns
    /// both off), since a disk's round trip is longer than a guest's.
    private var completionWindow = PollingWindow(maximum: PollingWindow.configuredMaximum * 4)

    /// Submissions prepared for the kernel so far (fewer than pieces where they merged).
    private(set) var submissionCount = 0

    var completionEvent: FileDescriptor { ring.completionEvent }
    var idle: Bool { freeSlots.count == requests.count }

    /// `capacity`: the most requests that can be in flight, every queue full (each chain
    /// holds at least one descriptor), so no slot runs out; each may take up to
    /// `maximumPieces` submissions while tags are left.
    init(model: BlockDeviceModel, backend: RingBackend, capacity: Int) throws {
        let tags = capacity * 2
        ring = try RestrictedIOUring(file: backend.ringFile, entries: UInt32(tags))
        self.model = model
        self.backend = backend
        requests = Array(repeating: nil, count: capacity)
        freeSlots = Array((0..<capacity).reversed())
        submissions = Array(repeating: nil, count: tags)
        vectorArrays = Array(repeating: UnsafeMutableBufferPointer(start: nil, count: 0), count: tags)
        freeTags = Array((0..<tags).reversed())
    }

    deinit {
        // SAFETY: the kernel read each array during its submit; nothing refers to them now.
        for array in vectorArrays { array.deallocate() }
    }

    /// Takes a chain of queue `queue`: nil if it went to the ring, else its used length
    /// (served at once: not a read, write or flush, refused, one the backend serves itself,
    /// or no room, which a well-behaved driver cannot cause).
    func start(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) -> UInt32? {
        let tagsLeft = freeTags.count - pendingPieces.count
        guard let slot = freeSlots.last, tagsLeft > 0 else {
            // No room: served here, once what is in flight is done (it may change the layout).
            completedMeanwhile += waitIdle(memory: memory)
            return model.process(chain, memory: memory)
        }
        let pieces = min(Self.maximumPieces, tagsLeft)
        switch model.start(chain, memory: memory, backend: backend, maximumPieces: pieces) {
        case .serveHere(let changesLayout):
            if changesLayout, backend.layoutChangesWaitForTheRing {
                completedMeanwhile += waitIdle(memory: memory)
            }
            return model.process(chain, memory: memory)
        case .submit(let request):
            startedThisPass += 1
            flushThisPass = flushThisPass || request.operation == .flush
            freeSlots.removeLast()
            requests[slot] = (queue, request)
            for (index, piece) in request.pieces.enumerated() {
                pendingPieces.append(RingSubmission(operation: request.operation, host: piece.host, vectors: piece.vectors,
                                                    members: [.init(slot: slot, piece: index, length: piece.length)],
                                                    length: piece.length))
            }
            return nil
        }
    }

    /// Hands the prepared requests to the kernel, once per pass, and returns what is
    /// already complete (page-cache hits complete during the submit): those go on the
    /// used ring now, without waiting for the loop to see the eventfd.
    ///
    /// Under O_DIRECT a lone read or write (the only request in flight: queue depth 1) is
    /// waited for here (`waitForLoneCompletion`): going back to epoll_wait and waking on
    /// the eventfd cost 25 µs more per request (measured 9.2k against 12.2k IOPS at QD1).
    func submit(memory: GuestMemory) throws -> [Completion] {
        let lone = backend.ringDirect && startedThisPass == 1 && !flushThisPass && freeSlots.count == requests.count - 1
        startedThisPass = 0
        flushThisPass = false
        prepareThisPass(memory: memory)
        if lone {
            try waitForLoneCompletion()
        } else {
            try ring.submit()
        }
        var done = takeCompleted(memory: memory)
        ring.unmute()
        ring.runDeferredCompletions()
        done += takeCompleted(memory: memory)
        return done
    }

    /// Submits a lone request and waits for it: first by watching the completion ring for
    /// up to `completionWindow`, then asleep. Sleeping costs the wake-up of a thread on an
    /// idle CPU, which in a VM is an IPI through the hypervisor: measured here, 4 KiB
    /// O_DIRECT reads at QD1 went from 10-14k IOPS asleep to 18-23k watching (QEMU's I/O
    /// thread, which polls too: 14-18k). The window adapts as the queues' does: a
    /// completion that came soon after we gave up grows it, a disk slower than the largest
    /// window shrinks it to nothing, so a slow disk costs no CPU.
    private func waitForLoneCompletion() throws {
        try ring.submit()
        guard !idle else { return }  // it failed at once
        if completionWindow.poll({ ring.hasCompletion() }) { return }
        completionWindow.sleeping(at: PollingWindow.now())
        try ring.waitForCompletion()
        completionWindow.kicked(at: PollingWindow.now())
    }

    /// The requests the ring completed, when its eventfd said so.
    func collect(memory: GuestMemory) -> [Completion] {
        _ = ring.completionEvent.drainEvent()
        ring.runDeferredCompletions()
        return takeCompleted(memory: memory)
    }

    /// Waits for everything in flight (pause, reset, a layout change): on return nothing is.
    func waitIdle(memory: GuestMemory) -> [Completion] {
        prepareThisPass(memory: memory)
        var done = takeCompleted(memory: memory)
        while !idle {
            do {
                try ring.submit()
                try ring.waitForCompletion()
            } catch {
                break  // the ring itself failed: nothing more will complete
            }
            done += takeCompleted(memory: memory)
        }
        ring.unmute()
        _ = ring.completionEvent.drainEvent()
        return done
    }

    private func takeCompleted(memory: GuestMemory) -> [Completion] {
        var done = completedMeanwhile
        completedMeanwhile = []
        ring.drainCompletions { tag, result in complete(tag: Int(tag), result: result, memory: memory, into: &done) }
        return done
    }

    /// Merges this pass's pieces (`RingSubmission.merged`) and prepares one submission each.
    private func prepareThisPass(memory: GuestMemory) {
        guard !pendingPieces.isEmpty else { return }
        let merged = RingSubmission.merged(pendingPieces)
        pendingPieces = []
        for submission in merged {
            let tag = freeTags.removeLast()
            // SAFETY: the kernel reads the iovec array during `submit`, after this returns:
            // the tag's own array, not touched again until the tag is free and taken anew.
            // The guest memory it names stays mapped for the life of the process.
            let count = submission.vectors.count
            if vectorArrays[tag].count < max(count, 1) {
                vectorArrays[tag].deallocate()
                vectorArrays[tag] = .allocate(capacity: max(count, 4))
            }
            _ = UnsafeMutableBufferPointer(rebasing: vectorArrays[tag][..<count]).initialize(from: submission.vectors)
            let vectors = vectorArrays[tag].baseAddress!
            submissions[tag] = submission
            submissionCount += 1
            let prepared = switch submission.operation {
            case .read: ring.prepareRead(vectors, count: count, offset: submission.host, tag: UInt64(tag))
            case .write: ring.prepareWrite(vectors, count: count, offset: submission.host, tag: UInt64(tag))
            case .flush: ring.prepareDataSync(tag: UInt64(tag))
            }
            // The ring has an entry for every tag, so this cannot fail; if it did, the
            // submission fails its requests rather than waiting forever.
            if !prepared { complete(tag: tag, result: -EAGAIN, memory: memory, into: &completedMeanwhile) }
        }
    }

    /// Records one submission's result; appends the completions of the requests it finished
    /// to `done`.
    private func complete(tag: Int, result: Int32, memory: GuestMemory, into done: inout [Completion]) {
        guard tag < submissions.count, let submission = submissions[tag] else { return }
        submissions[tag] = nil
        freeTags.append(tag)
        if vectorArrays[tag].count > Self.keptVectors {
            vectorArrays[tag].deallocate()
            vectorArrays[tag] = UnsafeMutableBufferPointer(start: nil, count: 0)
        }
        submission.forEachMemberResult(result) { member, share in
            guard var entry = Self.record(share, ofPiece: member.piece, in: &requests[member.slot]) else { return }
            freeSlots.append(member.slot)
            let length = model.finish(&entry.request, backend: backend, memory: memory)
            done.append((entry.queue, entry.request.head, length))
        }
    }

    /// Records a piece's result in the request of `slot`; when it was the request's last
    /// piece, takes the request out of the slot and returns it. One access to the slot, in
    /// place: a copy of the request would copy its pieces.
    private static func record(
        _ result: Int32, ofPiece piece: Int, in slot: inout (queue: Int, request: BlockRingRequest)?
    ) -> (queue: Int, request: BlockRingRequest)? {
        guard slot != nil else { return nil }
        slot!.request.pieces[piece].result = result
        slot!.request.pending -= 1
        guard slot!.request.pending == 0 else { return nil }
        defer { slot = nil }
        return slot
    }
}

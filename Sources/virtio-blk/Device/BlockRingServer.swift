import Glibc
import GuestRAM
import LinuxSystem
import VirtioCore

/// Serves a raw disk's reads, flushes and (under `cache none`) writes through a
/// `RestrictedIOUring`, on the event loop: chains taken off a request queue are submitted
/// together after each pass, and their completions come back at once (page-cache hits)
/// or through the ring's eventfd. So the guest's queue depth reaches the host with no
/// thread of our own.
///
/// Not thread-safe: the event loop owns it.
final class BlockRingServer {
    private let ring: RestrictedIOUring
    private let model: BlockDeviceModel
    /// The image is open O_DIRECT (`cache none`): writes go to the ring too, unaligned
    /// buffers are served by the model instead.
    private let direct: Bool
    /// In flight, by tag (the ring's user_data), with the queue each came from.
    private var inFlight: [(queue: Int, request: BlockRingRequest, vectors: UnsafeMutablePointer<iovec>)?]
    private var freeTags: [Int]

    var completionEvent: FileDescriptor { ring.completionEvent }
    var idle: Bool { freeTags.count == inFlight.count }

    /// `capacity`: the most requests that can be in flight, every queue full (each chain
    /// holds at least one descriptor), so neither the tags nor the ring run out.
    init(model: BlockDeviceModel, file: FileDescriptor, direct: Bool, capacity: Int) throws {
        ring = try RestrictedIOUring(file: file, entries: UInt32(capacity))
        self.model = model
        self.direct = direct
        inFlight = Array(repeating: nil, count: capacity)
        freeTags = Array((0..<capacity).reversed())
    }

    /// Takes a chain of queue `queue`: nil if it went to the ring, else its used length
    /// (served at once: not a read, write or flush, refused, or no room, which a well-
    /// behaved driver cannot cause).
    func start(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) -> UInt32? {
        guard let tag = freeTags.last else { return model.process(chain, memory: memory) }
        switch model.start(chain, memory: memory, direct: direct) {
        case .finished(let length):
            return length
        case .submit(let request):
            // SAFETY: the kernel reads the iovec array during `submit`, after this returns:
            // it gets its own allocation, freed at the completion. The guest memory it names
            // stays mapped for the life of the process.
            let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: max(request.vectors.count, 1))
            vectors.initialize(from: request.vectors, count: request.vectors.count)
            let prepared = switch request.operation {
            case .read: ring.prepareRead(vectors, count: request.vectors.count, offset: request.offset, tag: UInt64(tag))
            case .write: ring.prepareWrite(vectors, count: request.vectors.count, offset: request.offset, tag: UInt64(tag))
            case .flush: ring.prepareDataSync(tag: UInt64(tag))
            }
            guard prepared else {
                vectors.deallocate()
                var request = request
                return model.finish(&request, result: -EAGAIN, memory: memory)
            }
            inFlight[tag] = (queue, request, vectors)
            freeTags.removeLast()
            return nil
        }
    }

    /// Hands the prepared requests to the kernel, once per batch of chains, and returns
    /// what is already complete (page-cache hits complete during the submit): those go on
    /// the used ring now, without waiting for the loop to see the eventfd.
    func submit(memory: GuestMemory) throws -> [(queue: Int, head: UInt16, length: UInt32)] {
        try ring.submit()
        var done = takeCompleted(memory: memory)
        ring.unmute()
        ring.runDeferredCompletions()
        done += takeCompleted(memory: memory)
        return done
    }

    /// The requests the ring completed, when its eventfd said so: their queues, heads and
    /// used lengths.
    func collect(memory: GuestMemory) -> [(queue: Int, head: UInt16, length: UInt32)] {
        _ = ring.completionEvent.drainEvent()
        ring.runDeferredCompletions()
        return takeCompleted(memory: memory)
    }

    private func takeCompleted(memory: GuestMemory) -> [(queue: Int, head: UInt16, length: UInt32)] {
        var done: [(queue: Int, head: UInt16, length: UInt32)] = []
        ring.drainCompletions { tag, result in
            guard tag < inFlight.count, var entry = inFlight[Int(tag)] else { return }
            inFlight[Int(tag)] = nil
            freeTags.append(Int(tag))
            entry.vectors.deallocate()
            let length = model.finish(&entry.request, result: result, memory: memory)
            done.append((entry.queue, entry.request.head, length))
        }
        return done
    }

    /// Waits for everything in flight (pause, reset): on return nothing is.
    func waitIdle(memory: GuestMemory) -> [(queue: Int, head: UInt16, length: UInt32)] {
        var done: [(queue: Int, head: UInt16, length: UInt32)] = []
        while !idle {
            do {
                try ring.waitForCompletion()
            } catch {
                break  // only EINTR-free failures: the ring itself is gone
            }
            done += takeCompleted(memory: memory)
        }
        _ = ring.completionEvent.drainEvent()
        return done
    }
}

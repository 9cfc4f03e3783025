import Glibc

/// A reusable list of iovecs for readv/writev/preadv/pwritev straight to and from guest
/// memory, so a packet or request costs no allocation. Holds at most IOV_MAX entries, what
/// one system call takes; the owner empties it before each use.
public final class IOVectorBuffer {
    public static let maximumCount = Int(UIO_MAXIOV)

    private let storage: UnsafeMutablePointer<iovec>
    public private(set) var count = 0

    public init() {
        storage = .allocate(capacity: Self.maximumCount)
    }

    deinit {
        storage.deallocate()
    }

    public var isEmpty: Bool { count == 0 }

    public func removeAll() {
        count = 0
    }

    /// Adds a slice of guest memory; empty slices are left out. False when full.
    public func append(_ slice: VolatileSlice) -> Bool {
        append(base: slice.base, length: slice.count)
    }

    /// Adds a host buffer the caller keeps alive until the system call returns (a checked
    /// copy of a header, for example). False when full.
    public func append(_ buffer: UnsafeRawBufferPointer) -> Bool {
        // SAFETY: writev only reads through it; the caller keeps the buffer alive for the call.
        append(base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), length: buffer.count)
    }

    private func append(base: UnsafeMutableRawPointer?, length: Int) -> Bool {
        guard length > 0 else { return true }
        guard count < Self.maximumCount else { return false }
        // SAFETY: `count < maximumCount`, the capacity allocated in init.
        storage[count] = iovec(iov_base: base, iov_len: length)
        count += 1
        return true
    }

    /// The entries, for the system call (valid only inside `body`).
    public func withVectors<Result>(_ body: (UnsafeBufferPointer<iovec>) throws -> Result) rethrows -> Result {
        // SAFETY: the first `count` entries are initialized; the buffer does not outlive `body`.
        try body(UnsafeBufferPointer(start: storage, count: count))
    }
}

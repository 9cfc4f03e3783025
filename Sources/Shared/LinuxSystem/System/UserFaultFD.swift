import CLinux
import Glibc

/// A userfaultfd(2) in missing-page mode: the lazy restore of a snapshot. The vm process
/// creates it and registers guest RAM (its own mapping, which KVM faults through); the
/// pager process, which holds it and the snapshot file only, resolves each fault by copying
/// the page in (or a zero page where the snapshot has none).
public final class UserFaultFD {
    public let fd: FileDescriptor

    /// Close-on-exec and non-blocking, with the API handshake done (required before any other call).
    public static func create() throws -> UserFaultFD {
        let raw = try retryingInterrupts("userfaultfd") { vmd_userfaultfd(O_CLOEXEC | O_NONBLOCK) }
        let uffd = UserFaultFD(fd: FileDescriptor(adopting: raw))
        var api = uffdio_api()
        api.api = UInt64(UFFD_API)
        try uffd.ioctl(VMD_UFFDIO_API, "UFFDIO_API", &api)
        return uffd
    }

    /// One received from the process that created it.
    public init(fd: FileDescriptor) { self.fd = fd }

    /// Faults on `[address, address + length)` of the calling process go to this descriptor.
    public func register(address: UInt64, length: UInt64) throws {
        var request = uffdio_register()
        request.range = uffdio_range(start: address, len: length)
        request.mode = VMD_UFFDIO_REGISTER_MODE_MISSING
        try ioctl(VMD_UFFDIO_REGISTER, "UFFDIO_REGISTER", &request)
    }

    public func unregister(address: UInt64, length: UInt64) throws {
        var range = uffdio_range(start: address, len: length)
        try ioctl(VMD_UFFDIO_UNREGISTER, "UFFDIO_UNREGISTER", &range)
    }

    /// Copies whole pages into the registered range and wakes whoever waits on them. Returns
    /// false when a page of the range is there already (filled before): nothing after it was
    /// copied, and the caller goes on page by page.
    public func copy(_ bytes: UnsafeRawBufferPointer, to address: UInt64) throws -> Bool {
        var done: UInt64 = 0
        while done < UInt64(bytes.count) {
            var request = uffdio_copy()
            request.dst = address + done
            request.src = UInt64(UInt(bitPattern: bytes.baseAddress)) + done
            request.len = UInt64(bytes.count) - done
            do {
                try ioctl(VMD_UFFDIO_COPY, "UFFDIO_COPY", &request)
                return true
            } catch let error as SystemError where error.errno == EEXIST {
                return false
            } catch let error as SystemError where error.errno == EAGAIN {
                // Copied in part (`copy` says how much), or the mappings were changing: go on from there.
                if request.copy > 0 { done += UInt64(request.copy) }
            }
        }
        return true
    }

    /// Maps the zero page over `[address, address + length)` (a page the snapshot left out).
    /// False when it was filled meanwhile.
    public func zero(address: UInt64, length: UInt64) throws -> Bool {
        var request = uffdio_zeropage()
        request.range = uffdio_range(start: address, len: length)
        do {
            try ioctl(VMD_UFFDIO_ZEROPAGE, "UFFDIO_ZEROPAGE", &request)
            return true
        } catch let error as SystemError where error.errno == EEXIST {
            return false
        }
    }

    /// Wakes threads waiting on a range that another copy filled.
    public func wake(address: UInt64, length: UInt64) throws {
        var range = uffdio_range(start: address, len: length)
        try ioctl(VMD_UFFDIO_WAKE, "UFFDIO_WAKE", &range)
    }

    /// The address of the next page fault reported, nil when none waits. Other events
    /// (none are asked for) are skipped.
    public func nextFault() throws -> UInt64? {
        // struct uffd_msg: u8 event, then (for a page fault) u64 flags at 8 and u64 address at 16; 32 bytes.
        var message = [UInt8](repeating: 0, count: 32)
        while true {
            let count = message.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress!, 32) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return nil }
                throw SystemError("read(userfaultfd)", errno: errno)
            }
            guard count == 32 else { throw SystemError("read(userfaultfd): \(count) bytes", errno: EIO) }
            guard message[0] == VMD_UFFD_EVENT_PAGEFAULT else { continue }
            return (16..<24).reduce(UInt64(0)) { $0 | UInt64(message[$1]) << (8 * UInt64($1 - 16)) }
        }
    }

    private func ioctl<Argument>(_ request: UInt, _ name: String, _ argument: inout Argument) throws {
        // SAFETY: `Argument` is the structure the request is defined with, valid for the call.
        _ = try withUnsafeMutablePointer(to: &argument) { pointer in
            try retryingInterrupts(name) { vmd_ioctl_ptr(fd.rawValue, request, pointer) }
        }
    }
}

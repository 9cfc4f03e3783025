import CLinux
import Glibc
import Configuration
import LinuxSystem

/// A tap interface vmd creates for one NIC (issue 4): opened from /dev/net/tun
/// with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 12-byte virtio-net header, the
/// offloads the device may use, link up, and for a `local interface` the host's
/// address of the /31. With more than one queue (IFF_MULTI_QUEUE) each descriptor is a
/// queue of the tap, one per virtio-net queue pair, and all but the first are detached
/// until the driver puts more pairs in use. Only the virtio-net process ever holds the
/// descriptors afterwards.
struct TapDevice {
    /// One per queue, the first attached.
    let queues: [FileDescriptor]
    let name: String

    enum TapError: Error, CustomStringConvertible {
        case setup(String, SystemError)

        var description: String {
            switch self {
            case .setup(let what, let error): "tap: \(what): \(String(cString: strerror(error.errno)))"
            }
        }
    }

    static let vnetHeaderSize: Int32 = 12

    /// Creates the tap (named `name`, or the kernel's next tapN) with `queueCount` queues.
    /// `offloads`, sets of TUN_F_* flags best first, are probed (TUNSETOFFLOAD) and left off:
    /// the virtio-net process turns on those the guest negotiates; `acceptedOffloads` is the
    /// first set the kernel took (0 if none), what the device may offer.
    /// A tap that exists already without IFF_MULTI_QUEUE (made by `ip tuntap` as a single
    /// queue) is taken as it is, with one queue: the caller sizes the device by `queues`.
    static func create(name: String?, offloads: [UInt32], queueCount: Int = 1) throws -> (tap: TapDevice, acceptedOffloads: UInt32) {
        let flags = VMD_IFF_TAP | VMD_IFF_NO_PI | VMD_IFF_VNET_HDR
        var actual: String
        var queues: [FileDescriptor]
        if queueCount > 1 {
            do {
                let (first, firstName) = try openQueue(name: name, flags: flags | VMD_IFF_MULTI_QUEUE)
                actual = firstName
                queues = [first]
            } catch TapError.setup(_, let error) where error.errno == EINVAL && name != nil {
                // tun.c refuses IFF_MULTI_QUEUE on a tap made without it (EINVAL): one queue then.
                let (only, onlyName) = try openQueue(name: name, flags: flags)
                return try configure(TapDevice(queues: [only], name: onlyName), offloads: offloads)
            }
            // The rest attach to the tap just made, by its name and with the same flags.
            for _ in 1..<queueCount {
                let (queue, _) = try openQueue(name: actual, flags: flags | VMD_IFF_MULTI_QUEUE)
                queues.append(queue)
            }
            do {
                for queue in queues.dropFirst() { try TapQueue.setAttached(queue, false) }
            } catch let error as SystemError {
                throw TapError.setup("detaching the queues not in use", error)
            }
        } else {
            let (only, onlyName) = try openQueue(name: name, flags: flags)
            (actual, queues) = (onlyName, [only])
        }
        return try configure(TapDevice(queues: queues, name: actual), offloads: offloads)
    }

    /// Opens /dev/net/tun and makes it a queue of the tap `name` (TUNSETIFF); returns it and
    /// the tap's name as the kernel gave it.
    private static func openQueue(name: String?, flags: UInt32) throws -> (FileDescriptor, String) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open("/dev/net/tun", flags: O_RDWR | O_NONBLOCK) } catch let error as SystemError {
            throw TapError.setup("open /dev/net/tun", error)
        }
        var request = ifreq()
        if let name { setName(&request, name) }
        request.ifr_ifru.ifru_flags = Int16(flags)
        try ioctl(fd, VMD_TUNSETIFF, &request, "TUNSETIFF(\(name ?? "tap%d"))")
        // SAFETY: ifrn_name is IFNAMSIZ bytes; the name is read up to its NUL, within them.
        let actual = withUnsafeBytes(of: request.ifr_ifrn.ifrn_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return (fd, actual)
    }

    /// The header size and offloads, set once for the whole tap (tun.c keeps both per
    /// device, not per queue), and the link up.
    private static func configure(_ tap: TapDevice, offloads: [UInt32]) throws -> (tap: TapDevice, acceptedOffloads: UInt32) {
        let fd = tap.queues[0]
        var headerSize = vnetHeaderSize
        try ioctl(fd, VMD_TUNSETVNETHDRSZ, &headerSize, "TUNSETVNETHDRSZ")
        // TUNSETOFFLOAD refuses the whole set when one flag is unknown: the first set it takes wins.
        let accepted = offloads.first { vmd_ioctl_int(fd.rawValue, VMD_TUNSETOFFLOAD, UInt($0)) == 0 } ?? 0
        try check(vmd_ioctl_int(fd.rawValue, VMD_TUNSETOFFLOAD, 0), "TUNSETOFFLOAD(0)")
        try tap.setLinkUp()
        return (tap, accepted)
    }

    /// Brings the link up (SIOCSIFFLAGS with IFF_UP).
    func setLinkUp() throws {
        try withControlSocket { socket in
            var request = ifreq()
            TapDevice.setName(&request, name)
            try TapDevice.ioctl(socket, VMD_SIOCGIFFLAGS, &request, "SIOCGIFFLAGS")
            request.ifr_ifru.ifru_flags |= Int16(IFF_UP)
            try TapDevice.ioctl(socket, VMD_SIOCSIFFLAGS, &request, "SIOCSIFFLAGS")
        }
    }

    /// Sets the tap's own MAC (SIOCSIFHWADDR; a tap takes it while up).
    func setHardwareAddress(_ mac: [UInt8]) throws {
        try withControlSocket { socket in
            var request = ifreq()
            TapDevice.setName(&request, name)
            request.ifr_ifru.ifru_hwaddr.sa_family = sa_family_t(VMD_ARPHRD_ETHER)
            // SAFETY: sa_data is 14 bytes; the MAC's 6 go at its start.
            withUnsafeMutableBytes(of: &request.ifr_ifru.ifru_hwaddr.sa_data) { $0.copyBytes(from: mac.prefix(6)) }
            try TapDevice.ioctl(socket, VMD_SIOCSIFHWADDR, &request, "SIOCSIFHWADDR")
        }
    }

    /// Gives the host side an IPv4 address and netmask (a `local interface`).
    func setAddress(_ address: UInt32, prefixLength: Int) throws {
        try withControlSocket { socket in
            var request = ifreq()
            TapDevice.setName(&request, name)
            request.ifr_ifru.ifru_addr = TapDevice.socketAddress(address)
            try TapDevice.ioctl(socket, VMD_SIOCSIFADDR, &request, "SIOCSIFADDR")
            let mask: UInt32 = prefixLength == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefixLength))
            request.ifr_ifru.ifru_netmask = TapDevice.socketAddress(mask)
            try TapDevice.ioctl(socket, VMD_SIOCSIFNETMASK, &request, "SIOCSIFNETMASK")
        }
    }

    /// Adds the tap to a bridge (`switch "name"`).
    func addToBridge(_ bridge: String) throws {
        try withControlSocket { socket in
            var index = ifreq()
            TapDevice.setName(&index, name)
            try TapDevice.ioctl(socket, VMD_SIOCGIFINDEX, &index, "SIOCGIFINDEX(\(name))")
            var request = ifreq()
            TapDevice.setName(&request, bridge)
            request.ifr_ifru.ifru_ivalue = index.ifr_ifru.ifru_ivalue
            try TapDevice.ioctl(socket, VMD_SIOCBRADDIF, &request, "SIOCBRADDIF(\(bridge))")
        }
    }

    private func withControlSocket(_ body: (FileDescriptor) throws -> Void) throws {
        let raw = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw TapError.setup("socket", SystemError.last("socket")) }
        try body(FileDescriptor(adopting: raw))
    }

    private static func setName(_ request: inout ifreq, _ name: String) {
        // SAFETY: the name is at most IFNAMSIZ - 1 bytes (checked by the caller), so its NUL fits.
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { buffer in
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            buffer.copyBytes(from: Array(name.utf8.prefix(buffer.count - 1)))
        }
    }

    private static func socketAddress(_ address: UInt32) -> sockaddr {
        var inet = sockaddr_in()
        inet.sin_family = sa_family_t(AF_INET)
        inet.sin_addr.s_addr = address.bigEndian
        // SAFETY: sockaddr_in and sockaddr are both 16 bytes; sockaddr is its generic view.
        return withUnsafeBytes(of: inet) { $0.load(as: sockaddr.self) }
    }

    private static func ioctl<Argument>(_ fd: FileDescriptor, _ request: UInt, _ argument: inout Argument, _ what: String) throws {
        // SAFETY: the ioctl's argument is the struct it is defined with, alive for the call.
        let result = withUnsafeMutablePointer(to: &argument) { vmd_ioctl_ptr(fd.rawValue, request, $0) }
        try check(result, what)
    }

    private static func check(_ result: Int32, _ what: String) throws {
        if result < 0 { throw TapError.setup(what, SystemError.last(what)) }
    }
}

/// The /31 a `local interface` gets from the local prefix (vm.conf's `local
/// prefix`, default 100.64.0.0/10): the host (tap) takes the even address, the
/// guest the odd one; `index` counts local interfaces across vmd's VMs.
struct LocalSubnet: Equatable {
    let host: UInt32
    let guest: UInt32
    static let prefixLength = 31

    init?(prefix: IPv4Prefix, index: Int) {
        let size = prefix.prefixLength >= 32 ? 1 : UInt64(1) << UInt64(32 - prefix.prefixLength)
        guard index >= 0, UInt64(index) * 2 + 1 < size else { return nil }
        host = prefix.address + UInt32(index * 2)
        guest = host + 1
    }

    static func format(_ address: UInt32) -> String {
        "\(address >> 24).\((address >> 16) & 0xFF).\((address >> 8) & 0xFF).\(address & 0xFF)"
    }
}

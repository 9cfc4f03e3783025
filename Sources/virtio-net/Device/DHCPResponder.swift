/// The DHCP server of a "local interface" (vmd's `local interface`): the tap holds the host's
/// address and the guest gets the other end of a small subnet (usually a /31). The device
/// answers the guest's DHCPDISCOVER and DHCPREQUEST itself (RFC 2131), so no DHCP server runs
/// on the host; every other frame goes to the tap. Pure: bytes in, bytes out.
///
/// Everything in a request frame is the guest's and is checked before use: every length
/// against the bytes that are really there, the IPv4 header checksum, the BOOTP magic cookie,
/// and option parsing bounded by the options area.
struct DHCPResponder: Sendable {
    /// The largest frame looked at: an Ethernet frame of a 1500-byte MTU, without FCS.
    static let maximumRequestLength = 1514
    /// Bytes needed to tell a DHCP request from other traffic: Ethernet, the longest IPv4
    /// header (60), and the UDP ports.
    static let candidatePrefixLength = 14 + 60 + 4

    static let serverPort: UInt16 = 67
    static let clientPort: UInt16 = 68
    static let magicCookie: [UInt8] = [99, 130, 83, 99]
    /// BOOTP messages are at least 300 bytes (RFC 951; RFC 1542 §3.1.1: some clients drop shorter).
    static let minimumMessageLength = 300
    static let defaultServerMAC = MACAddress([0xFE, 0x54, 0x00, 0x00, 0x00, 0x01])!

    enum MessageType: UInt8 {
        case discover = 1, offer = 2, request = 3, decline = 4, ack = 5, nak = 6, release = 7, inform = 8
    }

    enum Option {
        static let pad: UInt8 = 0
        static let subnetMask: UInt8 = 1
        static let router: UInt8 = 3
        static let domainNameServer: UInt8 = 6
        static let requestedAddress: UInt8 = 50
        static let leaseTime: UInt8 = 51
        static let messageType: UInt8 = 53
        static let serverIdentifier: UInt8 = 54
        static let end: UInt8 = 255
    }

    let clientMAC: MACAddress
    let clientAddress: IPv4Address
    /// The host end of the link: DHCP server, router, and the source of replies.
    let serverAddress: IPv4Address
    let subnetMask: IPv4Address
    let leaseSeconds: UInt32
    let dnsServers: [IPv4Address]
    /// The Ethernet source of replies (the tap's MAC where vmd knows it).
    let serverMAC: MACAddress

    init(clientMAC: MACAddress, clientAddress: IPv4Address, serverAddress: IPv4Address, prefixLength: Int = 31,
         leaseSeconds: UInt32 = 86400, dnsServers: [IPv4Address] = [], serverMAC: MACAddress = defaultServerMAC)
        throws(DHCPConfigurationError)
    {
        guard (1...31).contains(prefixLength) else { throw .prefixLength(prefixLength) }
        let mask = IPv4Address.netmask(prefixLength: prefixLength)
        guard clientAddress != serverAddress else { throw .sameAddress(clientAddress) }
        guard clientAddress.value & mask.value == serverAddress.value & mask.value else {
            throw .differentSubnets(clientAddress, serverAddress, prefixLength)
        }
        if prefixLength < 31 {
            // Below /31 the all-zeros and all-ones hosts are the network and its broadcast.
            for address in [clientAddress, serverAddress] {
                let host = address.value & ~mask.value
                guard host != 0 && host != ~mask.value else { throw .notAHostAddress(address, prefixLength) }
            }
        }
        guard leaseSeconds > 0 else { throw .leaseTime }
        guard dnsServers.count <= 8 else { throw .tooManyDNSServers(dnsServers.count) }
        self.clientMAC = clientMAC
        self.clientAddress = clientAddress
        self.serverAddress = serverAddress
        self.subnetMask = mask
        self.leaseSeconds = leaseSeconds
        self.dnsServers = dnsServers
        self.serverMAC = serverMAC
    }

    // MARK: Entry point

    /// The reply to `frame` (an Ethernet frame from the guest), or nil if it is not a
    /// DHCPDISCOVER or DHCPREQUEST of our client this server should answer.
    func reply(to frame: [UInt8]) -> [UInt8]? {
        guard frame.count <= Self.maximumRequestLength, let request = DHCPRequest(parsing: frame),
              request.clientMAC == clientMAC else { return nil }
        switch request.type {
        case .discover:
            return build(.offer, for: request)
        case .request:
            // RFC 2131 §4.3.2: a server identifier says the client is SELECTING; an identifier
            // other than ours means it chose another server, which we leave alone.
            if let server = request.serverIdentifier, server != serverAddress { return nil }
            // The address asked for: option 50 (SELECTING, INIT-REBOOT) or ciaddr (RENEWING, REBINDING).
            let wanted = request.requestedAddress ?? request.clientIPAddress
            guard wanted != .any else { return nil }
            return build(wanted == clientAddress ? .ack : .nak, for: request)
        default:
            return nil
        }
    }

    /// Whether a frame starting with `prefix` (up to `candidatePrefixLength` bytes) may be a
    /// DHCP request: IPv4, UDP, to port 67. Cheap, so other frames are not copied out.
    // SAFETY: reads only prefix[0..<count] through the buffer's checked subscript.
    static func mightBeRequest(_ prefix: UnsafeRawBufferPointer) -> Bool {
        guard prefix.count >= 14 + 20 + 4, prefix[12] == 0x08, prefix[13] == 0x00, prefix[14] >> 4 == 4,
              prefix[23] == 17 else { return false }
        let udp = 14 + Int(prefix[14] & 0x0F) * 4
        guard udp + 4 <= prefix.count else { return false }
        return UInt16(prefix[udp + 2]) << 8 | UInt16(prefix[udp + 3]) == serverPort
    }

    // MARK: Replies

    private func build(_ type: MessageType, for request: DHCPRequest) -> [UInt8] {
        let granted = type != .nak
        var message = [UInt8](repeating: 0, count: 236)
        message[0] = 2                                       // op: BOOTREPLY
        message[1] = 1                                       // htype: Ethernet
        message[2] = 6                                       // hlen
        message.replaceSubrange(4..<8, with: request.transactionID)
        // secs 0; flags as the client sent them (RFC 2131 §4.3.1, table 3).
        message[10] = UInt8(request.flags >> 8)
        message[11] = UInt8(truncatingIfNeeded: request.flags)
        if type == .ack { message.replaceSubrange(12..<16, with: request.clientIPAddress.bytes) }  // ciaddr
        if granted { message.replaceSubrange(16..<20, with: clientAddress.bytes) }                 // yiaddr
        message.replaceSubrange(28..<44, with: request.hardwareAddress)                             // chaddr
        message += Self.magicCookie

        func option(_ code: UInt8, _ value: [UInt8]) { message += [code, UInt8(value.count)] + value }
        option(Option.messageType, [type.rawValue])
        option(Option.serverIdentifier, serverAddress.bytes)
        if granted {
            option(Option.leaseTime, [UInt8(leaseSeconds >> 24), UInt8(truncatingIfNeeded: leaseSeconds >> 16),
                                      UInt8(truncatingIfNeeded: leaseSeconds >> 8), UInt8(truncatingIfNeeded: leaseSeconds)])
            option(Option.subnetMask, subnetMask.bytes)
            option(Option.router, serverAddress.bytes)
            if !dnsServers.isEmpty { option(Option.domainNameServer, dnsServers.flatMap(\.bytes)) }
        }
        message.append(Option.end)
        if message.count < Self.minimumMessageLength {
            message += [UInt8](repeating: 0, count: Self.minimumMessageLength - message.count)
        }

        // RFC 2131 §4.1: a NAK is broadcast; an ACK to a client with an address goes to it;
        // else broadcast if the client asked (it cannot take unicast yet), else to yiaddr.
        let destination: IPv4Address
        if type == .nak || request.flags & 0x8000 != 0 {
            destination = .broadcast
        } else if type == .ack && request.clientIPAddress != .any {
            destination = request.clientIPAddress
        } else {
            destination = clientAddress
        }
        return Self.frame(udpPayload: message, from: serverAddress, to: destination,
                          sourceMAC: serverMAC, destinationMAC: clientMAC)
    }

    /// Ethernet + IPv4 + UDP (67 → 68) around `udpPayload`, both checksums filled in.
    static func frame(udpPayload: [UInt8], from source: IPv4Address, to destination: IPv4Address,
                      sourceMAC: MACAddress, destinationMAC: MACAddress) -> [UInt8] {
        func be16(_ value: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }
        let udpLength = 8 + udpPayload.count
        var udp = be16(Int(serverPort)) + be16(Int(clientPort)) + be16(udpLength) + [0, 0] + udpPayload
        var pseudo = InternetChecksum()
        pseudo.add(source.bytes + destination.bytes + [0, 17] + be16(udpLength))
        pseudo.add(udp)
        // RFC 768: a computed checksum of zero is sent as all ones (zero means "none").
        let udpChecksum = pseudo.value == 0 ? 0xFFFF : pseudo.value
        udp[6] = UInt8(udpChecksum >> 8)
        udp[7] = UInt8(truncatingIfNeeded: udpChecksum)

        var ip: [UInt8] = [0x45, 0] + be16(20 + udpLength) + [0, 0, 0, 0, 64, 17, 0, 0] + source.bytes + destination.bytes
        let ipChecksum = InternetChecksum.of(ip)
        ip[10] = UInt8(ipChecksum >> 8)
        ip[11] = UInt8(truncatingIfNeeded: ipChecksum)
        return destinationMAC.bytes + sourceMAC.bytes + [0x08, 0x00] + ip + udp
    }
}

/// A host-side configuration the responder refuses.
enum DHCPConfigurationError: Error, Equatable, CustomStringConvertible {
    case prefixLength(Int)
    case sameAddress(IPv4Address)
    case differentSubnets(IPv4Address, IPv4Address, Int)
    case notAHostAddress(IPv4Address, Int)
    case leaseTime
    case tooManyDNSServers(Int)

    var description: String {
        switch self {
        case .prefixLength(let length): "prefix length /\(length) (1 to 31 allowed)"
        case .sameAddress(let address): "guest and host both have \(address)"
        case .differentSubnets(let guest, let host, let length): "\(guest) and \(host) are not in one /\(length)"
        case .notAHostAddress(let address, let length): "\(address) is the network or broadcast address of its /\(length)"
        case .leaseTime: "lease time 0"
        case .tooManyDNSServers(let count): "\(count) DNS servers (at most 8)"
        }
    }
}

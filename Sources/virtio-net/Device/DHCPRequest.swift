/// A DHCP client message (RFC 2131 §2) taken out of an Ethernet frame from the guest:
/// Ethernet II, IPv4 (not fragmented, header checksum right), UDP 68 → 67, BOOTREQUEST over
/// Ethernet with the magic cookie, and the options that matter. Every offset is checked
/// against the bytes present; nil for anything else.
struct DHCPRequest: Equatable, Sendable {
    let type: DHCPResponder.MessageType
    let transactionID: [UInt8]
    let flags: UInt16
    /// ciaddr: the client's current address, when it has one (RENEWING, REBINDING).
    let clientIPAddress: IPv4Address
    /// chaddr, all 16 bytes, returned as they came.
    let hardwareAddress: [UInt8]
    let clientMAC: MACAddress
    /// Option 50.
    let requestedAddress: IPv4Address?
    /// Option 54.
    let serverIdentifier: IPv4Address?

    /// Fixed part of a BOOTP message before the options (RFC 2131 §2, figure 1), and the cookie.
    static let fixedLength = 236
    static let optionsOffset = 240

    init?(parsing frame: [UInt8]) {
        func be16(_ offset: Int) -> Int { Int(frame[offset]) << 8 | Int(frame[offset + 1]) }
        func address(_ offset: Int) -> IPv4Address {
            IPv4Address(frame[offset], frame[offset + 1], frame[offset + 2], frame[offset + 3])
        }

        // Ethernet II carrying IPv4 (no VLAN tag: the guest's link has none).
        let ip = 14
        guard frame.count >= ip + 20, be16(12) == 0x0800 else { return nil }

        // IPv4 (RFC 791): version 4, header length within the frame, total length within the
        // frame (Ethernet may pad beyond it), no fragment, UDP, header checksum right.
        let headerLength = Int(frame[ip] & 0x0F) * 4
        guard frame[ip] >> 4 == 4, headerLength >= 20, ip + headerLength <= frame.count else { return nil }
        let totalLength = be16(ip + 2)
        guard totalLength >= headerLength + 8, ip + totalLength <= frame.count else { return nil }
        guard be16(ip + 6) & 0x3FFF == 0, frame[ip + 9] == 17 else { return nil }  // MF clear, offset 0
        guard InternetChecksum.of(frame[ip..<(ip + headerLength)]) == 0 else { return nil }

        // UDP (RFC 768) from the client port to the server port; its checksum is not checked
        // (with VIRTIO_NET_F_CSUM it may legitimately be left to the device).
        let udp = ip + headerLength
        let udpLength = be16(udp + 4)
        guard be16(udp) == Int(DHCPResponder.clientPort), be16(udp + 2) == Int(DHCPResponder.serverPort),
              udpLength >= 8, udpLength <= totalLength - headerLength else { return nil }

        // BOOTP (RFC 951, RFC 2131 §2): a BOOTREQUEST for a 6-byte Ethernet address, with the cookie.
        let bootp = udp + 8
        let bootpEnd = udp + udpLength
        guard bootpEnd - bootp >= Self.optionsOffset else { return nil }
        guard frame[bootp] == 1, frame[bootp + 1] == 1, frame[bootp + 2] == 6 else { return nil }
        guard Array(frame[(bootp + Self.fixedLength)..<(bootp + Self.optionsOffset)]) == DHCPResponder.magicCookie else {
            return nil
        }
        // A relayed request (giaddr set) cannot come from the guest on a point-to-point link.
        guard address(bootp + 24) == .any else { return nil }

        guard let options = Self.options(frame[(bootp + Self.optionsOffset)..<bootpEnd]),
              let typeValue = options[DHCPResponder.Option.messageType], typeValue.count == 1,
              let type = DHCPResponder.MessageType(rawValue: typeValue[0]) else { return nil }
        func addressOption(_ code: UInt8) -> IPv4Address?? {
            guard let value = options[code] else { return .some(nil) }
            guard value.count == 4 else { return nil }  // present but malformed
            return .some(IPv4Address(value[0], value[1], value[2], value[3]))
        }
        guard let requested = addressOption(DHCPResponder.Option.requestedAddress),
              let server = addressOption(DHCPResponder.Option.serverIdentifier) else { return nil }

        self.type = type
        transactionID = Array(frame[(bootp + 4)..<(bootp + 8)])
        flags = UInt16(be16(bootp + 10))
        clientIPAddress = address(bootp + 12)
        hardwareAddress = Array(frame[(bootp + 28)..<(bootp + 44)])
        clientMAC = MACAddress(Array(frame[(bootp + 28)..<(bootp + 34)]))!
        requestedAddress = requested
        serverIdentifier = server
    }

    /// The options (RFC 2132 §2): code, length, value, with pad and end; a code that appears
    /// more than once has its values joined (RFC 3396). Nil if one runs past the area.
    static func options(_ area: ArraySlice<UInt8>) -> [UInt8: [UInt8]]? {
        var result: [UInt8: [UInt8]] = [:]
        var index = area.startIndex
        while index < area.endIndex {
            let code = area[index]
            if code == DHCPResponder.Option.pad { index += 1; continue }
            if code == DHCPResponder.Option.end { return result }
            guard index + 1 < area.endIndex else { return nil }
            let length = Int(area[index + 1])
            let start = index + 2
            guard start + length <= area.endIndex else { return nil }
            result[code, default: []] += area[start..<(start + length)]
            index = start + length
        }
        // RFC 2131 §4.1 wants an end option; clients that stop at the area's end are taken as well.
        return result
    }
}

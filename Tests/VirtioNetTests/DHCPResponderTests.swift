import XCTest
@testable import NetDevice

/// The DHCP server of a local interface, against frames built here the way a client
/// (udhcpc, dhclient) builds them, and against garbage.
final class DHCPResponderTests: XCTestCase {
    private let guest = IPv4Address(100, 64, 0, 3)
    private let host = IPv4Address(100, 64, 0, 2)
    private let dns = IPv4Address(9, 9, 9, 9)
    private let xid: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]

    private func responder() throws -> DHCPResponder {
        try DHCPResponder(clientMAC: testMAC, clientAddress: guest, serverAddress: host, prefixLength: 31,
                          leaseSeconds: 3600, dnsServers: [dns])
    }

    // MARK: Building requests (independently of the code under test)

    private static func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

    private static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index < bytes.count {
            sum += UInt32(bytes[index]) << 8 | (index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0)
            index += 2
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// A client message: Ethernet broadcast from the guest, 0.0.0.0 → 255.255.255.255, UDP 68 → 67.
    func requestFrame(type: UInt8, options extra: [UInt8] = [], ciaddr: [UInt8] = [0, 0, 0, 0],
                      mac: MACAddress = testMAC, cookie: [UInt8] = [99, 130, 83, 99], flags: UInt16 = 0) -> [UInt8] {
        var bootp = [UInt8](repeating: 0, count: 236)
        bootp[0] = 1; bootp[1] = 1; bootp[2] = 6
        bootp.replaceSubrange(4..<8, with: xid)
        bootp[10] = UInt8(flags >> 8)
        bootp.replaceSubrange(12..<16, with: ciaddr)
        bootp.replaceSubrange(28..<34, with: mac.bytes)
        bootp += cookie + [53, 1, type] + extra + [55, 3, 1, 3, 6, 255]
        bootp += [UInt8](repeating: 0, count: max(0, 300 - bootp.count))
        var udp = Self.be16(68) + Self.be16(67) + Self.be16(8 + bootp.count) + [0, 0] + bootp
        let pseudo = [0, 0, 0, 0, 255, 255, 255, 255, 0, 17] + Self.be16(udp.count)
        let udpSum = Self.checksum(pseudo + udp)
        udp[6] = UInt8(udpSum >> 8); udp[7] = UInt8(udpSum & 0xFF)
        var ip: [UInt8] = [0x45, 0] + Self.be16(20 + udp.count) + [0, 1, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]
        let ipSum = Self.checksum(ip)
        ip[10] = UInt8(ipSum >> 8); ip[11] = UInt8(ipSum & 0xFF)
        return MACAddress.broadcast.bytes + mac.bytes + [0x08, 0x00] + ip + udp
    }

    // MARK: Reading replies (independently of the code under test)

    struct Reply {
        let frame: [UInt8]
        var ethernetDestination: [UInt8] { Array(frame[0..<6]) }
        var ipHeader: [UInt8] { Array(frame[14..<34]) }
        var sourceIP: [UInt8] { Array(frame[26..<30]) }
        var destinationIP: [UInt8] { Array(frame[30..<34]) }
        var udp: [UInt8] { Array(frame[34...]) }
        var bootp: [UInt8] { Array(frame[42...]) }
        var yiaddr: [UInt8] { Array(bootp[16..<20]) }
        var options: [UInt8: [UInt8]] {
            var result: [UInt8: [UInt8]] = [:]
            var index = 240
            while index < bootp.count && bootp[index] != 255 {
                if bootp[index] == 0 { index += 1; continue }
                let length = Int(bootp[index + 1])
                result[bootp[index]] = Array(bootp[(index + 2)..<(index + 2 + length)])
                index += 2 + length
            }
            return result
        }
    }

    private func checkWellFormed(_ reply: Reply, line: UInt = #line) {
        XCTAssertEqual(reply.ethernetDestination, testMAC.bytes, "addressed to the client's MAC", line: line)
        XCTAssertEqual(Array(reply.frame[6..<12]), DHCPResponder.defaultServerMAC.bytes, line: line)
        XCTAssertEqual(Array(reply.frame[12..<14]), [0x08, 0x00], line: line)
        XCTAssertEqual(reply.ipHeader[0], 0x45, line: line)
        XCTAssertEqual(Int(reply.ipHeader[2]) << 8 | Int(reply.ipHeader[3]), reply.frame.count - 14, "IP total length", line: line)
        XCTAssertEqual(reply.ipHeader[9], 17, line: line)
        XCTAssertEqual(Self.checksum(reply.ipHeader), 0, "IPv4 header checksum verifies", line: line)
        XCTAssertEqual(reply.sourceIP, host.bytes, line: line)
        XCTAssertEqual(Array(reply.udp[0..<4]), Self.be16(67) + Self.be16(68), line: line)
        XCTAssertEqual(Int(reply.udp[4]) << 8 | Int(reply.udp[5]), reply.udp.count, "UDP length", line: line)
        let pseudo = reply.sourceIP + reply.destinationIP + [0, 17] + Self.be16(reply.udp.count)
        XCTAssertNotEqual(Array(reply.udp[6..<8]), [0, 0], line: line)
        XCTAssertEqual(Self.checksum(pseudo + reply.udp), 0, "UDP checksum verifies", line: line)
        XCTAssertEqual(reply.bootp[0], 2, "BOOTREPLY", line: line)
        XCTAssertEqual(Array(reply.bootp[4..<8]), xid, line: line)
        XCTAssertEqual(Array(reply.bootp[28..<34]), testMAC.bytes, line: line)
        XCTAssertEqual(Array(reply.bootp[236..<240]), [99, 130, 83, 99], line: line)
        XCTAssertGreaterThanOrEqual(reply.bootp.count, 300, line: line)
    }

    // MARK: Tests

    func testDiscoverGetsAnOffer() throws {
        let reply = Reply(frame: try XCTUnwrap(try responder().reply(to: requestFrame(type: 1))))
        checkWellFormed(reply)
        XCTAssertEqual(reply.yiaddr, guest.bytes)
        XCTAssertEqual(reply.destinationIP, guest.bytes, "unicast to the offered address without the broadcast bit")
        let options = reply.options
        XCTAssertEqual(options[53], [2], "DHCPOFFER")
        XCTAssertEqual(options[54], host.bytes)
        XCTAssertEqual(options[51], [0, 0, 0x0E, 0x10], "3600 s")
        XCTAssertEqual(options[1], [255, 255, 255, 254], "/31")
        XCTAssertEqual(options[3], host.bytes)
        XCTAssertEqual(options[6], dns.bytes)
    }

    func testRequestGetsAnAckAndBroadcastBitIsHonoured() throws {
        let frame = requestFrame(type: 3, options: [50, 4] + guest.bytes + [54, 4] + host.bytes, flags: 0x8000)
        let reply = Reply(frame: try XCTUnwrap(try responder().reply(to: frame)))
        checkWellFormed(reply)
        XCTAssertEqual(reply.options[53], [5], "DHCPACK")
        XCTAssertEqual(reply.yiaddr, guest.bytes)
        XCTAssertEqual(reply.destinationIP, [255, 255, 255, 255])
        XCTAssertEqual(Array(reply.bootp[10..<12]), [0x80, 0], "flags echoed")
    }

    func testRenewingClientIsAckedToItsAddress() throws {
        let reply = Reply(frame: try XCTUnwrap(try responder().reply(to: requestFrame(type: 3, ciaddr: guest.bytes))))
        checkWellFormed(reply)
        XCTAssertEqual(reply.options[53], [5])
        XCTAssertEqual(Array(reply.bootp[12..<16]), guest.bytes, "ciaddr echoed in an ACK")
        XCTAssertEqual(reply.destinationIP, guest.bytes)
    }

    func testRequestForAnotherAddressGetsANakAndForAnotherServerNothing() throws {
        let wrong = IPv4Address(100, 64, 0, 9)
        let nak = Reply(frame: try XCTUnwrap(try responder().reply(to: requestFrame(type: 3, options: [50, 4] + wrong.bytes))))
        checkWellFormed(nak)
        XCTAssertEqual(nak.options[53], [6], "DHCPNAK")
        XCTAssertEqual(nak.yiaddr, [0, 0, 0, 0])
        XCTAssertNil(nak.options[51], "no lease in a NAK")
        XCTAssertEqual(nak.destinationIP, [255, 255, 255, 255])
        let elsewhere = requestFrame(type: 3, options: [50, 4] + guest.bytes + [54, 4, 10, 0, 0, 1])
        XCTAssertNil(try responder().reply(to: elsewhere))
    }

    func testOtherMessagesAndOtherClientsGetNothing() throws {
        let server = try responder()
        XCTAssertNil(server.reply(to: requestFrame(type: 7)), "RELEASE")
        XCTAssertNil(server.reply(to: requestFrame(type: 8)), "INFORM")
        XCTAssertNil(server.reply(to: requestFrame(type: 1, mac: MACAddress("52:54:00:00:00:99")!)))
        XCTAssertNil(server.reply(to: requestFrame(type: 1, cookie: [99, 130, 83, 98])))
        XCTAssertNotNil(server.reply(to: requestFrame(type: 1)), "the control: the same frame correct is answered")
    }

    func testTruncatedAndCorruptedFramesGetNothing() throws {
        let server = try responder()
        let frame = requestFrame(type: 1)
        for length in 0..<frame.count {
            XCTAssertNil(server.reply(to: Array(frame[0..<length])), "truncated to \(length)")
        }
        // Every single-byte corruption of the headers (Ethernet type, IP, UDP ports and
        // lengths, BOOTP op/htype/hlen) must give nil or still a well-formed reply.
        for offset in 12..<(42 + 3) where !(24...25).contains(offset) && !(40...41).contains(offset) {
            var bad = frame
            bad[offset] ^= 0x5A
            if let reply = server.reply(to: bad) {
                XCTFail("corrupting byte \(offset) still got a reply of \(reply.count) bytes")
            }
        }
        var badChecksum = frame
        badChecksum[24] ^= 1
        XCTAssertNil(server.reply(to: badChecksum), "IPv4 header checksum wrong")
        var fragment = frame
        fragment[20] = 0x20  // MF
        XCTAssertNil(server.reply(to: fragment))
        // An option running past the end of the message.
        var overrun = requestFrame(type: 1)
        let optionStart = 42 + 240 + 3
        overrun[optionStart] = 61
        overrun[optionStart + 1] = 250
        XCTAssertNil(server.reply(to: overrun))
        // Random garbage, with a fixed seed.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let garbage = (0..<Int.random(in: 0...600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            XCTAssertNil(server.reply(to: garbage))
        }
    }

    func testOptionParsingIsBounded() {
        XCTAssertEqual(DHCPRequest.options([53, 1, 1, 255])?[53], [1])
        XCTAssertEqual(DHCPRequest.options([0, 0, 53, 1, 3])?[53], [3], "pads, and no end option")
        XCTAssertNil(DHCPRequest.options([53]), "code without length")
        XCTAssertNil(DHCPRequest.options([53, 2, 1]), "value past the end")
        XCTAssertEqual(DHCPRequest.options([12, 2, 0x61, 0x62, 12, 1, 0x63, 255])?[12], [0x61, 0x62, 0x63], "RFC 3396 concatenation")
        XCTAssertEqual(DHCPRequest.options([255, 53, 9])?.count, 0, "nothing after end")
    }

    func testConfigurationChecks() {
        XCTAssertThrowsError(try DHCPResponder(clientMAC: testMAC, clientAddress: guest, serverAddress: guest))
        XCTAssertThrowsError(try DHCPResponder(clientMAC: testMAC, clientAddress: guest, serverAddress: IPv4Address(100, 64, 0, 4)))
        XCTAssertThrowsError(try DHCPResponder(clientMAC: testMAC, clientAddress: IPv4Address(10, 0, 0, 0),
                                               serverAddress: IPv4Address(10, 0, 0, 1), prefixLength: 24))
        XCTAssertNoThrow(try DHCPResponder(clientMAC: testMAC, clientAddress: IPv4Address(10, 0, 0, 2),
                                           serverAddress: IPv4Address(10, 0, 0, 1), prefixLength: 24))
        XCTAssertThrowsError(try DHCPResponder(clientMAC: testMAC, clientAddress: guest, serverAddress: host, prefixLength: 32))
    }

    func testDiscoverOnTheTransmitQueueIsAnsweredOnTheReceiveQueue() throws {
        let rig = try NetRig(dhcp: try responder())
        let buffers = try rig.postReceive([[1526]])
        let discover = requestFrame(type: 1)
        try rig.send([VirtioNetHeader().bytes + discover])
        XCTAssertEqual(rig.backend.sent, [], "answered locally, not sent to the tap")
        XCTAssertEqual(rig.model.counters.dhcpReplies, 1)
        let used = try rig.usedReceive()
        XCTAssertEqual(used.count, 1)
        let packet = try rig.bytes(of: buffers[0], count: Int(used[0].length))
        XCTAssertEqual(Array(packet[0..<12]), VirtioNetHeader(bufferCount: 1).bytes)
        let reply = Reply(frame: Array(packet[12...]))
        checkWellFormed(reply)
        XCTAssertEqual(reply.options[53], [2])
        XCTAssertGreaterThan(rig.calls[0].drainEvent(), 0, "the driver is interrupted for the reply")

        // Other traffic still goes to the tap.
        let other = ethernetFrame(300)
        try rig.send([VirtioNetHeader().bytes + other])
        XCTAssertEqual(rig.backend.sent, [VirtioNetHeader().bytes + other])
    }

    func testReplyWaitsForReceiveBuffers() throws {
        let rig = try NetRig(dhcp: try responder())
        try rig.send([VirtioNetHeader().bytes + requestFrame(type: 1)])
        XCTAssertEqual(rig.model.localFrames.count, 1)
        XCTAssertEqual(try rig.usedReceive().count, 0)
        let buffers = try rig.postReceive([[1526]])
        let used = try rig.usedReceive()
        XCTAssertEqual(used.count, 1)
        XCTAssertEqual(try rig.bytes(of: buffers[0], count: 12 + 14)[12..<18], ArraySlice(testMAC.bytes))
        XCTAssertEqual(rig.backend.readCalls, 0, "a kick of the receive queue does not read the tap")
    }
}

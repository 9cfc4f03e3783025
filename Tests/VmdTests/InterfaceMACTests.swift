import Foundation
import XCTest
@testable import VMDaemon

/// The MACs vmd makes when the configuration gives none: the same on every start of a VM on
/// this host (so a restored guest's neighbour entries stay right), different between VMs,
/// interfaces and hosts, and always unicast and locally administered.
final class InterfaceMACTests: XCTestCase {
    private func isLocalUnicast(_ mac: [UInt8]) -> Bool { mac.count == 6 && mac[0] & 0x01 == 0 && mac[0] & 0x02 != 0 }

    func testTheGuestsAddressIsStableAndItsOwn() {
        let web = InterfaceMAC.guest(vmName: "web", index: 0, host: "a")
        XCTAssertEqual(web, InterfaceMAC.guest(vmName: "web", index: 0, host: "a"), "the same on every start")
        XCTAssertEqual(Array(web.prefix(3)), [0xFE, 0xE1, 0xBA])
        XCTAssertTrue(isLocalUnicast(web))
        let others = [InterfaceMAC.guest(vmName: "web", index: 1, host: "a"), InterfaceMAC.guest(vmName: "db", index: 0, host: "a"),
                      InterfaceMAC.guest(vmName: "web", index: 0, host: "b")]
        XCTAssertEqual(Set(others + [web]).count, 4, "another interface, VM or host: another address")
    }

    /// Spread: a thousand VMs of one host get a thousand addresses.
    func testManyVMsGetDistinctAddresses() {
        let macs = (0..<1000).map { InterfaceMAC.guest(vmName: "vm\($0)", index: 0, host: "h") }
        XCTAssertEqual(Set(macs).count, 1000)
    }

    func testTheTapsAddressDiffersFromTheGuestsAndStaysUnicast() {
        for first: UInt8 in [0xFE, 0x52, 0x02, 0x06, 0x00, 0xFF, 0x01, 0x04] {
            let guest: [UInt8] = [first, 0x54, 0x00, 0x12, 0x34, 0x56]
            let tap = InterfaceMAC.tap(forGuest: guest)
            XCTAssertNotEqual(tap, guest, String(first, radix: 16))
            XCTAssertTrue(isLocalUnicast(tap), String(first, radix: 16))
            XCTAssertEqual(Array(tap.dropFirst()), Array(guest.dropFirst()))
            XCTAssertEqual(tap, InterfaceMAC.tap(forGuest: guest), "stable")
        }
    }

    /// The host is told by its machine id where it has one (Debian does), else by its name.
    func testTheHostIsToldByItsMachineID() throws {
        let id = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let id, !id.isEmpty {
            XCTAssertEqual(InterfaceMAC.hostIdentity, id)
        } else {
            XCTAssertEqual(InterfaceMAC.hostIdentity, ProcessInfo.processInfo.hostName)
        }
    }

    /// The hash is FNV-1a (its published test vector), not Swift's per-process Hasher.
    func testTheHashIsStableAcrossProcesses() {
        XCTAssertEqual(InterfaceMAC.fnv1a(Array("a".utf8)), 0xAF63_DC4C_8601_EC8C)
    }
}

import XCTest
@testable import IPC
@testable import LinuxSystem

/// The control messages of `vmctl status --json`, `vmctl stats` and `vmctl stop -t` on the wire.
final class StatsMessagesTests: XCTestCase {
    private func roundTrip<Message: ChannelMessage>(_ message: Message) throws -> Message {
        let (bytes, descriptors) = try IPCFrame.encode(message)
        return try IPCFrame.decode(Message.self, bytes: bytes, descriptors: descriptors)
    }

    func testStatusEntriesKeepTheirProcessesDisksAndInterfaces() throws {
        let entry = VMStatusEntry(id: 3, pid: 40, vcpus: 2, memoryBytes: 1 << 30, state: "running", owner: "alice", name: "web",
                                  reason: "", restarts: 2,
                                  processes: [.init(role: "vm", pid: 40), .init(role: "disk0", pid: 41)],
                                  disks: ["/var/vm/ünï.img", "/b"], interfaces: ["tap0", ""])
        guard case .status(let entries) = try roundTrip(ControlReply.status([entry])) else { return XCTFail("not a status") }
        XCTAssertEqual(entries, [entry])
    }

    /// A host with many VMs: the list goes in as many frames as it needs, each within the
    /// frame size and the decoder's entry limit, and joined in order it is the whole list.
    func testAStatusListLongerThanAFrameGoesInPartsThatJoinToIt() throws {
        func frames(_ entries: [VMStatusEntry], line: UInt = #line) throws -> [ControlReply] {
            let replies = ControlReply.statusFrames(entries)
            var joined: [VMStatusEntry] = []
            for (index, reply) in replies.enumerated() {
                switch try roundTrip(reply) {  // each one encodes: no frame is too large
                case .statusPart(let part) where index < replies.count - 1: joined += part
                case .status(let rest) where index == replies.count - 1: joined += rest
                default: XCTFail("frame \(index) of \(replies.count) is \(reply)", line: line)
                }
            }
            XCTAssertEqual(joined, entries, line: line)
            return replies
        }
        let small = (0..<2000).map { VMStatusEntry(id: $0, pid: 0, vcpus: 1, memoryBytes: 1 << 26, state: "stopped", owner: "root",
                                                   name: "vm\($0)", reason: "") }
        XCTAssertEqual(try frames(small).count, 4, "2000 small entries: 512 a frame")
        let path = "/var/vm/" + String(repeating: "p", count: 4000)
        let large = (0..<40).map { VMStatusEntry(id: $0, pid: 9, vcpus: 4, memoryBytes: 1 << 30, state: "running", owner: "alice",
                                                 name: "web\($0)", reason: "", processes: [.init(role: "vm", pid: 9)],
                                                 disks: [path, path, path, path], interfaces: ["tap0"]) }
        XCTAssertEqual(try frames(large).count, 10, "an entry of four 4 KiB paths is about 16 KiB: four to a frame")
        XCTAssertEqual(try frames(Array(small.prefix(3))).count, 1, "a short list is one .status")
        XCTAssertEqual(try frames([]).count, 1, "no VMs: one empty .status")
    }

    func testStatsRequestAndReplyRoundTrip() throws {
        XCTAssertEqual(try roundTrip(ControlRequest.stats(.name("web"))), .stats(.name("web")))
        let stats = VMStats(id: 3, name: "web", vcpuExits: [[1, 2, 3, 4, 5], [UInt64.max, 0, 0, 0, 0]],
                            disks: [.init(name: "disk0", backing: "/img", values: Array(0..<10))],
                            interfaces: [.init(name: "net0", backing: "tap0", values: [1, 2, 3, 4, 5, 6])])
        guard case .stats(let back) = try roundTrip(ControlReply.stats(stats)) else { return XCTFail("not stats") }
        XCTAssertEqual(back, stats)
    }

    func testStopCarriesItsGracePeriod() throws {
        XCTAssertEqual(try roundTrip(ControlRequest.stop(.id(2), force: false, gracePeriod: 180)), .stop(.id(2), force: false, gracePeriod: 180))
        XCTAssertEqual(try roundTrip(ControlRequest.stopAll(force: true)), .stopAll(force: true, gracePeriod: 0))
    }

    func testAStatsReplyClaimingMoreCountersThanItCarriesIsRefused() throws {
        let stats = VMStats(id: 1, name: "w", vcpuExits: [[1, 2, 3, 4, 5]], disks: [], interfaces: [])
        var (bytes, _) = try IPCFrame.encode(ControlReply.stats(stats))
        bytes.removeLast(8)  // the last counter is cut off; the header's length is fixed up to match
        let length = UInt32(bytes.count - IPCFrame.headerSize)
        // The header: magic (4 bytes), tag (2), descriptors (2), then the payload's length.
        for (index, byte) in withUnsafeBytes(of: length.littleEndian, Array.init).enumerated() { bytes[8 + index] = byte }
        XCTAssertThrowsError(try IPCFrame.decode(ControlReply.self, bytes: bytes, descriptors: []))
    }
}

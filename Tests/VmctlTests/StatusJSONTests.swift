import Foundation
import XCTest
@testable import IPC
@testable import VmctlCommands

/// `vmctl status --json` and `vmctl stats --json`: valid JSON whatever a name or path holds,
/// the keys of vmctl(8), numbers as numbers.
final class StatusJSONTests: XCTestCase {
    private func parse(_ value: JSONValue) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(value.text.utf8), options: [.fragmentsAllowed])
    }

    func testStringsWithQuotesControlsAndNonASCIIComeBackAsWritten() throws {
        let awkward = "a \"quoted\" \\ back\nslash\t\u{01}\u{1F}\u{7F} ünïcødé ✓ 🐧"
        XCTAssertEqual(try parse(.string(awkward)) as? String, awkward)
        XCTAssertEqual(JSONValue.string("\u{01}").text, "\"\\u0001\"")
        let object = JSONValue.object([("k\"ey", .string("v")), ("n", .number(UInt64.max)), ("i", .integer(-3)), ("b", .bool(true)), ("z", .null)])
        XCTAssertEqual(object.text, "{\"k\\\"ey\":\"v\",\"n\":18446744073709551615,\"i\":-3,\"b\":true,\"z\":null}")
        let parsed = try XCTUnwrap(try parse(object) as? [String: Any])
        XCTAssertEqual(parsed["k\"ey"] as? String, "v")
        XCTAssertTrue(parsed["z"] is NSNull)
    }

    func testStatusHasTheDocumentedKeysForRunningAndStoppedVMs() throws {
        let running = VMStatusEntry(id: 1, pid: 40, vcpus: 2, memoryBytes: 64 << 20, state: "running", owner: "root", name: "web",
                                    reason: "", restarts: 1,
                                    processes: [.init(role: "vm", pid: 40), .init(role: "disk0", pid: 41), .init(role: "net0", pid: 42)],
                                    disks: ["/var/vm/web.img"], interfaces: ["tap3"])
        let stopped = VMStatusEntry(id: 2, pid: 0, vcpus: 1, memoryBytes: 1 << 30, state: "stopped", owner: "alice", name: "db",
                                    reason: "powered off", disks: [], interfaces: [""])
        let all = try XCTUnwrap(try parse(StatusJSON.status([running, stopped])) as? [[String: Any]])
        XCTAssertEqual(all.count, 2)
        let keys: Set = ["id", "name", "owner", "state", "reason", "pid", "pids", "vcpus", "memory", "restarts", "disks", "interfaces"]
        XCTAssertEqual(Set(all[0].keys), keys)
        XCTAssertEqual(Set(all[1].keys), keys)
        XCTAssertEqual(all[0]["pids"] as? [String: Int], ["vm": 40, "disk0": 41, "net0": 42])
        XCTAssertEqual(all[0]["memory"] as? Int, 64 << 20)
        XCTAssertTrue(all[0]["reason"] is NSNull)
        XCTAssertEqual(all[1]["reason"] as? String, "powered off")
        XCTAssertTrue(all[1]["pid"] is NSNull)
        XCTAssertTrue((all[1]["interfaces"] as? [Any])?.first is NSNull, "a tap vmd picks at start has no name while stopped")
    }

    func testStatsNamesEveryCounterAndTheInFlightCount() throws {
        var disk = [UInt64](repeating: 0, count: BlockCounter.allCases.count)
        disk[BlockCounter.reads.rawValue] = 7
        disk[BlockCounter.started.rawValue] = 10
        disk[BlockCounter.completed.rawValue] = 8
        let stats = VMStats(id: 1, name: "web", vcpuExits: [[1, 2, 3, 4, 5]],
                            disks: [.init(name: "disk0", backing: "/img", values: disk)],
                            interfaces: [.init(name: "net0", backing: "tap0", values: [1, 2, 3, 4, 5, 6, 7, 8])])
        let all = try XCTUnwrap(try parse(StatusJSON.stats([stats])) as? [[String: Any]])
        let vm = try XCTUnwrap(all.first)
        let vcpu = try XCTUnwrap((vm["vcpus"] as? [[String: Any]])?.first)
        XCTAssertEqual(vcpu["exits"] as? [String: Int], ["io": 1, "mmio": 2, "hlt": 3, "interrupted": 4, "other": 5])
        let counters = try XCTUnwrap(((vm["disks"] as? [[String: Any]])?.first)?["counters"] as? [String: Int])
        XCTAssertEqual(Set(counters.keys), Set(BlockCounter.allCases.map(\.key) + ["in_flight"]))
        XCTAssertEqual(counters["reads"], 7)
        XCTAssertEqual(counters["in_flight"], 2)
        let nic = try XCTUnwrap(((vm["interfaces"] as? [[String: Any]])?.first)?["counters"] as? [String: Int])
        XCTAssertEqual(nic, ["rx_packets": 1, "rx_bytes": 2, "rx_drops": 3, "tx_packets": 4, "tx_bytes": 5, "tx_drops": 6,
                             "rx_throttled": 7, "tx_throttled": 8])

        // A device that says it answered more than it took shows none in flight, not a wrapped number.
        disk[BlockCounter.completed.rawValue] = 12
        XCTAssertEqual(VMStats.Device(name: "disk0", backing: "/img", values: disk).blockRequestsInFlight, 0)
        // And one that sent too few values reads as zeros, in the table too.
        let short = VMStats(id: 1, name: "web", vcpuExits: [], disks: [.init(name: "disk0", backing: "/img", values: [3])], interfaces: [])
        XCTAssertTrue(StatsTable.render([short]).contains("disk0"), StatsTable.render([short]))
    }
}

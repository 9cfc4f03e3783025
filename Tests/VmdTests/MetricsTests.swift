import XCTest
@testable import IPC
@testable import VMDaemon

/// The metrics endpoint without a socket: what it answers to a request head, and the
/// Prometheus text it renders from status and counters.
final class MetricsTests: XCTestCase {
    private func answer(_ head: String) -> MetricsResponse {
        MetricsResponse.answer(head: Array(head.utf8)) { Array("body\n".utf8) }
    }

    func testOnlyAGetOrHeadOfTheMetricsPathIsServed() {
        XCTAssertEqual(answer("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
        XCTAssertEqual(answer("GET /metrics HTTP/1.1\r\n\r\n").body, Array("body\n".utf8))
        XCTAssertEqual(answer("GET /?x=1 HTTP/1.0\n\n").status, 200)
        XCTAssertEqual(answer("HEAD /metrics HTTP/1.1\r\n\r\n").body, [], "HEAD: the headers only")
        XCTAssertEqual(answer("GET /other HTTP/1.1\r\n\r\n").status, 404)
        XCTAssertEqual(answer("DELETE /metrics HTTP/1.1\r\n\r\n").status, 405)
        for nonsense in ["", "\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics SPDY/3\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n"] {
            XCTAssertEqual(answer(nonsense).status, 400, nonsense.debugDescription)
        }
        var called = false
        _ = MetricsResponse.answer(head: Array("HEAD / HTTP/1.1\r\n\r\n".utf8)) { called = true; return [] }
        XCTAssertFalse(called, "the counters are read for a GET only")
    }

    func testTheResponseSaysItsLengthAndCloses() {
        let text = String(decoding: answer("POST /metrics HTTP/1.1\r\n\r\n").bytes, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), text)
        XCTAssertTrue(text.contains("\r\nAllow: GET, HEAD\r\n"), text)
        XCTAssertTrue(text.contains("\r\nContent-Length: 19\r\n"), text)
        XCTAssertTrue(text.contains("\r\nConnection: close\r\n\r\nMethod Not Allowed\n"), text)
    }

    func testTheHeadEndsAtTheFirstBlankLine() {
        XCTAssertNil(MetricsResponse.headEnd(in: Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8)))
        XCTAssertEqual(MetricsResponse.headEnd(in: Array("GET / HTTP/1.1\r\n\r\nmore".utf8)), 18)
        XCTAssertEqual(MetricsResponse.headEnd(in: Array("GET / HTTP/1.1\n\nmore".utf8)), 16)
        XCTAssertNil(MetricsResponse.headEnd(in: []))
    }

    func testTheTextHasOneSeriesPerCounterWithTheVMsLabels() {
        var disk = [UInt64](repeating: 0, count: BlockCounter.allCases.count)
        disk[BlockCounter.writes.rawValue] = 12
        disk[BlockCounter.bytesWritten.rawValue] = 12 * 4096
        disk[BlockCounter.started.rawValue] = 13
        disk[BlockCounter.completed.rawValue] = 12
        disk[BlockCounter.throttled.rawValue] = 5
        let running = VMStatusEntry(id: 1, pid: 40, vcpus: 2, memoryBytes: 64 << 20, state: "running", owner: "alice:staff", name: "web",
                                    reason: "", restarts: 3)
        let stats = VMStats(id: 1, name: "web", vcpuExits: [[5, 6, 7, 8, 9], [0, 1, 0, 0, 0]],
                            disks: [.init(name: "disk0", backing: "/img", values: disk)],
                            interfaces: [.init(name: "net0", backing: "tap0", values: [10, 1000, 1, 20, 2000, 2, 0, 9])])
        let stopped = VMStatusEntry(id: 2, pid: 0, vcpus: 1, memoryBytes: 1 << 30, state: "stopped", owner: "root", name: "db", reason: "")
        let text = String(decoding: MetricsExposition.render([.init(status: running, stats: stats), .init(status: stopped, stats: nil)]),
                          as: UTF8.self)
        // Gauges are doubles in the library's text ("1.0"), counters integers.
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            "# TYPE vmd_disk_requests_total counter",
            #"vmd_vm_running{vm="web",id="1",owner="alice:staff",state="running"} 1.0"#,
            #"vmd_vm_running{vm="db",id="2",owner="root",state="stopped"} 0.0"#,
            #"vmd_vm_memory_bytes{vm="db",id="2"} 1073741824.0"#,
            #"vmd_vm_restarts_total{vm="web",id="1"} 3"#,
            #"vmd_vcpu_exits_total{vm="web",id="1",vcpu="0",kind="hlt"} 7"#,
            #"vmd_vcpu_exits_total{vm="web",id="1",vcpu="1",kind="mmio"} 1"#,
            #"vmd_disk_requests_total{vm="web",id="1",disk="disk0",op="write"} 12"#,
            #"vmd_disk_bytes_total{vm="web",id="1",disk="disk0",direction="write"} 49152"#,
            #"vmd_disk_in_flight{vm="web",id="1",disk="disk0"} 1.0"#,
            #"vmd_net_packets_total{vm="web",id="1",nic="net0",direction="rx"} 10"#,
            #"vmd_net_drops_total{vm="web",id="1",nic="net0",direction="tx"} 2"#,
            #"vmd_disk_throttled_total{vm="web",id="1",disk="disk0"} 5"#,
            #"vmd_net_throttled_total{vm="web",id="1",nic="net0",direction="tx"} 9"#,
            #"vmd_net_throttled_total{vm="web",id="1",nic="net0",direction="rx"} 0"#,
        ] {
            XCTAssertTrue(lines.contains(expected), "\(expected) not in:\n\(text)")
        }
        XCTAssertFalse(text.contains(#"vm="db",id="2",disk"#), "a stopped VM has no device series")
        // Each metric family is announced once, however many VMs and devices it has.
        XCTAssertEqual(text.components(separatedBy: "# TYPE vmd_vcpu_exits_total counter").count - 1, 1, text)
    }
}

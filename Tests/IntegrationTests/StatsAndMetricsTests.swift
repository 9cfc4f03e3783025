import Foundation
import Glibc
import XCTest

/// What an operator reads off a running vmd (issue 18, item 3): `vmctl status --json`,
/// `vmctl stats [--json]` and the Prometheus endpoint, each parsed here as a client would,
/// with numbers that must come from the guest's own disk and network traffic.
final class StatsAndMetricsTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    private func json(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try XCTUnwrap(value as? [[String: Any]], "not an array of objects: \(text)", file: file, line: line)
    }

    private func number(_ object: Any?, _ path: String...) -> Int {
        var current = object
        for key in path { current = (current as? [String: Any])?[key] }
        return (current as? NSNumber)?.intValue ?? -1
    }

    func testStatusStatsAndTheMetricsEndpointShowTheGuestsTraffic() throws {
        try NetworkNamespace.requireTun()
        let namespace = try NetworkNamespace("vmdst")
        let metricsSocket = FileManager.default.temporaryDirectory.appendingPathComponent("vmd-metrics-\(getpid()).sock").path
        let daemon = try DaemonHarness("stats", globalConfig: "metrics listen on \"\(metricsSocket)\"\n", namespace: namespace)
        let image = daemon.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: nil)
        XCTAssertEqual(truncate(image, 4 << 20), 0)
        let config = try daemon.writeGuestConfig("counted", cmdline: "test=migrate ticks=600 seed=3 net=1 dhcp=1",
                                                 extra: "    cpus 2\n    disk \"\(image)\"\n    local interface")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        XCTAssertTrue(daemon.eventually(30) { namespace.exec(["ping", "-c", "1", "-W", "1", "100.64.0.1"]).status == 0 },
                      "the guest answers on its NIC\n\(daemon.log)")
        XCTAssertEqual(namespace.exec(["ping", "-c", "3", "-i", "0.2", "100.64.0.1"]).status, 0)

        // status --json: one object per VM with the documented keys and every process's pid.
        let status = try json(daemon.vmctl("status", "--json").stdout)
        XCTAssertEqual(status.count, 1)
        let vm = try XCTUnwrap(status.first)
        XCTAssertEqual(Set(vm.keys), ["id", "name", "owner", "state", "reason", "pid", "pids", "vcpus", "memory", "restarts",
                                      "disks", "interfaces"])
        XCTAssertEqual(vm["name"] as? String, "counted")
        XCTAssertEqual(vm["state"] as? String, "running")
        XCTAssertTrue(vm["reason"] is NSNull)
        XCTAssertEqual(number(vm, "vcpus"), 2)
        XCTAssertEqual(number(vm, "memory"), 64 << 20)
        XCTAssertEqual(vm["disks"] as? [String], [image])
        XCTAssertEqual((vm["interfaces"] as? [Any])?.count, 1)
        let pids = try XCTUnwrap(vm["pids"] as? [String: Any])
        XCTAssertEqual(Set(pids.keys), ["vm", "disk0", "net0"], "\(pids)")
        XCTAssertEqual(number(pids, "vm"), number(vm, "pid"))
        XCTAssertEqual(number(pids, "disk0"), Int(daemon.processes("virtio-blk", vm: "counted").first ?? -2))
        XCTAssertEqual(number(pids, "net0"), Int(daemon.processes("virtio-net", vm: "counted").first ?? -2))

        // stats --json: the guest's disk I/O, its pings and its exits are counted.
        let stats = try json(daemon.vmctl("stats", "counted", "--json").stdout)
        let counted = try XCTUnwrap(stats.first)
        let disk = try XCTUnwrap((counted["disks"] as? [[String: Any]])?.first)
        XCTAssertEqual(disk["name"] as? String, "disk0")
        XCTAssertEqual(disk["backing"] as? String, image)
        for key in ["reads", "writes", "bytes_read", "bytes_written"] {
            XCTAssertGreaterThan(number(disk, "counters", key), 0, "disk \(key): \(disk)")
        }
        XCTAssertEqual(number(disk, "counters", "errors"), 0)
        XCTAssertGreaterThanOrEqual(number(disk, "counters", "bytes_read"), 512 * number(disk, "counters", "reads"))
        XCTAssertGreaterThanOrEqual(number(disk, "counters", "in_flight"), 0)
        let nic = try XCTUnwrap((counted["interfaces"] as? [[String: Any]])?.first)
        XCTAssertEqual(nic["name"] as? String, "net0")
        let tap = try XCTUnwrap(nic["backing"] as? String)
        XCTAssertTrue(tap.hasPrefix("tap"), tap)
        XCTAssertEqual(vm["interfaces"] as? [String], [tap], "status names the tap vmd made")
        XCTAssertGreaterThanOrEqual(number(nic, "counters", "rx_packets"), 4, "four pings reached the guest: \(nic)")
        XCTAssertGreaterThanOrEqual(number(nic, "counters", "tx_packets"), 4, "and it answered: \(nic)")
        XCTAssertGreaterThanOrEqual(number(nic, "counters", "rx_bytes"), 4 * 98)
        let vcpus = try XCTUnwrap(counted["vcpus"] as? [[String: Any]])
        XCTAssertEqual(vcpus.count, 2)
        XCTAssertGreaterThan(number(vcpus[0], "exits", "mmio") + number(vcpus[0], "exits", "io"), 0, "\(vcpus)")

        // The table names the same devices.
        let table = daemon.vmctl("stats").stdout
        XCTAssertTrue(table.contains("disk0") && table.contains("net0") && table.contains(image), table)

        // The metrics endpoint: Prometheus text with the same counters, never behind the JSON read before it.
        let scrape = try MetricsScrape.get(unixSocket: metricsSocket, request: "GET /metrics HTTP/1.1\r\nHost: vmd\r\n\r\n")
        XCTAssertTrue(scrape.head.hasPrefix("HTTP/1.1 200 OK"), scrape.head)
        XCTAssertTrue(scrape.head.contains("Content-Type: text/plain; version=0.0.4"), scrape.head)
        XCTAssertTrue(scrape.body.contains("# TYPE vmd_disk_requests_total counter"), scrape.body)
        let writes = try XCTUnwrap(MetricsScrape.value(in: scrape.body, "vmd_disk_requests_total", labels: ["vm": "counted", "disk": "disk0", "op": "write"]),
                                   scrape.body)
        XCTAssertGreaterThanOrEqual(writes, Double(number(disk, "counters", "writes")))
        let rx = try XCTUnwrap(MetricsScrape.value(in: scrape.body, "vmd_net_packets_total", labels: ["vm": "counted", "nic": "net0", "direction": "rx"]))
        XCTAssertGreaterThanOrEqual(rx, Double(number(nic, "counters", "rx_packets")))
        XCTAssertEqual(MetricsScrape.value(in: scrape.body, "vmd_vm_running", labels: ["vm": "counted"]), 1)
        XCTAssertEqual(MetricsScrape.value(in: scrape.body, "vmd_vm_vcpus", labels: ["vm": "counted"]), 2)

        // Someone else's view: no VM of theirs, so nothing, and not an error.
        XCTAssertEqual(try json(daemon.vmctl("stats", "--json", as: "nobody").stdout).count, 0)
        XCTAssertEqual(try json(daemon.vmctl("status", "--json", as: "nobody").stdout).count, 0)

        XCTAssertEqual(daemon.vmctl("stop", "counted", "-f", "-w").status, 0)
        let stopped = try json(daemon.vmctl("status", "--json").stdout)
        XCTAssertEqual(stopped.first?["state"] as? String, "stopped")
        XCTAssertTrue(stopped.first?["pid"] is NSNull)
        XCTAssertEqual((stopped.first?["pids"] as? [String: Any])?.count, 0)
        XCTAssertNotEqual(daemon.vmctl("stats", "counted").status, 0, "a stopped VM has no counters")
        let after = try MetricsScrape.get(unixSocket: metricsSocket, request: "GET / HTTP/1.0\r\n\r\n")
        XCTAssertEqual(MetricsScrape.value(in: after.body, "vmd_vm_running", labels: ["vm": "counted"]), 0, after.body)
        XCTAssertNil(MetricsScrape.value(in: after.body, "vmd_disk_requests_total", labels: ["vm": "counted", "op": "write"]),
                     "a stopped VM leaves no device series")
    }

    /// Over TCP, a scraper that asks for something else or talks nonsense gets its 4xx,
    /// one that says nothing is dropped, and none of them stops the next scrape.
    func testTheEndpointAnswersOnlyWhatItServesAndOutlastsBadClients() throws {
        let port = 19000 + Int(getpid() % 1000)
        let daemon = try DaemonHarness("metrics-tcp", globalConfig: """
            metrics listen on "127.0.0.1:\(port)"
            vm "idle" {
                memory 64M
                boot "\(VmdHarness.guestKit)"
                disable
            }

            """)
        XCTAssertTrue(daemon.log.contains("serving metrics on 127.0.0.1:\(port)"), daemon.log)
        let silent = try MetricsScrape.connect(tcpPort: port)  // says nothing while the others are served
        for (request, status) in [("GET /nothing HTTP/1.1\r\n\r\n", "404"), ("POST /metrics HTTP/1.1\r\n\r\n", "405"),
                                  ("hello\r\n\r\n", "400"), (String(repeating: "x", count: 8200), "431")] {
            let answer = try MetricsScrape.get(tcpPort: port, request: request)
            XCTAssertTrue(answer.head.hasPrefix("HTTP/1.1 \(status) "), "\(request.prefix(40)): \(answer.head)")
        }
        let head = try MetricsScrape.get(tcpPort: port, request: "HEAD /metrics HTTP/1.1\r\n\r\n")
        XCTAssertTrue(head.head.hasPrefix("HTTP/1.1 200 OK") && head.body.isEmpty, head.head)
        let good = try MetricsScrape.get(tcpPort: port, request: "GET /metrics HTTP/1.1\r\n\r\n")
        XCTAssertEqual(MetricsScrape.value(in: good.body, "vmd_vm_running", labels: ["vm": "idle", "state": "stopped"]), 0, good.body)
        XCTAssertEqual(MetricsScrape.value(in: good.body, "vmd_vm_memory_bytes", labels: ["vm": "idle"]), Double(64 << 20))
        close(silent)
    }
}

/// A scraper in a few lines: one request, the whole answer, split at the blank line.
enum MetricsScrape {
    struct Answer {
        let head: String
        let body: String
    }

    static func get(unixSocket path: String, request: String) throws -> Answer {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        return exchange(fd, request)
    }

    static func connect(tcpPort port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        return fd
    }

    static func get(tcpPort port: Int, request: String) throws -> Answer {
        exchange(try connect(tcpPort: port), request)
    }

    private static func exchange(_ fd: Int32, _ request: String) -> Answer {
        defer { close(fd) }
        var time = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += buffer[..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return Answer(head: text, body: "") }
        return Answer(head: String(text[..<split.lowerBound]), body: String(text[split.upperBound...]))
    }

    /// The value of the sample of `name` whose labels include `labels`, nil if there is none.
    static func value(in body: String, _ name: String, labels: [String: String]) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let series = line[..<space]
            let wanted = labels.allSatisfy { series.contains("\($0.key)=\"\($0.value)\"") }
            if wanted { return Double(line[line.index(after: space)...]) }
        }
        return nil
    }
}

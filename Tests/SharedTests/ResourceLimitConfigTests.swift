import XCTest
@testable import Configuration

/// `cpu limit N%`, `memory limit SIZE` and a disk's `io limit` (vm.conf(5)).
final class ResourceLimitConfigTests: XCTestCase {
    private func vm(_ text: String) throws -> VMConfig {
        try ConfigTestSupport.firstVM(text)
    }

    func testLimitsBesideTheirOptions() throws {
        let config = try vm("""
            vm a {
                boot k
                memory 256M
                memory limit 1G
                cpus 2
                cpu limit 150%
                disk "x.img" { io limit 50M ops 1000; ops 10 }
                disk "y.img" { io limit ops 300 }
                disk "z.img" { io limit 1M }
            }
            """)
        XCTAssertEqual(config.memoryBytes, 256 << 20)
        XCTAssertEqual(config.memoryLimitBytes, 1 << 30)
        XCTAssertEqual(config.cpuLimitPercent, 150)
        XCTAssertEqual(config.disks.map(\.ioLimit), [DiskIOLimit(bytesPerSecond: 50 << 20, operationsPerSecond: 1000),
                                                     DiskIOLimit(operationsPerSecond: 300), DiskIOLimit(bytesPerSecond: 1 << 20)])
        XCTAssertEqual(config.disks[0].rateLimit.operations?.rate, 10)
        let plain = try vm("vm a { boot k; memory 64M }")
        XCTAssertNil(plain.memoryLimitBytes)
        XCTAssertNil(plain.cpuLimitPercent)
        XCTAssertTrue(plain.disks.allSatisfy { $0.ioLimit.isUnlimited })
        // The limit may come before the size, and before cpus.
        XCTAssertEqual(try vm("vm a { boot k; memory limit 64M; cpu limit 300%; cpus 4; memory 32M }").cpuLimitPercent, 300)
    }

    func testBadLimitsAreRefusedAtTheirToken() {
        ConfigTestSupport.assertError("vm a { boot k; cpu limit 150% }", 1, 16, "cpu limit 150% is more than 1 vCPU can use (100%)")
        ConfigTestSupport.assertError("vm a { boot k; cpu 50% }", 1, 20, "expected 'limit' after 'cpu' (cpu limit 150%), found '50%'")
        ConfigTestSupport.assertError("vm a { boot k; cpu limit 50 }", 1, 26, "expected a percentage of one core such as 150% after 'cpu limit', found '50'")
        ConfigTestSupport.assertError("vm a { boot k; cpu limit 0% }", 1, 26, "expected a percentage")
        ConfigTestSupport.assertError("vm a { boot k; cpu limit 6401% }", 1, 26, "more than 64 vCPUs can use")
        ConfigTestSupport.assertError("vm a { boot k; cpu limit 50%; cpu limit 60% }", 1, 31, "'cpu limit' given twice; first at line 1")
        ConfigTestSupport.assertError("vm a { boot k; memory limit 1G; memory limit 2G }", 1, 33, "'memory limit' given twice")
        ConfigTestSupport.assertError("vm a { boot k; memory 64M; memory 32M }", 1, 28, "'memory' given twice")
        // Only memory and cpu have a `limit` form: a kernel named limit is still one boot.
        ConfigTestSupport.assertError("vm a { boot limit; boot k }", 1, 20, "'boot' given twice")
        ConfigTestSupport.assertError("vm a { boot k; memory limit 1M }", 1, 29, "memory limit must be at least 16M, found '1M'")
        ConfigTestSupport.assertError("vm a { boot k; memory limit lots }", 1, 29, "expected a size such as 1G after 'memory limit'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { io 5M } }", 1, 28, "expected 'limit' after 'io' (io limit 50M ops 1000), found '5M'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { io limit } }", 1, 28, "'io limit' needs a size (bytes per second), 'ops N', or both")
        ConfigTestSupport.assertError("vm a { boot k; disk x { io limit fast } }", 1, 34, "expected a size such as 50M (bytes per second) after 'io limit'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { io limit ops 0 } }", 1, 38, "expected a whole number of operations per second")
        ConfigTestSupport.assertError("vm a { boot k; disk x { io limit 1M; io limit 2M } }", 1, 38, "'io' given twice for this disk")
        for word in ["limit", "io", "cpu"] {
            ConfigTestSupport.assertError("\(word) = 5", 1, 1, "'\(word)' is a keyword and cannot be a macro name")
        }
    }
}

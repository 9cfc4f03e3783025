import XCTest
@testable import Configuration
import LinuxSystem

/// `disk ... { bandwidth; ops }` and `interface { bandwidth; packets }` (vm.conf(5)).
final class RateLimitConfigTests: XCTestCase {
    private func vm(_ text: String) throws -> VMConfig {
        try ConfigTestSupport.firstVM(text)
    }

    func testDiskLimitsWithAndWithoutBurst() throws {
        let config = try vm("""
            vm a {
                boot k
                disk "x.img" cache none { bandwidth 50M; ops 2000 }
                disk "y.img" {
                    bandwidth 1G burst 64M
                    ops 300 burst 1
                }
                disk "z.img"
            }
            """)
        XCTAssertEqual(config.disks[0].cache, .none)
        XCTAssertEqual(config.disks[0].rateLimit, RateLimit(bytes: .init(rate: 50 << 20, burst: 5_242_880),
                                                            operations: .init(rate: 2000, burst: 200)))
        XCTAssertEqual(config.disks[1].rateLimit, RateLimit(bytes: .init(rate: 1 << 30, burst: 64 << 20),
                                                            operations: .init(rate: 300, burst: 1)))
        XCTAssertTrue(config.disks[2].rateLimit.isUnlimited)
        // Only one bucket given: the other is absent, not zero.
        let bandwidthOnly = try vm("vm a { boot k; disk x { bandwidth 10K } }").disks[0].rateLimit
        XCTAssertEqual(bandwidthOnly, RateLimit(bytes: .init(rate: 10240, burst: 1024), operations: nil))
    }

    func testInterfaceLimitsBesideTheOtherOptions() throws {
        let config = try vm("""
            vm a {
                boot k
                interface tap3 { switch "uplink"; bandwidth 100M burst 1M; packets 20000 }
                local interface { packets 10 }
            }
            """)
        XCTAssertEqual(config.interfaces[0].switchName, "uplink")
        XCTAssertEqual(config.interfaces[0].rateLimit, RateLimit(bytes: .init(rate: 100 << 20, burst: 1 << 20),
                                                                 operations: .init(rate: 20000, burst: 2000)))
        XCTAssertEqual(config.interfaces[1].rateLimit, RateLimit(bytes: nil, operations: .init(rate: 10, burst: 1)))
    }

    func testBadLimitsAreRefusedAtTheirToken() {
        ConfigTestSupport.assertError("vm a { boot k; disk x { ops 0 } }", 1, 29, "'ops' must be at least 1")
        ConfigTestSupport.assertError("vm a { boot k; disk x { ops 2k } }", 1, 29, "expected a whole number of ops per second such as 2000 after 'ops', found '2k'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { bandwidth 50MB } }", 1, 35, "expected a size such as 50M (bytes per second) after 'bandwidth'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { bandwidth } }", 1, 35, "after 'bandwidth', found '}'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { bandwidth 99999999999G } }", 1, 35, "too large")
        ConfigTestSupport.assertError("vm a { boot k; disk x { bandwidth 2000000000000000 } }", 1, 35, "too large; at most 1125899906842624")
        ConfigTestSupport.assertError("vm a { boot k; disk x { bandwidth 1M burst 0 } }", 1, 44, "'burst' must be at least 1")
        ConfigTestSupport.assertError("vm a { boot k; disk x { ops 5 burst } }", 1, 37, "expected a whole number of ops such as 200 after 'burst'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { ops 5; ops 6 } }", 1, 32, "'ops' given twice for this disk; first at line 1")
        ConfigTestSupport.assertError("vm a { boot k; disk x { packets 5 } }", 1, 25, "expected 'bandwidth', 'ops', 'io' or '}' in disk block, found 'packets'")
        ConfigTestSupport.assertError("vm a { boot k; disk x { ops 5 ops 6 } }", 1, 31, "expected end of line or ';' after 'ops', found 'ops'")
        ConfigTestSupport.assertError("vm a { boot k; disk x ops 5 }", 1, 23, "(limits go in a block: disk \"path\" { ops ... })")
        ConfigTestSupport.assertError("vm a {\n boot k\n disk x {\n ops 5\n memory 1G\n}", 5, 2, "missing '}' for the disk block opened at line 3?")
        ConfigTestSupport.assertError("vm a { boot k; disk x { ops 5", 1, 23, "'{' of disk is never closed")
        ConfigTestSupport.assertError("vm a { boot k; interface { ops 5 } }", 1, 28, "expected 'lladdr', 'switch', 'bandwidth', 'packets' or '}' in interface block, found 'ops'")
        ConfigTestSupport.assertError("vm a { boot k; interface { packets 5; packets 5 } }", 1, 39, "'packets' given twice for this interface")
        ConfigTestSupport.assertError("vm a { boot k; interface packets 5 }", 1, 26, "'packets' goes inside the interface's block")
        ConfigTestSupport.assertError("vm a { boot k; interface { bandwidth 0 } }", 1, 38, "'bandwidth' must be at least 1")
    }

    func testLimitKeywordsAreNotMacroNames() {
        for word in ["bandwidth", "ops", "packets", "burst"] {
            ConfigTestSupport.assertError("\(word) = 5", 1, 1, "'\(word)' is a keyword and cannot be a macro name")
        }
        // A macro may give the value.
        XCTAssertEqual(try? vm("rate = 2000\nvm a { boot k; disk x { ops $rate } }").disks[0].rateLimit.operations?.rate, 2000)
    }
}

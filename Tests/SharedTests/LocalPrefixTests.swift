import XCTest
@testable import Configuration

/// The global `local prefix a.b.c.d/n`.
final class LocalPrefixTests: XCTestCase {
    private func assertError(
        _ text: String, at line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        ConfigTestSupport.assertError(text, at: "g.conf", line, column, message, file: testFile, line: testLine)
    }

    func testDefaultIsVMDs() throws {
        XCTAssertEqual(try ConfigParser.parse("vm g { boot k }", file: "g.conf").localPrefix, IPv4Prefix(address: 0x6440_0000, prefixLength: 10))
        XCTAssertEqual(IPv4Prefix.defaultLocal.description, "100.64.0.0/10")
    }

    func testPrefixes() throws {
        let cases: [(String, UInt32, Int)] = [
            ("10.0.0.0/8", 0x0A00_0000, 8), ("192.168.7.0/24", 0xC0A8_0700, 24), ("0.0.0.0/0", 0, 0),
            ("172.16.0.1/32", 0xAC10_0001, 32), ("\"100.64.0.0/10\"", 0x6440_0000, 10),
        ]
        for (written, address, length) in cases {
            let config = try ConfigParser.parse("local prefix \(written)\nvm g { boot k }", file: "g.conf")
            XCTAssertEqual(config.localPrefix, IPv4Prefix(address: address, prefixLength: length), written)
        }
        let viaMacro = try ConfigTestSupport.parse("net = 10.1.0.0/16\nlocal prefix $net")
        XCTAssertEqual(viaMacro.localPrefix.description, "10.1.0.0/16")
        XCTAssertEqual(viaMacro.vms, [])
    }

    func testHostBitsSet() {
        assertError("local prefix 100.64.0.1/10", at: 1, 14, "prefix '100.64.0.1/10' has host bits set; did you mean 100.64.0.0/10?")
    }

    func testMissingLength() {
        assertError("local prefix 100.64.0.0", at: 1, 14, "expected an IPv4 prefix such as 100.64.0.0/10 after 'local prefix', found '100.64.0.0'")
    }

    func testMissingValue() {
        assertError("local prefix\n", at: 1, 13, "expected an IPv4 prefix such as 100.64.0.0/10 after 'local prefix', found end of line")
    }

    func testOctetOutOfRange() {
        assertError("local prefix 10.256.0.0/16", at: 1, 14, "invalid IPv4 address '10.256.0.0' in prefix '10.256.0.0/16'")
    }

    func testLeadingZeroOctet() {
        assertError("local prefix 010.0.0.0/8", at: 1, 14, "each of the four parts must be 0-255 without leading zeros")
    }

    func testLengthOutOfRange() {
        assertError("local prefix 10.0.0.0/33", at: 1, 14, "invalid prefix length '33' in '10.0.0.0/33': expected 0 to 32")
        assertError("local prefix 10.0.0.0/", at: 1, 14, "invalid prefix length ''")
    }

    func testIPv6NotSupported() {
        assertError("local inet6 prefix fd00::/8", at: 1, 7, "expected 'prefix' after 'local' at top level, found 'inet6' (IPv6 local prefixes are not supported)")
    }

    func testLocalInterfaceAtTopLevel() {
        assertError("local interface tap0", at: 1, 7, "('local interface' goes inside a vm block)")
    }

    func testGivenTwice() {
        assertError("local prefix 10.0.0.0/8\n\nlocal prefix 10.0.0.0/8", at: 3, 1, "'local prefix' given twice; first at line 1")
    }

    func testExtraValue() {
        assertError("local prefix 10.0.0.0/8 10.1.0.0/16", at: 1, 25, "expected end of line or ';' after 'local prefix', found '10.1.0.0/16'")
    }
}

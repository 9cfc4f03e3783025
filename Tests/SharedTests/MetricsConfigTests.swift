import XCTest
@testable import Configuration

/// The global `metrics listen on ADDRESS` (vmd's Prometheus endpoint).
final class MetricsConfigTests: XCTestCase {
    private func assertError(
        _ text: String, at line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        ConfigTestSupport.assertError(text, at: "g.conf", line, column, message, file: testFile, line: testLine)
    }

    func testAbsentByDefault() throws {
        XCTAssertNil(try ConfigTestSupport.parse("vm g { boot k }").metricsAddress)
    }

    func testAddresses() throws {
        for address in ["127.0.0.1:9337", "[::1]:9337", "localhost:1", "0.0.0.0:65535", "/run/vmd/metrics.sock"] {
            XCTAssertEqual(try ConfigTestSupport.parse("metrics listen on \"\(address)\"\nvm g { boot k }").metricsAddress, address)
        }
        XCTAssertEqual(try ConfigTestSupport.parse("where = \"127.0.0.1:9100\"\nmetrics listen on $where").metricsAddress, "127.0.0.1:9100")
        XCTAssertEqual(try ConfigTestSupport.parse("metrics listen on \"127.0.0.1:9337\";").metricsAddress, "127.0.0.1:9337")
    }

    func testBadAddressesNameWhereAndWhat() {
        for bad in ["\"127.0.0.1\"", "\"127.0.0.1:0\"", "\"127.0.0.1:65536\"", "\":9337\"", "\"relative/metrics.sock\"",
                    "\"127.0.0.1:http\"", "\"[::1:9337\"", "\"/\(String(repeating: "d", count: 120))\""] {
            assertError("metrics listen on \(bad)", at: 1, 19, "expected \"HOST:PORT\" or an absolute socket path after 'metrics listen on'")
        }
        assertError("metrics on \"127.0.0.1:9337\"", at: 1, 9, "expected 'listen' in 'metrics listen on ADDRESS', found 'on'")
        assertError("metrics listen \"127.0.0.1:9337\"", at: 1, 16, "expected 'on' in 'metrics listen on ADDRESS'")
        assertError("metrics listen on", at: 1, 18, "after 'metrics listen on'")
        assertError("metrics listen on \"127.0.0.1:9337\" extra", at: 1, 36, "the metrics address")
    }

    func testTwiceIsAnErrorThatPointsAtTheFirst() {
        assertError("metrics listen on \"127.0.0.1:9337\"\nmetrics listen on \"/run/m.sock\"", at: 2, 1,
                    "'metrics listen on' given twice; first at line 1")
    }
}

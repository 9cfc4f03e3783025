import XCTest
@testable import Configuration

/// `entropy` in a vm block: no arguments, at most once, off unless written.
final class EntropyConfigTests: XCTestCase {
    func testEntropyIsOffUnlessAskedFor() throws {
        let plain = try ConfigTestSupport.parse("vm \"a\" { boot \"k\" }\n")
        XCTAssertEqual(plain.vms.first?.entropy, false)
        let asked = try ConfigTestSupport.parse("vm \"a\" {\n  boot \"k\"\n  entropy\n}\n")
        XCTAssertEqual(asked.vms.first?.entropy, true)
        XCTAssertNotEqual(plain.vms.first, asked.vms.first, "the flag is part of the VM's value")
    }

    func testEntropyTakesNoArgumentAndIsGivenOnce() {
        ConfigTestSupport.assertError("vm \"a\" {\n  boot \"k\"\n  entropy\n  entropy\n}\n", 4, 3, "'entropy' given twice; first at line 3")
        ConfigTestSupport.assertError("vm \"a\" {\n  boot \"k\"\n  entropy \"/dev/urandom\"\n}\n", 3, 11,
                                      "expected end of line or ';' after 'entropy' option, found string \"/dev/urandom\"")
    }
}

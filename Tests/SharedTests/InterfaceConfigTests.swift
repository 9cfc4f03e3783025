import XCTest
@testable import Configuration

/// `interface` and `local interface` in a vm block.
final class InterfaceConfigTests: XCTestCase {
    private func at(_ line: Int, _ column: Int) -> ConfigLocation {
        ConfigLocation(file: "g.conf", line: line, column: column)
    }

    private func assertError(
        _ text: String, at line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        ConfigTestSupport.assertError(text, at: "g.conf", line, column, message, file: testFile, line: testLine)
    }

    // MARK: - Good files

    func testInterfacesWithAndWithoutBlocks() throws {
        let text = """
            vm g {
                boot k
                interface
                interface tap3
                interface "tap4" {
                    lladdr fe:e1:ba:d0:00:01   # a comment
                    switch "uplink"
                }
                interface { lladdr 2:0:0:0:A:b }
            }
            """
        let vm = try XCTUnwrap(try ConfigParser.parse(text, file: "g.conf").vms.first)
        XCTAssertEqual(vm.interfaces, [
            InterfaceConfig(location: at(3, 5)),
            InterfaceConfig(name: "tap3", location: at(4, 5)),
            InterfaceConfig(name: "tap4", lladdr: [0xFE, 0xE1, 0xBA, 0xD0, 0x00, 0x01], switchName: "uplink", location: at(5, 5)),
            InterfaceConfig(lladdr: [0x02, 0, 0, 0, 0x0A, 0x0B], location: at(9, 5)),
        ])
    }

    func testLocalInterfaces() throws {
        let text = "vm g { boot k; local interface; interface tap0; local interface tap1 { lladdr fe:00:00:00:00:01 } }"
        let vm = try XCTUnwrap(try ConfigParser.parse(text, file: "g.conf").vms.first)
        XCTAssertEqual(vm.interfaces.map(\.local), [true, false, true])
        XCTAssertEqual(vm.interfaces.map(\.name), [nil, "tap0", "tap1"])
        XCTAssertEqual(vm.interfaces.map(\.location), [at(1, 16), at(1, 33), at(1, 49)])
        XCTAssertEqual(vm.interfaces[2].lladdr, [0xFE, 0, 0, 0, 0, 1])
    }

    func testEmptyBlocksAndFourInterfaces() throws {
        let text = "vm g { boot k\n interface {}\n interface {\n }\n local interface\n interface x }"
        let vm = try XCTUnwrap(try ConfigParser.parse(text, file: "g.conf").vms.first)
        XCTAssertEqual(vm.interfaces.count, 4)
        XCTAssertTrue(vm.interfaces.allSatisfy { $0.lladdr == nil && $0.switchName == nil })
        XCTAssertEqual(try ConfigParser.parse("vm g { boot k }", file: "g.conf").vms.first?.interfaces, [])
    }

    // MARK: - Bad files

    func testMulticastMAC() {
        assertError("vm g { interface { lladdr 01:00:5e:00:00:01 } }", at: 1, 27,
                    "MAC address '01:00:5e:00:00:01' is a multicast address (first octet odd); a NIC needs a unicast one")
    }

    func testMACWithFiveOctets() {
        assertError("vm g { interface { lladdr fe:e1:ba:d0:00 } }", at: 1, 27,
                    "invalid MAC address 'fe:e1:ba:d0:00': expected six hex octets such as fe:e1:ba:d0:00:01")
    }

    func testMACWithBadOctets() {
        assertError("vm g { interface {\n  lladdr fe:e1:ba:d0:00:zz\n} }", at: 2, 10, "invalid MAC address 'fe:e1:ba:d0:00:zz'")
        assertError("vm g { interface { lladdr fe:e1:ba:d0:00:001 } }", at: 1, 27, "invalid MAC address 'fe:e1:ba:d0:00:001'")
        assertError("vm g { interface { lladdr fe:e1:ba:d0::01 } }", at: 1, 27, "invalid MAC address")
        assertError("vm g { interface { lladdr fe:e1:ba:d0:00:01:02 } }", at: 1, 27, "invalid MAC address")
    }

    func testAllZeroMAC() {
        assertError("vm g { interface { lladdr 00:00:00:00:00:00 } }", at: 1, 27, "is all zero; leave lladdr out to have one generated")
    }

    func testMACMissing() {
        assertError("vm g { interface { lladdr } }", at: 1, 27, "expected a MAC address such as fe:e1:ba:d0:00:01 after 'lladdr', found '}'")
    }

    func testFiveInterfaces() {
        assertError("vm g { boot k\n interface\n interface\n interface\n interface\n interface\n}", at: 6, 2,
                    "too many interfaces; at most 4 per vm")
    }

    func testLocalAndPlainInterfacesShareTheLimit() {
        assertError("vm g { interface; interface; local interface; interface; local interface }", at: 1, 58, "too many interfaces")
    }

    func testUnknownOptionInInterfaceBlock() {
        assertError("vm g { interface tap0 {\n   group \"vms\"\n } }", at: 2, 4, "expected 'lladdr', 'switch', 'bandwidth', 'packets' or '}' in interface block, found 'group'")
    }

    func testLockedLLAddrIsNotSupported() {
        assertError("vm g { interface { locked lladdr } }", at: 1, 20, "expected 'lladdr', 'switch', 'bandwidth', 'packets' or '}' in interface block, found 'locked'")
    }

    func testUnclosedInterfaceBlock() {
        assertError("vm g { boot k\n interface tap0 {\n  switch s\n", at: 2, 17, "'{' of interface is never closed")
    }

    func testMissingInterfaceCloseBraceBeforeVMOption() {
        assertError("vm g {\n interface {\n  lladdr fe:00:00:00:00:01\n boot k\n}", at: 4, 2,
                    "found 'boot' (missing '}' for the interface block opened at line 2?)")
    }

    func testOptionGivenTwiceInInterfaceBlock() {
        assertError("vm g { interface { switch a\n switch b } }", at: 2, 2, "'switch' given twice for this interface; first at line 1")
    }

    func testEmptySwitchName() {
        assertError("vm g { interface { switch \"\" } }", at: 1, 27, "expected a switch name after 'switch', found string \"\"")
    }

    func testTwoValuesInInterfaceBlock() {
        assertError("vm g { interface { switch a b } }", at: 1, 29, "expected end of line or ';' after 'switch', found 'b'")
    }

    func testLocalWithoutInterface() {
        assertError("vm g { boot k; local prefix 10.0.0.0/8 }", at: 1, 22, "expected 'interface' after 'local' in vm block, found 'prefix'")
    }

    func testInterfaceNameTooLong() {
        assertError("vm g { interface tap0123456789abc }", at: 1, 18, "invalid interface name \"tap0123456789abc\": use 1-15 printable ASCII characters")
    }

    func testInterfaceNameWithSlashOrEmpty() {
        assertError("vm g { interface \"a/b\" }", at: 1, 18, "invalid interface name \"a/b\"")
        assertError("vm g { interface \"\" }", at: 1, 18, "invalid interface name \"\"")
        assertError("vm g { interface \"..\" }", at: 1, 18, "invalid interface name \"..\"")
    }

    func testSameInterfaceNameTwice() {
        assertError("vm g { interface tap0\n local interface tap0 }", at: 2, 18, "interface \"tap0\" used twice in this vm; first at line 1")
    }

    func testLLAddrOutsideTheBlock() {
        assertError("vm g { interface lladdr fe:00:00:00:00:01 }", at: 1, 18, "'lladdr' goes inside the interface's block")
    }

    func testExtraWordAfterInterfaceName() {
        assertError("vm g { interface tap0 tap1 }", at: 1, 23, "expected end of line or ';' after 'interface' option, found 'tap1'")
    }

    func testSomethingAfterInterfaceBlockOnTheSameLine() {
        assertError("vm g { interface tap0 { } memory 1G }", at: 1, 27, "expected end of line or ';' after 'interface' option, found 'memory'")
    }
}

import XCTest
@testable import Configuration

/// `owner`, `enable`/`disable` and `initrd` in a vm block.
final class VMOwnerEnableInitrdTests: XCTestCase {
    private func vm(_ options: String) throws -> VMConfig {
        try XCTUnwrap(try ConfigParser.parse("vm g {\n boot k\n \(options)\n}", file: "g.conf").vms.first)
    }

    private func assertError(
        _ text: String, at line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        ConfigTestSupport.assertError(text, at: "g.conf", line, column, message, file: testFile, line: testLine)
    }

    // MARK: - Good files

    func testOwnerForms() throws {
        let cases: [(String, OwnerConfig)] = [
            ("alice", OwnerConfig(user: "alice")),
            ("alice:staff", OwnerConfig(user: "alice", group: "staff")),
            (":wheel", OwnerConfig(user: nil, group: "wheel")),
            ("1000:1001", OwnerConfig(user: "1000", group: "1001")),
            ("\"_vmd.user-1\"", OwnerConfig(user: "_vmd.user-1")),
            ("0", OwnerConfig(user: "0")),
        ]
        for (written, owner) in cases {
            XCTAssertEqual(try vm("owner \(written)").owner, owner, written)
        }
        XCTAssertNil(try vm("").owner)
    }

    func testEnabledByDefaultAndDisable() throws {
        XCTAssertTrue(try vm("").enabled)
        XCTAssertTrue(try vm("enable").enabled)
        XCTAssertFalse(try vm("disable").enabled)
        XCTAssertFalse(try vm("disable; memory 64M").enabled)
    }

    func testInitrd() throws {
        XCTAssertEqual(try vm("initrd \"/boot/initrd.img\"").initrd, "/boot/initrd.img")
        XCTAssertEqual(try vm("initrd rd.cpio").initrd, "rd.cpio")
        XCTAssertNil(try vm("").initrd)
    }

    func testAllNewOptionsTogether() throws {
        let text = """
            vm "full" {
                disable
                owner alice:staff
                memory 256M
                boot "k.elf"
                initrd "rd.img"
                interface tap0 { switch "uplink" }
                local interface
            }
            """
        let vm = try XCTUnwrap(try ConfigParser.parse(text, file: "g.conf").vms.first)
        let at = { (line: Int, column: Int) in ConfigLocation(file: "g.conf", line: line, column: column) }
        XCTAssertEqual(vm, VMConfig(
            name: "full", memoryBytes: 256 << 20, boot: "k.elf",
            owner: OwnerConfig(user: "alice", group: "staff"), enabled: false, initrd: "rd.img",
            interfaces: [
                InterfaceConfig(name: "tap0", switchName: "uplink", location: at(7, 5)),
                InterfaceConfig(local: true, location: at(8, 5)),
            ],
            location: at(1, 1)))
    }

    // MARK: - Bad files

    func testOwnerMissing() {
        assertError("vm g { boot k; owner }", at: 1, 22, "expected user, user:group or :group after 'owner', found '}'")
    }

    func testOwnerOnlyColon() {
        assertError("vm g { boot k; owner \":\" }", at: 1, 22, "expected user, user:group or :group after 'owner', found string \":\"")
    }

    func testOwnerEmptyGroup() {
        assertError("vm g {\n owner alice:\n}", at: 2, 8, "missing group after ':' in owner 'alice:'; write alice or alice:group")
    }

    func testOwnerInvalidUserName() {
        assertError("vm g { owner \"al ice\" }", at: 1, 14, "invalid user name 'al ice' in owner 'al ice'")
        assertError("vm g { owner -alice }", at: 1, 14, "invalid user name '-alice'")
        assertError("vm g { owner \(String(repeating: "u", count: 33)) }", at: 1, 14, "invalid user name")
    }

    func testOwnerInvalidGroupName() {
        assertError("vm g { owner a:b:c }", at: 1, 14, "invalid group name 'b:c' in owner 'a:b:c'")
    }

    func testOwnerIdOutOfRange() {
        assertError("vm g { owner 4294967295 }", at: 1, 14, "user id 4294967295 in owner '4294967295' is out of range (0 to 4294967294)")
        assertError("vm g { owner :99999999999 }", at: 1, 14, "group id 99999999999")
    }

    func testOwnerTwice() {
        assertError("vm g { owner a\n owner b }", at: 2, 2, "'owner' given twice; first at line 1")
    }

    func testEnableThenDisable() {
        assertError("vm g { boot k; enable\n  disable }", at: 2, 3, "'disable' contradicts 'enable' at line 1; give one of them")
        assertError("vm g { disable; enable }", at: 1, 17, "'enable' contradicts 'disable' at line 1")
    }

    func testDisableTakesNoValue() {
        assertError("vm g { boot k; disable now }", at: 1, 24, "expected end of line or ';' after 'disable' option, found 'now'")
    }

    func testDisableTwice() {
        assertError("vm g { disable; disable }", at: 1, 17, "'disable' given twice; first at line 1")
    }

    func testInitrdEmptyOrMissing() {
        assertError("vm g { boot k; initrd \"\" }", at: 1, 23, "expected an initrd path after 'initrd', found string \"\"")
        assertError("vm g { boot k; initrd\n}", at: 1, 22, "expected an initrd path after 'initrd', found end of line")
    }

    func testInitrdTwice() {
        assertError("vm g { initrd a; initrd b }", at: 1, 18, "'initrd' given twice; first at line 1")
    }
}

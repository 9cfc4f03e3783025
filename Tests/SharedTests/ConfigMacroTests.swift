import XCTest
@testable import Configuration

/// `name = value` and `$name` (vm.conf(5) MACROS).
final class ConfigMacroTests: XCTestCase {
    private func assertError(
        _ text: String, at line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        ConfigTestSupport.assertError(text, at: "g.conf", line, column, message, file: testFile, line: testLine)
    }

    // MARK: - Good files

    func testMacrosInMemoryBootDiskAndCmdline() throws {
        let text = """
            ram = 1G
            images = "/var/vm"
            kernel="/boot/guest.elf"
            root = /var/vm/root.img
            args = "console=ttyS0 quiet"
            vm "g" {
                memory $ram
                boot $kernel
                disk $root readonly
                disk $images
                cmdline $args
            }
            """
        let vm = try XCTUnwrap(try ConfigTestSupport.parse(text).vms.first)
        XCTAssertEqual(vm.memoryBytes, 1 << 30)
        XCTAssertEqual(vm.boot, "/boot/guest.elf")
        XCTAssertEqual(vm.disks.map(\.path), ["/var/vm/root.img", "/var/vm"])
        XCTAssertEqual(vm.disks.map(\.readOnly), [true, false])
        XCTAssertEqual(vm.cmdline, "console=ttyS0 quiet")
    }

    func testMacroAsVMNameOwnerInitrdAndInterface() throws {
        let text = """
            name = web1; who = alice:staff; rd = initrd.img; tap = tap7; mac = fe:e1:ba:d0:00:01; sw = uplink
            vm $name { boot k; owner $who; initrd $rd
                interface $tap { lladdr $mac; switch $sw }
            }
            """
        let vm = try XCTUnwrap(try ConfigTestSupport.parse(text).vms.first)
        XCTAssertEqual(vm.name, "web1")
        XCTAssertEqual(vm.owner, OwnerConfig(user: "alice", group: "staff"))
        XCTAssertEqual(vm.initrd, "initrd.img")
        XCTAssertEqual(vm.interfaces.first?.name, "tap7")
        XCTAssertEqual(vm.interfaces.first?.lladdr, [0xFE, 0xE1, 0xBA, 0xD0, 0x00, 0x01])
        XCTAssertEqual(vm.interfaces.first?.switchName, "uplink")
    }

    func testLaterDefinitionOverridesFromThereOn() throws {
        let text = """
            k = first.elf
            vm a { boot $k }
            k = second.elf
            vm b { boot $k }
            """
        XCTAssertEqual(try ConfigTestSupport.parse(text).vms.map(\.boot), ["first.elf", "second.elf"])
    }

    func testMacroDefinedFromAnotherAndNotExpandedInQuotes() throws {
        let text = """
            base = /boot/k.elf
            kernel = $base
            vm g { boot $kernel; cmdline "price=$base" }
            """
        let vm = try XCTUnwrap(try ConfigTestSupport.parse(text).vms.first)
        XCTAssertEqual(vm.boot, "/boot/k.elf")
        XCTAssertEqual(vm.cmdline, "price=$base")
    }

    func testMacroNamesWithDigitsAndUnderscores() throws {
        let vm = try XCTUnwrap(try ConfigTestSupport.parse("_k_2 = x.elf\n2k = y\nvm g { boot $_k_2; cmdline $2k }").vms.first)
        XCTAssertEqual(vm.boot, "x.elf")
        XCTAssertEqual(vm.cmdline, "y")
    }

    // MARK: - Bad files

    func testUndefinedMacroPointsAtDollar() {
        assertError("vm g {\n  boot $kernel\n}", at: 2, 8, "undefined macro '$kernel'")
    }

    func testMacroUsedBeforeItsDefinition() {
        assertError("vm g { boot $k }\nk = x.elf", at: 1, 13, "undefined macro '$k'")
    }

    func testInvalidMacroName() {
        assertError("my-kernel = x.elf", at: 1, 1, "invalid macro name 'my-kernel': use letters, digits and '_'")
    }

    func testKeywordAsMacroName() {
        assertError("\nmemory = 1G", at: 2, 1, "'memory' is a keyword and cannot be a macro name")
        assertError("vm = g", at: 1, 1, "'vm' is a keyword and cannot be a macro name")
        for word in ["cache", "none", "writeback", "device", "raw", "qcow2", "metrics", "listen", "on"] {
            assertError("\(word) = x", at: 1, 1, "'\(word)' is a keyword and cannot be a macro name")
        }
    }

    func testMacroWithoutValue() {
        assertError("k =\nvm g { boot k }", at: 1, 4, "expected a value after 'k =', found end of line")
    }

    func testMacroWithTwoValues() {
        assertError("k = a.elf b.elf", at: 1, 11, "expected end of line or ';' after the value of macro 'k', found 'b.elf'")
    }

    func testDollarWithoutName() {
        assertError("vm g { boot $ }", at: 1, 13, "expected a macro name (letters, digits, '_') after '$'")
    }

    func testMacroMustBeAWholeValue() {
        assertError("d = /boot\nvm g { boot $d/k.elf }", at: 2, 15, "unexpected '/' right after '$d'; a macro must be a whole value")
    }

    func testErrorInExpandedValueNamesTheMacro() {
        assertError("m = abc\nvm g { boot k; memory $m }", at: 2, 23, "expected a size such as 64M after 'memory', found $m (\"abc\")")
    }

    func testMacroCannotStandForAKeyword() {
        assertError("o = memory\nvm g { $o 1G }", at: 2, 8, "expected an option name in vm block, found $o (\"memory\")")
    }

    func testEqualsWithoutName() {
        assertError("= x", at: 1, 1, "expected 'vm', 'include', 'local prefix', 'metrics listen on' or a macro definition (name = value), found '='")
    }

    func testQuotedMacroNameIsNotADefinition() {
        assertError("\"k\" = x", at: 1, 1, "expected 'vm', 'include', 'local prefix', 'metrics listen on' or a macro definition (name = value), found string \"k\"")
    }
}

import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Configuration
@testable import IPC

final class ConfigParserTests: XCTestCase {
    private let file = "g.conf"
    private func at(_ line: Int, _ column: Int) -> ConfigLocation {
        ConfigLocation(file: file, line: line, column: column)
    }

    // MARK: - Good files

    func testOneLineForm() throws {
        let config = try ConfigParser.parse(#"vm "g" { memory 64M; cpus 1; boot "k.elf" }"#, file: file)
        XCTAssertEqual(config.vms, [
            VMConfig(name: "g", memoryBytes: 64 << 20, cpus: 1, boot: "k.elf", cmdline: "", location: at(1, 1))
        ])
    }

    func testMultiLineFormWithComments() throws {
        let text = """
            # guest kit test vm
            vm "test-1" {   # opening brace
                memory 1G       # one gibibyte
                cpus 4

                boot "build/guest.elf"
                # a comment between options
                cmdline "test=boot exit=7"   # trailing
            }
            # end
            """
        let config = try ConfigParser.parse(text, file: file)
        XCTAssertEqual(config.vms, [
            VMConfig(name: "test-1", memoryBytes: 1 << 30, cpus: 4, boot: "build/guest.elf",
                     cmdline: "test=boot exit=7", location: at(2, 1))
        ])
    }

    func testTwoVMBlocksKeepOrderAndLocations() throws {
        let text = """
            vm alpha {
              boot /boot/a.elf
            }

              vm "beta.2" { boot "b.elf"; memory 128M; cpus 2 }
            """
        let config = try ConfigParser.parse(text, file: file)
        XCTAssertEqual(config.vms.map(\.name), ["alpha", "beta.2"])
        XCTAssertEqual(config.vms.map(\.boot), ["/boot/a.elf", "b.elf"])
        XCTAssertEqual(config.vms.map(\.location), [at(1, 1), at(5, 3)])
        XCTAssertEqual(config.vms[1].memoryBytes, 128 << 20)
        XCTAssertEqual(config.vms[1].cpus, 2)
    }

    func testDefaultsApplied() throws {
        let config = try ConfigParser.parse("vm g {\n boot \"k\"\n}\n", file: file)
        let vm = try XCTUnwrap(config.vms.first)
        XCTAssertEqual(vm.memoryBytes, 512 * 1024 * 1024)
        XCTAssertEqual(vm.cpus, 1)
        XCTAssertEqual(vm.cmdline, "")
        XCTAssertEqual(vm.boot, "k")
    }

    func testSizes() throws {
        let cases: [(String, UInt64)] = [
            ("64M", 67_108_864), ("64m", 67_108_864), ("1G", 1_073_741_824), ("1g", 1_073_741_824),
            ("2048K", 2_097_152), ("2048k", 2_097_152), ("4194304", 4_194_304), ("64G", 68_719_476_736),
            ("\"256M\"", 268_435_456), ("1.5G", 1_610_612_736), ("0.5g", 536_870_912), ("1.25G", 1_342_177_280),
        ]
        for (written, bytes) in cases {
            let config = try ConfigParser.parse("vm g { boot k; memory \(written) }", file: file)
            XCTAssertEqual(config.vms.first?.memoryBytes, bytes, "memory \(written)")
        }
    }

    /// scan_scaled(3), as OpenBSD's vmctl and vm.conf read sizes: fractions, and B to E.
    func testByteSizesAsScanScaledReadsThem() {
        let cases: [(String, UInt64?)] = [
            ("512", 512), ("512b", 512), ("1K", 1024), ("2T", 2 << 40), ("1t", 1 << 40), ("3P", 3 << 50), ("1E", 1 << 60),
            ("15E", 15 << 60), ("1.5K", 1536), ("1.3K", 1331), ("0.001K", 1), ("1.0000000000000000001G", 1 << 30),
            ("2.999999999999999999999E", 0x2FFF_FFFF_FFFF_FFFE), ("00012M", 12 << 20),
            // Not sizes at all, or too large.
            ("", nil), ("G", nil), ("1.G", nil), (".5G", nil), ("1..5G", nil), ("1.5.5G", nil), ("-1G", nil), ("1 G", nil),
            ("1GB", nil), ("0x10", nil), ("1.5Z", nil), ("16E", nil), ("18446744073709551616", nil), ("99999999999999999999T", nil),
            ("15.9999999999999999999E", 0xFFFF_FFFF_FFFF_FFFE),
        ]
        for (text, bytes) in cases {
            XCTAssertEqual(parseByteSize(text), bytes, "'\(text)'")
        }
    }

    func testEmptyAndCommentOnlyFilesHaveNoVMs() throws {
        XCTAssertEqual(try ConfigParser.parse("", file: file).vms, [])
        XCTAssertEqual(try ConfigParser.parse("# nothing\n\n   # here\n", file: file).vms, [])
    }

    func testStringEscapesAndNonASCII() throws {
        let text = #"vm g { boot "dir with space/k.elf"; cmdline "say \"hi\" c:\\dir \#u{FC}" }"#
        let vm = try XCTUnwrap(try ConfigParser.parse(text, file: file).vms.first)
        XCTAssertEqual(vm.boot, "dir with space/k.elf")
        XCTAssertEqual(vm.cmdline, "say \"hi\" c:\\dir \u{FC}")
    }

    func testCRLFAndStraySemicolons() throws {
        let text = "vm g {\r\n;; boot \"k\" ;\r\n cpus 64\r\n};\r\n"
        let vm = try XCTUnwrap(try ConfigParser.parse(text, file: file).vms.first)
        XCTAssertEqual(vm.boot, "k")
        XCTAssertEqual(vm.cpus, 64)
    }

    func testNameOfSixtyFourCharactersIsAccepted() throws {
        let name = "a" + String(repeating: "b", count: 63)
        let vm = try XCTUnwrap(try ConfigParser.parse("vm \(name) { boot k }", file: file).vms.first)
        XCTAssertEqual(vm.name, name)
    }

    // MARK: - Bad files: structure

    func testUnknownTopLevelKeyword() {
        assertError(#"foo "g" { boot "k" }"#, at: 1, 1, "expected 'vm', 'include', 'local prefix', 'metrics listen on' or a macro definition (name = value), found 'foo'")
    }

    func testStrayCloseBraceAtTopLevel() {
        assertError("\n}", at: 2, 1, "expected 'vm', 'include', 'local prefix', 'metrics listen on' or a macro definition (name = value), found '}'")
    }

    func testMissingNameBeforeBrace() {
        assertError("vm {", at: 1, 4, "expected a vm name after 'vm', found '{'")
    }

    func testMissingNameAtEndOfFile() {
        assertError("vm", at: 1, 3, "expected a vm name after 'vm', found end of file")
    }

    func testMissingOpenBrace() {
        assertError("vm \"g\"\n{ boot k }", at: 1, 7, "expected '{' after vm name \"g\", found end of line")
    }

    func testMissingCloseBracePointsAtOpenBrace() {
        assertError("vm \"g\" {\n  boot \"k\"\n", at: 1, 8, "'{' of vm \"g\" is never closed: expected '}' before end of file")
    }

    func testForgottenCloseBraceBeforeNextVM() {
        assertError("vm a {\n boot k\nvm b {\n boot k\n}", at: 3, 1,
                    "unknown option 'vm' in vm block; expected one of boot, cmdline, cpu limit, cpus, disable, disk, enable, entropy, firmware, initrd, interface, local interface, memory, owner (missing '}' for the block opened at line 1?)")
    }

    func testUnknownOptionListsValidOnes() {
        assertError("vm \"g\" {\n  boot \"k\"\n  disks 2\n}", at: 3, 3,
                    "unknown option 'disks' in vm block; expected one of boot, cmdline, cpu limit, cpus, disable, disk, enable, entropy, firmware, initrd, interface, local interface, memory, owner")
    }

    func testStringWhereOptionNameExpected() {
        assertError(#"vm g { "boot" "k" }"#, at: 1, 8, "expected an option name in vm block, found string \"boot\"")
    }

    func testOptionGivenTwice() {
        assertError("vm \"g\" {\n memory 64M\n cpus 1\n memory 128M\n boot \"k\"\n}", at: 4, 2,
                    "'memory' given twice; first at line 2")
    }

    func testDuplicateVMName() {
        assertError("vm \"a\" { boot \"k\" }\nvm \"b\" { boot \"k\" }\nvm a { boot \"k\" }", at: 3, 4,
                    "vm \"a\" defined twice; first at line 1")
    }

    func testMissingBootPointsAtVMKeyword() {
        assertError("\n\n  vm \"g\" { memory 64M }", at: 3, 3, "vm \"g\" has no 'boot' option")
    }

    func testExtraValueAfterOption() {
        assertError("vm g { memory 64M 32M }", at: 1, 19, "expected end of line or ';' after 'memory' option, found '32M'")
    }

    func testSecondBlockOnSameLineNeedsSeparator() {
        assertError(#"vm g { boot "k" } vm h { boot "k" }"#, at: 1, 19, "expected end of line or ';' after '}', found 'vm'")
    }

    // MARK: - Bad files: lexical

    func testUnterminatedStringAtEndOfLinePointsAtOpeningQuote() {
        assertError("vm \"g\" {\n  boot \"kernel.elf\n}", at: 2, 8, "unterminated string: no closing '\"' before end of line")
    }

    func testUnterminatedStringAtEndOfFile() {
        assertError("vm \"g", at: 1, 4, "unterminated string: no closing '\"' before end of file")
    }

    func testUnknownEscapePointsAtBackslash() {
        assertError(#"vm g { cmdline "a\nb" }"#, at: 1, 18, #"unknown escape '\n' in string"#)
    }

    func testUnexpectedCharacter() {
        assertError("vm g { cmdline !x }", at: 1, 16, "unexpected character '!'")
        // '=' is a token now (macro definitions), so it is a misplaced value here.
        assertError("vm g { cmdline=x }", at: 1, 15, "expected a kernel command line after 'cmdline', found '='")
    }

    func testColumnsCountUnicodeScalarsAndTabsAsOne() {
        // Three two-byte characters before the error: byte columns would say 27.
        assertError("vm g { cmdline \"\u{FC}n\u{EF}\u{E9}\"; bogus 1 }", at: 1, 24, "unknown option 'bogus'")
        assertError("vm g {\n\t\tbogus 1 }", at: 2, 3, "unknown option 'bogus'")
    }

    // MARK: - Bad files: values

    func testMemoryNotASize() {
        assertError("vm \"g\" {\n\tmemory abc\n}", at: 2, 9, "expected a size such as 64M after 'memory', found 'abc'")
    }

    func testMemoryWithUnsupportedSuffix() {
        assertError("vm g { memory 64MB }", at: 1, 15, "expected a size such as 64M after 'memory', found '64MB'")
    }

    func testMemoryMissingValue() {
        assertError("vm g {\n memory\n}", at: 2, 8, "expected a size such as 64M after 'memory', found end of line")
    }

    func testMemoryNotWholeMiB() {
        assertError("vm g { boot k; memory 2049K }", at: 1, 23, "memory must be a multiple of 1M, found '2049K'")
    }

    func testMemoryTooSmall() {
        assertError("vm g { boot k; memory 1M }", at: 1, 23, "memory must be from 2M to 64G, found '1M'")
    }

    func testMemoryTooLarge() {
        assertError("vm g { boot k; memory 65G }", at: 1, 23, "memory must be from 2M to 64G, found '65G'")
    }

    func testMemorySizeOverflow() {
        assertError("vm g { boot k; memory 99999999999G }", at: 1, 23, "memory size '99999999999G' is too large")
        assertError("vm g { boot k; memory 99999999999999999999999 }", at: 1, 23, "is too large")
    }

    func testCPUsZeroAndTooMany() {
        assertError("vm g { cpus 0 }", at: 1, 13, "cpus must be an integer from 1 to 64, found '0'")
        assertError("vm g { cpus 65 }", at: 1, 13, "cpus must be an integer from 1 to 64, found '65'")
        assertError("vm g { cpus 99999999999999999999 }", at: 1, 13, "cpus must be an integer from 1 to 64")
    }

    func testCPUsNotAnInteger() {
        assertError("vm g { cpus two }", at: 1, 13, "expected an integer from 1 to 64 after 'cpus', found 'two'")
        assertError("vm g { cpus -1 }", at: 1, 13, "expected an integer from 1 to 64 after 'cpus', found '-1'")
    }

    func testInvalidNames() {
        let rule = "use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        assertError(#"vm "-g" { boot k }"#, at: 1, 4, "invalid vm name \"-g\": \(rule)")
        assertError(#"vm "a b" { boot k }"#, at: 1, 4, "invalid vm name \"a b\"")
        assertError(#"vm "" { boot k }"#, at: 1, 4, "invalid vm name \"\"")
        assertError("vm \(String(repeating: "a", count: 65)) { boot k }", at: 1, 4, "invalid vm name")
        // vmctl reads a number as an id: such a VM could not be named.
        assertError(#"vm "42" { boot k }"#, at: 1, 4, "invalid vm name \"42\": a name of digits only reads as a VM id; add a letter")
        assertError("vm 7 { boot k }", at: 1, 4, "a name of digits only")
        XCTAssertEqual(try ConfigParser.parse("vm 7a { boot k }\nvm 1.2 { boot k }", file: "g.conf").vms.map(\.name), ["7a", "1.2"])
    }

    func testEmptyBootPath() {
        assertError(#"vm g { boot "" }"#, at: 1, 13, "boot path must not be empty")
    }

    func testBootMissingValue() {
        assertError("vm g { boot }", at: 1, 13, "expected a kernel path after 'boot', found '}'")
    }

    func testErrorDescriptionFormat() {
        XCTAssertEqual(
            ConfigError(location: ConfigLocation(file: "guest.conf", line: 3, column: 12), message: "m").description,
            "guest.conf:3:12: m")
    }

    // MARK: - load(path:)

    func testLoadMissingFileNamesPathAndErrno() {
        let path = "/nonexistent-swift-vmd-dir/vm.conf"
        XCTAssertThrowsError(try ConfigParser.load(path: path)) { error in
            let readError = error as? ConfigFileReadError
            XCTAssertEqual(readError?.errno, ENOENT)
            XCTAssertEqual("\(error)", "cannot read \(path): No such file or directory")
        }
    }

    func testLoadDirectoryFails() {
        XCTAssertThrowsError(try ConfigParser.load(path: NSTemporaryDirectory())) { error in
            XCTAssertEqual((error as? ConfigFileReadError)?.errno, EISDIR)
            XCTAssertTrue("\(error)".contains("is a directory, not a regular file"), "\(error)")
        }
    }

    func testLoadReadsFileAndUsesPathInLocations() throws {
        let path = try writeTemporaryFile(Array("vm g {\n boot \"k\"\n}\n".utf8))
        let config = try ConfigParser.load(path: path)
        XCTAssertEqual(config.vms.first?.location, ConfigLocation(file: path, line: 1, column: 1))
    }

    func testLoadRejectsInvalidUTF8AtItsPosition() throws {
        let path = try writeTemporaryFile(Array("vm g {\n boot \"k".utf8) + [0xFF] + Array("\"\n}\n".utf8))
        XCTAssertThrowsError(try ConfigParser.load(path: path)) { error in
            XCTAssertEqual("\(error)", "\(path):2:9: file is not valid UTF-8")
        }
    }

    // MARK: - Helpers

    /// Asserts that parsing fails at exactly `line:column` of `g.conf` and that
    /// the message contains `message`.
    private func assertError(
        _ text: String, at line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        do {
            let config = try ConfigParser.parse(text, file: file)
            XCTFail("expected an error, parsed \(config)", file: testFile, line: testLine)
        } catch {
            let prefix = "\(file):\(line):\(column): "
            XCTAssertTrue(error.description.hasPrefix(prefix), "\(error.description) does not start with \(prefix)",
                          file: testFile, line: testLine)
            XCTAssertTrue(error.message.contains(message), "\(error.description) does not contain \(message)",
                          file: testFile, line: testLine)
        }
    }

    private func writeTemporaryFile(_ bytes: [UInt8]) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vmconf-\(UUID().uuidString).conf")
        try Data(bytes).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}

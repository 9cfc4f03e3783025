import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Configuration
@testable import IPC

/// `include "path"` with an in-memory reader, and once on the real file system.
final class ConfigIncludeTests: XCTestCase {
    // MARK: - Good files

    func testIncludeIsParsedInPlaceRelativeToTheIncludingFile() throws {
        let files = [
            "/etc/vm.d/web.conf": "web_mem = 256M\nvm web {\n  boot $kernel; memory $web_mem\n}\ninclude \"more/db.conf\"\n",
            "/etc/vm.d/more/db.conf": "vm db { boot $kernel }\n",
        ]
        let text = """
            kernel = /boot/k.elf
            vm first { boot k }
            include "vm.d/web.conf"
            vm last { boot k; memory $web_mem }
            """
        let config = try ConfigTestSupport.parse(text, file: "/etc/vm.conf", files: files)
        XCTAssertEqual(config.vms.map(\.name), ["first", "web", "db", "last"])
        XCTAssertEqual(config.vms.map(\.boot), ["k", "/boot/k.elf", "/boot/k.elf", "k"])
        // A macro defined in an included file stays defined after it.
        XCTAssertEqual(config.vms.map(\.memoryBytes), [512 << 20, 256 << 20, 512 << 20, 256 << 20])
        XCTAssertEqual(config.vms.map(\.location), [
            ConfigLocation(file: "/etc/vm.conf", line: 2, column: 1),
            ConfigLocation(file: "/etc/vm.d/web.conf", line: 2, column: 1),
            ConfigLocation(file: "/etc/vm.d/more/db.conf", line: 1, column: 1),
            ConfigLocation(file: "/etc/vm.conf", line: 4, column: 1),
        ])
    }

    func testIncludeByMacroAbsolutePathAndDotComponents() throws {
        let files = ["/srv/a.conf": "vm a { boot k }", "conf/b.conf": "vm b { boot k }"]
        let text = "dir = /srv\nabs = /srv/a.conf\ninclude $abs; include ./conf//./b.conf"
        let config = try ConfigTestSupport.parse(text, files: files)
        XCTAssertEqual(config.vms.map(\.name), ["a", "b"])
        XCTAssertEqual(config.vms[1].location.file, "conf/b.conf")
    }

    func testSameFileIncludedTwiceInSequenceIsNotALoop() throws {
        let files = ["m.conf": "k = x.elf\n"]
        let config = try ConfigTestSupport.parse("include m.conf\ninclude m.conf\nvm g { boot $k }", files: files)
        XCTAssertEqual(config.vms.first?.boot, "x.elf")
    }

    func testLoadReadsIncludesFromTheFileSystem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vmconf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("vm.d"), withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try Data("k = k.elf\ninclude \"vm.d/a.conf\"\n".utf8).write(to: dir.appendingPathComponent("vm.conf"))
        try Data("vm a {\n boot $k\n}\n".utf8).write(to: dir.appendingPathComponent("vm.d/a.conf"))
        let config = try ConfigParser.load(path: dir.appendingPathComponent("vm.conf").path)
        XCTAssertEqual(config.vms.first?.boot, "k.elf")
        XCTAssertEqual(config.vms.first?.location, ConfigLocation(file: dir.path + "/vm.d/a.conf", line: 1, column: 1))
    }

    func testLoadReportsAMissingIncludeAtTheInclude() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vmconf-\(UUID().uuidString).conf")
        try Data("\ninclude \"/nonexistent-swift-vmd/x.conf\"\n".utf8).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try ConfigParser.load(path: url.path)) { error in
            XCTAssertEqual("\(error)", "\(url.path):2:9: cannot read /nonexistent-swift-vmd/x.conf: No such file or directory")
        }
    }

    // MARK: - Bad files

    func testMissingIncludedFile() {
        ConfigTestSupport.assertError("vm a { boot k }\ninclude \"nope.conf\"", at: "g.conf", 2, 9,
                                      "cannot read nope.conf: No such file or directory")
    }

    func testFileIncludingItself() {
        ConfigTestSupport.assertError("include g.conf", at: "g.conf", 1, 9,
                                      "include loop: \"g.conf\" is already being read (g.conf -> g.conf)")
    }

    func testIndirectLoopIsReportedInTheFileThatCloses() {
        let files = ["b.conf": "vm b { boot k }\ninclude \"g.conf\"\n"]
        ConfigTestSupport.assertError("include \"b.conf\"", files: files, at: "b.conf", 2, 9,
                                      "include loop: \"g.conf\" is already being read (g.conf -> b.conf -> g.conf)")
    }

    func testLoopThroughDotDotIsFound() {
        let files = ["sub/c.conf": "include ../g.conf"]
        ConfigTestSupport.assertError("include sub/c.conf", files: files, at: "sub/c.conf", 1, 9, "include loop")
    }

    func testErrorInIncludedFileCarriesItsName() {
        let files = ["b.conf": "vm b {\n  boot k\n  memory abc\n}\n"]
        ConfigTestSupport.assertError("vm a { boot k }\ninclude b.conf", files: files, at: "b.conf", 3, 10,
                                      "expected a size such as 64M after 'memory', found 'abc'")
    }

    func testBlockCannotSpanFiles() {
        let files = ["b.conf": "vm b {\n  boot k\n"]
        ConfigTestSupport.assertError("include b.conf\n}\n", files: files, at: "b.conf", 1, 6,
                                      "'{' of vm \"b\" is never closed")
    }

    func testIncludeWithoutPath() {
        ConfigTestSupport.assertError("include\nvm a { boot k }", at: "g.conf", 1, 8, "expected a file path after 'include', found end of line")
        ConfigTestSupport.assertError("include \"\"", at: "g.conf", 1, 9, "expected a file path after 'include', found string \"\"")
    }

    func testIncludeWithTwoPaths() {
        ConfigTestSupport.assertError("include a.conf b.conf", at: "g.conf", 1, 16,
                                      "expected end of line or ';' after the include path, found 'b.conf'")
    }

    func testIncludeInsideVMBlock() {
        ConfigTestSupport.assertError("vm g { boot k\n include b.conf }", at: "g.conf", 2, 2, "unknown option 'include' in vm block")
    }

    func testIncludeWithoutAReader() {
        XCTAssertThrowsError(try ConfigParser.parse("\ninclude b.conf", file: "g.conf")) { error in
            XCTAssertEqual("\(error)", "g.conf:2:9: cannot include \"b.conf\": this text is parsed without a file reader")
        }
    }

    func testDuplicateVMAcrossFilesNamesTheOtherFile() {
        let files = ["b.conf": "\nvm a { boot k }"]
        ConfigTestSupport.assertError("include b.conf\nvm a { boot k }", files: files, at: "g.conf", 2, 4,
                                      "vm \"a\" defined twice; first at b.conf:2")
    }

    func testInvalidUTF8InIncludedFile() {
        let reader: ConfigParser.FileReader = { _ throws(ConfigFileReadError) in Array("vm b { boot \"".utf8) + [0xC3] }
        XCTAssertThrowsError(try ConfigParser.parse("include b.conf", file: "g.conf", readingIncludesWith: reader)) { error in
            XCTAssertEqual("\(error)", "b.conf:1:14: file is not valid UTF-8")
        }
    }

    func testUnreadableIncludeKeepsErrno() {
        let reader: ConfigParser.FileReader = { path throws(ConfigFileReadError) in throw ConfigFileReadError(path: path, errno: EACCES) }
        XCTAssertThrowsError(try ConfigParser.parse("include /etc/secret.conf", file: "g.conf", readingIncludesWith: reader)) { error in
            XCTAssertEqual("\(error)", "g.conf:1:9: cannot read /etc/secret.conf: Permission denied")
        }
    }

    func testIncludeNestingLimit() {
        // Through links a loop can hide from path comparison; the depth limit ends it.
        let reader: ConfigParser.FileReader = { _ throws(ConfigFileReadError) in Array("include sub/n.conf\n".utf8) }
        XCTAssertThrowsError(try ConfigParser.parse("include a.conf", file: "g.conf", readingIncludesWith: reader)) { error in
            XCTAssertTrue("\(error)".contains("includes nested more than 16 deep"), "\(error)")
        }
    }

    func testIncludePathsAndLoopKeys() {
        XCTAssertEqual(ConfigIncludePath.resolve("a.conf", relativeTo: "g.conf"), "a.conf")
        XCTAssertEqual(ConfigIncludePath.resolve("a.conf", relativeTo: "/etc/vm.conf"), "/etc/a.conf")
        XCTAssertEqual(ConfigIncludePath.resolve("/x/a.conf", relativeTo: "/etc/vm.conf"), "/x/a.conf")
        XCTAssertEqual(ConfigIncludePath.resolve("./d//a.conf", relativeTo: "conf/g.conf"), "conf/d/a.conf")
        XCTAssertEqual(ConfigIncludePath.resolve("../a.conf", relativeTo: "conf/g.conf"), "conf/../a.conf")
        XCTAssertEqual(ConfigIncludePath.loopKey("conf/../a.conf"), "a.conf")
        XCTAssertEqual(ConfigIncludePath.loopKey("/../etc/a.conf"), "/etc/a.conf")
        XCTAssertEqual(ConfigIncludePath.loopKey("../a.conf"), "../a.conf")
    }
}

import Foundation
import Glibc
import XCTest
@testable import Configuration
@testable import IPC
@testable import LinuxSystem

/// Input a user, a file or a peer controls never reaches a trap or a hang (issue 13):
/// each case here once crashed vmd or blocked it.
final class HostileInputTests: XCTestCase {
    // MARK: The grammar

    func testCommandLineLongerThanTheBootProtocolsIsAConfigError() throws {
        let longest = String(repeating: "a", count: VMConfig.maximumCommandLineBytes)
        XCTAssertEqual(try ConfigTestSupport.parse("vm g {\n boot \"k\"\n cmdline \"\(longest)\"\n}\n").vms[0].cmdline.utf8.count, 2047)
        // 64 KiB once passed `vmd -n` and then trapped vmd in IPCFrame at `vmctl start`.
        for length in [2048, 8 * 1024, 64 * 1024 + 1] {
            ConfigTestSupport.assertError("vm g {\n boot \"k\"\n cmdline \"\(String(repeating: "a", count: length))\"\n}\n",
                                          3, 10, "kernel command line of \(length) bytes is longer than the boot protocol's 2047")
        }
    }

    func testNULAndControlCharactersInStringsAreRefusedWhereTheyAre() {
        // "ok.img<NUL>junk" once opened ok.img: the path opened was not the path written.
        ConfigTestSupport.assertError("vm g {\n boot \"k\"\n disk \"ok.img\u{0}junk\"\n}\n", 3, 14, "control character U+0000 in string")
        ConfigTestSupport.assertError("vm g {\n boot \"k\u{1B}[2J\"\n}\n", 2, 9, "control character U+001B in string")
        ConfigTestSupport.assertError("vm g {\n boot \"k\"\n cmdline \"a\u{7F}\"\n}\n", 3, 12, "control character U+007F")
        XCTAssertEqual(try? ConfigTestSupport.parse("vm g {\n boot \"k\"\n cmdline \"a\tb\"\n}\n").vms[0].cmdline, "a\tb", "a tab is text")
    }

    func testEachOptionKnowsItsLine() throws {
        let vm = try ConfigTestSupport.parse("vm g {\n boot \"k\"\n\n  owner nosuchuser\n}\n").vms[0]
        XCTAssertEqual(vm.location(of: "owner").description, "g.conf:4:3")
        XCTAssertEqual(vm.location(of: "boot").description, "g.conf:2:2")
        XCTAssertEqual(vm.location(of: "initrd").description, "g.conf:1:1", "an option not given: the vm line")
    }

    // MARK: Files named by users

    private func temporaryPath(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.path + "/hostile-\(getpid())-\(name)"
        unlink(path)
        return path
    }

    func testAFIFOIsRefusedAtOnceInsteadOfBlocking() throws {
        let fifo = temporaryPath("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        defer { unlink(fifo) }
        XCTAssertThrowsError(try RegularFile.read(fifo, limit: 1024)) {
            XCTAssertEqual($0 as? RegularFile.Failure, .notRegular(kind: "a FIFO"))
        }
        XCTAssertThrowsError(try ConfigParser.load(path: fifo)) {
            XCTAssertEqual("\($0)", "cannot read \(fifo): is a FIFO, not a regular file")
        }
    }

    func testDevicesAndDirectoriesAreRefused() {
        XCTAssertEqual(Self.failure { try RegularFile.read("/dev/zero", limit: 1024) }, .notRegular(kind: "a character device"))
        XCTAssertEqual(Self.failure { try RegularFile.read("/tmp", limit: 1024) }, .notRegular(kind: "a directory"))
        XCTAssertEqual(Self.failure { try RegularFile.read("/nonexistent/x", limit: 1024) }, .system(SystemError("open(/nonexistent/x)", errno: ENOENT)))
    }

    func testAHugeFileIsRefusedBeforeItIsRead() throws {
        let huge = temporaryPath("huge")
        let fd = open(huge, O_CREAT | O_WRONLY, 0o600)
        XCTAssertEqual(ftruncate(fd, 1 << 30), 0, "a sparse 1 GiB file")
        close(fd)
        defer { unlink(huge) }
        XCTAssertEqual(Self.failure { try RegularFile.read(huge, limit: ControlRequest.maximumConfigText) },
                       .tooLarge(size: 1 << 30, limit: ControlRequest.maximumConfigText))
        XCTAssertThrowsError(try ConfigParser.load(path: huge)) { XCTAssertTrue("\($0)".contains("is 1073741824 bytes, more than the 1048576 accepted"), "\($0)") }
        let small = temporaryPath("small")
        FileManager.default.createFile(atPath: small, contents: Data("vm a { boot \"k\" }\n".utf8))
        defer { unlink(small) }
        XCTAssertEqual(try RegularFile.read(small, limit: 64), Array("vm a { boot \"k\" }\n".utf8))
    }

    private static func failure(_ body: () throws -> [UInt8]) -> RegularFile.Failure? {
        do { _ = try body(); return nil } catch { return error as? RegularFile.Failure }
    }

    // MARK: Frames

    func testAMessageLargerThanAFrameIsAnErrorNotATrap() throws {
        let (a, b) = try Channel.pair()
        let huge = ControlRequest.startConfig(text: String(repeating: "x", count: IPCFrame.maximumSize), path: "p", directory: "d")
        XCTAssertThrowsError(try a.send(huge)) { XCTAssertEqual($0 as? IPCError, .oversized(IPCFrame.maximumSize + 12 + 4 + 5 + 5)) }
        let boot = VMCommand.boot(BootRequest(name: "g", vcpus: 1, cmdline: String(repeating: "y", count: 1 << 20)),
                                  kernel: try FileDescriptor.eventFD(), initrd: nil,
                                  console: try FileDescriptor.eventFD())
        XCTAssertThrowsError(try a.send(boot)) { guard case .oversized = $0 as? IPCError else { return XCTFail("\($0)") } }
        // Nothing was sent; the channel still works.
        try a.send(VMCommand.stop)
        guard case .stop = try b.receive(VMCommand.self) else { return XCTFail("expected stop") }
    }
}

import XCTest
@testable import Configuration

final class DiskConfigTests: XCTestCase {
    private func parse(_ text: String) throws -> VMConfig {
        try XCTUnwrap(try ConfigParser.parse(text, file: "g.conf").vms.first)
    }

    private func error(_ text: String) -> String {
        do {
            _ = try ConfigParser.parse(text, file: "g.conf")
            return "no error"
        } catch {
            return error.description
        }
    }

    func testDisksWithOptions() throws {
        let vm = try parse("""
            vm "a" {
                boot "k"
                disk "/img/root.img"
                disk data.img format raw readonly
                disk "ro.img" readonly
            }
            """)
        XCTAssertEqual(vm.disks.map(\.path), ["/img/root.img", "data.img", "ro.img"])
        XCTAssertEqual(vm.disks.map(\.readOnly), [false, true, true])
        XCTAssertEqual(vm.disks.map(\.format), [.raw, .raw, .raw])
        XCTAssertEqual(vm.disks[1].location, ConfigLocation(file: "g.conf", line: 4, column: 5))
        XCTAssertEqual(try parse("vm a { boot k }").disks, [])
    }

    func testDiskErrors() {
        XCTAssertEqual(error("vm a { boot k; disk }"), "g.conf:1:21: expected a disk image path after 'disk', found '}'")
        XCTAssertEqual(error("vm a { boot k; disk \"x\" format vmdk }"),
                       "g.conf:1:32: expected a disk format after 'format' (supported: raw, qcow2), found 'vmdk'")
        XCTAssertEqual(try parse("vm a { boot k; disk \"x\" format qcow2 readonly }").disks.map(\.format), [.qcow2])
        XCTAssertEqual(error("vm a { boot k; disk x fast }"),
                       "g.conf:1:23: expected 'format', 'readonly', 'cache', '{' or end of line after the disk path, found 'fast'")
        XCTAssertEqual(error("vm a { boot k; disk x cache direct }"), "g.conf:1:29: expected a cache mode after 'cache' (none or writeback), found 'direct'")
        XCTAssertEqual(try parse("vm a { boot k; disk x cache none; disk y }").disks.map(\.cache), [.none, .writeback])
        XCTAssertEqual(error("vm a { boot k; disk x readonly readonly }"), "g.conf:1:32: 'readonly' given twice for this disk")
        XCTAssertEqual(error("vm a { boot k; disk a; disk b; disk c; disk d; disk e }"), "g.conf:1:48: too many disks; at most 4 per vm")
        XCTAssertEqual(error("vm a { boot k; disk \"\" }"), "g.conf:1:21: expected a disk image path after 'disk', found string \"\"")
    }
}

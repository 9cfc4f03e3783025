import DiskFormats
import XCTest

/// Where a file an image names is, as vmd and vmctl open a chain: QEMU's rule, relative to
/// the naming image's directory.
final class Qcow2NamedPathTests: XCTestCase {
    func testANameIsTakenRelativeToTheImageThatGivesIt() {
        let cases: [(name: String, image: String, path: String)] = [
            ("base.raw", "/srv/vms/top.qcow2", "/srv/vms/base.raw"),
            ("../base.raw", "vms/top.qcow2", "vms/../base.raw"),
            ("base.raw", "top.qcow2", "./base.raw"),
            ("base.raw", "/top.qcow2", "/base.raw"),
            ("/abs/base.raw", "vms/top.qcow2", "/abs/base.raw"),
            ("sub/base.raw", "/srv/top.qcow2", "/srv/sub/base.raw"),
        ]
        for (name, image, path) in cases {
            XCTAssertEqual(Qcow2Header.path(of: name, namedBy: image), path, "\(name) named by \(image)")
        }
    }
}

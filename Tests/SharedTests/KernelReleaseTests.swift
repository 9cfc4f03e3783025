import XCTest
@testable import LinuxSystem

final class KernelReleaseTests: XCTestCase {
    func testTheVersionIsTheReleasesFirstTwoNumbers() {
        let release = KernelRelease("6.18.44-fc-v1147")
        XCTAssertEqual(release.version?.major, 6)
        XCTAssertEqual(release.version?.minor, 18)
        XCTAssertTrue(release.isAtLeast(6, 2))
        XCTAssertTrue(release.isAtLeast(6, 18))
        XCTAssertFalse(release.isAtLeast(6, 19))
        XCTAssertFalse(KernelRelease("6.1.0-50-cloud-amd64").isAtLeast(6, 2))
        XCTAssertTrue(KernelRelease("7.0").isAtLeast(6, 2))
        XCTAssertNil(KernelRelease("custom").version)
        XCTAssertFalse(KernelRelease("custom").isAtLeast(0, 0), "no version: not assumed new")
        XCTAssertNil(KernelRelease("6").version)
    }
}

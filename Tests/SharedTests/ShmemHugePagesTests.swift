import XCTest
@testable import MemorySlots

/// vmd reads the host's shmem THP setting and says when guest RAM gets 4 KiB pages only.
final class ShmemHugePagesTests: XCTestCase {
    func testTheSelectedWordIsRead() {
        XCTAssertEqual(ShmemHugePages.selected(in: "always within_size advise [never] deny force\n"), "never")
        XCTAssertEqual(ShmemHugePages.selected(in: "always within_size [advise] never deny force"), "advise")
        XCTAssertNil(ShmemHugePages.selected(in: "always advise never"))
        XCTAssertNil(ShmemHugePages.selected(in: ""))
    }

    func testAdviceOnlyWhenHugePagesAreOff() {
        XCTAssertNotNil(ShmemHugePages.advice(setting: "never"))
        XCTAssertNotNil(ShmemHugePages.advice(setting: "deny"))
        XCTAssertTrue(ShmemHugePages.advice(setting: "never")?.contains("echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled") ?? false)
        for setting in ["advise", "always", "within_size", "force"] { XCTAssertNil(ShmemHugePages.advice(setting: setting), setting) }
        XCTAssertNil(ShmemHugePages.advice(setting: nil), "no THP in the kernel: nothing to say")
    }

    func testThisHostsSettingParses() throws {
        guard FileManager.default.fileExists(atPath: ShmemHugePages.settingPath) else {
            throw XCTSkip("no \(ShmemHugePages.settingPath) on this kernel")
        }
        XCTAssertNotNil(ShmemHugePages.hostSetting(), "one word is selected")
    }
}

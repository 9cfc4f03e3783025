import Foundation
import MemorySlots
import XCTest

/// Guest RAM in 2 MiB pages where the host's shmem THP setting allows them
/// (`scripts/setup` and the installed tmpfiles.d entry set `advise`). With 4 KiB pages
/// every O_DIRECT transfer of a disk is split into one segment per page: on this host a
/// 128 KiB sequential read under `cache none` ran at a quarter of QEMU's speed, whose
/// anonymous RAM has THP, and at par with it once guest RAM had 2 MiB pages too.
final class GuestRAMHugePagesTests: XCTestCase {
    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
    }

    func testGuestRAMIsMappedIn2MiBPagesWhereTheHostAllowsThem() throws {
        let setting = ShmemHugePages.hostSetting()
        guard let setting, ["advise", "always", "within_size", "force"].contains(setting) else {
            throw XCTSkip("\(ShmemHugePages.settingPath) is [\(setting ?? "absent")]: guest RAM gets 4 KiB pages only (scripts/setup sets advise)")
        }
        let daemon = try DaemonHarness("hugepages")
        let config = try daemon.writeGuestConfig("huge", cmdline: "test=hang")
        XCTAssertEqual(daemon.vmctl("start", config).status, 0, daemon.log)
        defer { _ = daemon.vmctl("stop", "huge", "-f", "-w") }
        let vm = try XCTUnwrap(daemon.processes("vm", vm: "huge").first, daemon.log)
        // The loader wrote the guest kit through vm's mapping and the guest ran: what it
        // touched is resident, in 2 MiB pages if the madvise took effect.
        var ram: (rss: Int, pmdMapped: Int)?
        XCTAssertTrue(daemon.eventually {
            ram = Self.mappingSizes(smaps: VmdHarness.readProcFile("/proc/\(vm)/smaps"), name: "/memfd:vmd-huge-ram0")
            return (ram?.rss ?? 0) > 0
        }, "no resident guest RAM in vm \(vm)")
        let sizes = try XCTUnwrap(ram)
        XCTAssertGreaterThan(sizes.pmdMapped, 0, "guest RAM: \(sizes.rss) KiB resident, none of it in 2 MiB pages (setting \(setting))")
        XCTAssertEqual(sizes.pmdMapped % 2048, 0, "PMD mappings are whole 2 MiB pages")
    }

    /// Rss and ShmemPmdMapped (KiB) of the mappings of `name` in /proc/PID/smaps.
    static func mappingSizes(smaps: String, name: String) -> (rss: Int, pmdMapped: Int) {
        var inside = false
        var sizes = (rss: 0, pmdMapped: 0)
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), first.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                inside = line.contains(name)  // a mapping's header: address range, perms, ..., path
            } else if inside, fields.count >= 2, let kib = Int(fields[1]) {
                if fields[0] == "Rss:" { sizes.rss += kib }
                if fields[0] == "ShmemPmdMapped:" { sizes.pmdMapped += kib }
            }
        }
        return sizes
    }
}

import Foundation
import Glibc
import XCTest

/// Stock Linux (Debian's cloud kernel, made by scripts/linux-guest) under vmd.
/// On this host ring 0 is emulated, so only the kernel's early console is checked:
/// its banner, our command line, an e820 map equal to our slot table, and our ACPI
/// tables: the RSDP where PVH and boot_params say, the MADT giving it both vCPUs
/// (Debian's kernel has no MP-table SMP). The full boot runs only where the host has
/// hardware virtualization.
final class LinuxBootTests: XCTestCase {
    static let directory = VmdHarness.packageRoot.appendingPathComponent("build/linux")
    static let commandLine = "console=ttyS0 earlyprintk=serial,ttyS0,115200 lpj=5000 tsc=reliable no_timer_check loglevel=8"

    override func setUpWithError() throws {
        try VmdHarness.requireKVMAndRoot()
        guard FileManager.default.fileExists(atPath: Self.directory.appendingPathComponent("vmlinuz").path) else {
            print("SKIP: build/linux is missing; run scripts/linux-guest (make test does)")
            throw XCTSkip("build/linux is missing; run scripts/linux-guest")
        }
    }

    /// The e820 lines Linux prints for a 256 MiB guest: our slot table as MemoryMapEntry.map gives it.
    static let e820Lines = [
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
        "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved",
        "BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable",
    ]

    private func bootEarlyConsole(_ kernel: String, deadline: Double) throws {
        let vm = try VmdHarness("linux-\(kernel)")
        let config = try vm.writeConfig(boot: Self.directory.appendingPathComponent(kernel).path,
                                        cmdline: Self.commandLine, memory: "256M", extra: "    cpus 2")
        let run = try vm.start(config: config, arguments: ["--deadline", String(Int(deadline))])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(run.waitForOutput(Self.e820Lines[2], seconds: deadline), "no e820 map within \(deadline)s:\n\(run.stdout.suffix(3000))\n\(run.stderr)")
        XCTAssertTrue(run.stdout.contains("Linux version 6."), "kernel banner:\n\(run.stdout.prefix(2000))")
        XCTAssertTrue(run.stdout.contains("Command line: \(Self.commandLine)"), "our command line:\n\(run.stdout.prefix(2000))")
        for line in Self.e820Lines { XCTAssertTrue(run.stdout.contains(line), "missing \(line)") }
        XCTAssertEqual(run.stdout.components(separatedBy: "BIOS-e820:").count - 1, Self.e820Lines.count, "no other e820 entries")
        XCTAssertTrue(run.waitForOutput("smpboot: Allowing 2 CPUs, 0 hotplug CPUs", seconds: 120), "both vCPUs from the MADT:\n\(run.stdout.suffix(3000))")
        for line in ["ACPI: RSDP 0x00000000000E0000 000024 (v02 SWFVMD)", "ACPI: FACP 0x00000000000E0800",
                     "ACPI: DSDT 0x00000000000E0A00", "ACPI: APIC 0x00000000000E0100",
                     "ACPI: Using ACPI (MADT) for SMP configuration information", "ACPI: INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2"] {
            XCTAssertTrue(run.stdout.contains(line), "missing \(line):\n\(run.stdout.suffix(3000))")
        }
        XCTAssertFalse(run.stdout.contains("A valid RSDP was not found"), run.stdout)
        kill(run.process.processIdentifier, SIGTERM)
        run.wait(seconds: 30)
        XCTAssertEqual(vm.vmProcesses(), [])
    }

    func testVmlinuxThroughPVHShowsBannerCommandLineAndE820() throws {
        try bootEarlyConsole("vmlinux", deadline: 300)
    }

    func testBzImageThroughTheBootProtocolShowsBannerCommandLineAndE820() throws {
        // The decompressor runs in emulated ring 0 here: minutes before the first line.
        try bootEarlyConsole("vmlinuz", deadline: 900)
    }

    func testFullBootWithDiskAndNetwork() throws {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        guard cpuinfo.contains(" vmx") || cpuinfo.contains(" svm") else {
            print("SKIP: no vmx or svm in /proc/cpuinfo (KVM without hardware virtualization, e.g. PVM): ring 0 is emulated and a full Linux boot does not finish")
            throw XCTSkip("no hardware virtualization")
        }
        let vm = try VmdHarness("linux-full")
        let image = vm.directory.appendingPathComponent("disk.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 16 << 20))
        let config = try vm.writeConfig(boot: Self.directory.appendingPathComponent("vmlinuz").path,
                                        cmdline: "console=ttyS0 vmd.end=reboot ip=10.0.2.15", memory: "256M",
                                        extra: "    initrd \"\(Self.directory.appendingPathComponent("initramfs.cpio.gz").path)\"\n    disk \"\(image)\"")
        let run = try vm.run(config: config, arguments: ["--deadline", "300"], seconds: 320)
        for check in ["linux-init", "linux-modules", "linux-blk", "linux-done"] {
            XCTAssertEqual(VmdHarness.result(check, in: run.stdout)?["status"], "pass", "\(check): \(run.stdout.suffix(3000))")
        }
    }
}

import Foundation
import Glibc
import XCTest

/// Linux guests under swift-vmd, proven on this host through the nested rig
/// (scripts/nested): QEMU's TCG emulates an AMD CPU with SVM, an L1 Debian kernel
/// (bookworm's 6.1 and the backports 6.12) runs kvm_amd, and vmd boots the L2 cases
/// of scripts/nested-l1/cases inside it. The rig runs once; each test asserts one
/// group of L2 results on both L1 kernels.
final class NestedRigTests: XCTestCase {
    static let kernels = ["6.1", "6.12"]

    /// case → RESULT name → fields, per L1 kernel; and the rig's own output.
    struct Rig {
        var results: [String: [String: [String: [String: String]]]] = [:]
        var output = ""
    }

    static let rig: Result<Rig, Error> = Result { try runRig() }

    private static func runRig() throws -> Rig {
        guard getuid() == 0 else {
            print("SKIP: the nested rig needs root (it installs QEMU and downloads kernels)")
            throw XCTSkip("the nested rig needs root")
        }
        let out = VmdHarness.packageRoot.appendingPathComponent("build/nested")
        let script = VmdHarness.packageRoot.appendingPathComponent("scripts/nested").path
        let (status, output) = VmdHarness.runCommand(
            ["/usr/bin/env", "RIG_BIN=\(VmdHarness.productsDirectory)", script, "--kernels", kernels.joined(separator: ","),
             "--out", out.path], seconds: 2 * 900 + 300)
        print(output)
        if status == 77 {
            let reason = output.split(separator: "\n").first { $0.hasPrefix("nested: SKIP:") } ?? "the rig cannot run here"
            print(reason)
            throw XCTSkip(String(reason))
        }
        var rig = Rig(output: output)
        for kernel in kernels {
            var text = (try? String(contentsOf: out.appendingPathComponent("\(kernel)/results.txt"), encoding: .utf8)) ?? ""
            if !text.contains("RIG done") {
                // The L1 did not finish (QEMU's TCG has hung an L1 now and then, on either
                // kernel's cases): its cases run once more, in an L1 of their own, and that
                // run's results are the ones asserted. A case that fails for real fails twice.
                print("nested: L1 \(kernel) did not finish its cases; running them once more")
                let again = out.appendingPathComponent("retry")
                let (_, retryOutput) = VmdHarness.runCommand(
                    ["/usr/bin/env", "RIG_BIN=\(VmdHarness.productsDirectory)", script, "--kernels", kernel, "--out", again.path],
                    seconds: 900 + 300)
                print(retryOutput)
                rig.output += "\n" + retryOutput
                text = (try? String(contentsOf: again.appendingPathComponent("\(kernel)/results.txt"), encoding: .utf8)) ?? ""
            }
            var cases: [String: [String: [String: String]]] = [:]
            for line in text.replacingOccurrences(of: "\r", with: "").split(separator: "\n") {
                let words = line.split(separator: " ")
                guard words.count >= 4, words[0] == "RIG", words[1].hasPrefix("case="), words[2] == "RESULT" else {
                    if line.hasPrefix("RIG l1 ") || line == "RIG done" { cases["", default: [:]][String(line.dropFirst(4))] = [:] }
                    continue
                }
                var fields: [String: String] = [:]
                for word in words.dropFirst(3) {
                    let parts = word.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
                }
                cases[String(words[1].dropFirst(5)), default: [:]][fields["name"] ?? ""] = fields
            }
            rig.results[kernel] = cases
        }
        return rig
    }

    /// Asserts that each named RESULT of `caseName` passed on every L1 kernel, and returns them.
    @discardableResult
    private func expectPass(_ caseName: String, _ names: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: [String: [String: String]]] {
        let rig = try Self.rig.get()
        var found: [String: [String: [String: String]]] = [:]
        for kernel in Self.kernels {
            let l1 = rig.results[kernel]?[""] ?? [:]
            XCTAssertNotNil(l1["done"], "L1 \(kernel) did not finish its cases:\n\(rig.output.suffix(4000))", file: file, line: line)
            let results = rig.results[kernel]?[caseName] ?? [:]
            for name in names + ["case-end"] {
                XCTAssertEqual(results[name]?["status"], "pass", "L1 \(kernel), case \(caseName), \(name): \(results[name] ?? [:])\n"
                               + "(build/nested/\(kernel)/console.log has the case's whole output)", file: file, line: line)
            }
            found[kernel] = results
        }
        return found
    }

    func testL1HasNestedKVM() throws {
        let rig = try Self.rig.get()
        for kernel in Self.kernels {
            let line = rig.results[kernel]?[""]?.keys.first { $0.hasPrefix("l1 ") } ?? ""
            XCTAssertTrue(line.contains("release=\(kernel).") && line.contains("kvm=yes") && line.contains("nested=1"), "L1 \(kernel): \(line)")
        }
    }

    func testGuestKitBootsAndStartsFourCPUs() throws {
        try expectPass("kit-boot", ["boot"])
        for (kernel, results) in try expectPass("kit-smp", ["smp"]) {
            XCTAssertEqual(results["smp"]?["apic_ids"], "0,1,2,3", "L1 \(kernel)")
        }
    }

    /// vm.conf's cgroup limits, in an L1 whose cgroup v2 has its controllers (this host's are
    /// bound to v1 hierarchies): the kit's work on 4 vCPUs held to half of the L1's core by
    /// `cpu limit 50%` (cpu.stat over ten seconds, throttled), a guest touching 160 MiB
    /// under `memory limit 64M` stopped with that reason; the cgroups gone afterwards.
    func testCgroupLimitsHoldTheCPUAndStopAVMOverItsMemory() throws {
        for (kernel, results) in try expectPass("cgroup-cpu", ["kit-ready", "cgroup-cpu-max", "cgroup-cpu-held", "cgroup-removed"]) {
            print("L1 \(kernel), cpu limit 50%: \(results["cgroup-cpu-held"] ?? [:])")
        }
        try expectPass("cgroup-memory", ["vm-end", "cgroup-removed"])
    }

    func testBzImageWithTwoCPUsDiskDHCPNetworkAndEntropyPowersOffThroughACPI() throws {
        for (kernel, results) in try expectPass("linux-bzimage", ["linux-init", "linux-modules", "linux-blk", "linux-rng", "linux-net", "linux-done", "vm-end"]) {
            XCTAssertEqual(results["linux-rng"]?["current"], "virtio_rng.0", "L1 \(kernel): the kernel's hardware RNG is ours")
            XCTAssertEqual(results["linux-init"]?["nproc"], "2", "L1 \(kernel): every vCPU is up")
            XCTAssertEqual(results["linux-blk"]?["queues"], "2", "L1 \(kernel): Linux drives a request queue per vCPU")
            XCTAssertEqual(results["linux-net"]?["address"], "100.64.0.1", "L1 \(kernel): the lease of the device's DHCP")
            XCTAssertEqual(results["linux-net"]?["queues"], "2", "L1 \(kernel): virtio_net puts a queue pair per vCPU in use (MQ)")
        }
    }

    func testPVHWithFourCPUsPowersOffThroughACPI() throws {
        for (kernel, results) in try expectPass("linux-pvh", ["linux-init", "linux-done", "vm-end"]) {
            XCTAssertEqual(results["linux-init"]?["nproc"], "4", "L1 \(kernel): every vCPU is up")
        }
    }

    func testVmctlStopPressesThePowerButtonAndTheGuestPowersOff() throws {
        for (kernel, results) in try expectPass("linux-stop", ["linux-ready", "stop-guest-ready", "stop-button-handled", "stop-powered-off"]) {
            XCTAssertEqual(results["linux-ready"]?["buttons"], "1", "L1 \(kernel): Linux found our ACPI power button")
        }
    }

    func testGuestRebootRestartsTheVMWithItsDisk() throws {
        for (kernel, results) in try expectPass("linux-restart", ["linux-reboot", "linux-restarted", "restart-second-boot", "restart-counted"]) {
            XCTAssertEqual(results["linux-restarted"]?["boots"], "2", "L1 \(kernel): the second boot read the first one's count")
        }
    }

    /// `boot device disk`: SeaBIOS (fw_cfg, our ACPI tables through its table loader), the
    /// disk's SYSLINUX, Debian's kernel and initramfs, systemd with its root on virtio-blk.
    func testDebianBootsFromItsOwnDiskThroughSeaBIOSAndPowersOffOnVmctlStop() throws {
        let names = ["debian-booted", "debian-init", "debian-rootfs", "debian-net", "debian-ready", "debian-firmware", "debian-powered-off"]
        for (kernel, results) in try expectPass("debian-disk", names) {
            XCTAssertEqual(results["debian-init"]?["cpus"], "2", "L1 \(kernel): both vCPUs are up")
            XCTAssertEqual(results["debian-init"]?["root"], "/dev/vda2", "L1 \(kernel): the root filesystem is the disk's second partition")
            XCTAssertEqual(results["debian-net"]?["address"], "100.64.0.1/31", "L1 \(kernel): networkd got the device's DHCP lease")
        }
    }
}

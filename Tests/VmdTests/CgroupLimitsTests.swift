import XCTest
import Configuration
@testable import VMDaemon

/// What vm.conf's limits become in a VM's cgroup, and how vmd finds its hierarchy.
final class CgroupLimitsTests: XCTestCase {
    func testLimitsBecomeTheirFiles() {
        var limits = CgroupLimits(cpuPercent: 150, memoryBytes: 1 << 30)
        let sda = BlockDeviceNumber(major: 8, minor: 0), vdb = BlockDeviceNumber(major: 254, minor: 16)
        limits.addIO(DiskIOLimit(bytesPerSecond: 50 << 20, operationsPerSecond: nil), device: vdb)
        limits.addIO(DiskIOLimit(bytesPerSecond: 10 << 20, operationsPerSecond: 2000), device: sda)
        // A second disk on the same device: the device's line takes the smaller of each.
        limits.addIO(DiskIOLimit(bytesPerSecond: 20 << 20, operationsPerSecond: 500), device: sda)
        limits.addIO(DiskIOLimit(), device: BlockDeviceNumber(major: 9, minor: 9))
        XCTAssertEqual(limits.files.map { "\($0.file)=\($0.contents)" }, [
            "cpu.max=150000 100000",
            "memory.max=1073741824",
            "memory.oom.group=1",
            "io.max=8:0 rbps=10485760 wbps=10485760 riops=500 wiops=500",
            "io.max=254:16 rbps=52428800 wbps=52428800",
        ])
        XCTAssertEqual(limits.controllers.map(\.controller), ["cpu", "memory", "io"])
        XCTAssertTrue(CgroupLimits().isEmpty)
        XCTAssertEqual(CgroupLimits(cpuPercent: 1).files.first?.contents, "1000 100000")
    }

    func testTheCgroupV2MountAndOwnPathAreFound() {
        let hybrid = """
            30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
            31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
            32 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid shared:11 - cgroup cgroup rw,cpu
            """
        XCTAssertEqual(CgroupHierarchy.cgroup2Mount(mountinfo: hybrid), "/sys/fs/cgroup/unified")
        let unified = """
            40 22 0:35 /sub /mnt/bind rw - cgroup2 cgroup2 rw
            29 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 opt:1 - cgroup2 cgroup2 rw,nsdelegate
            """
        XCTAssertEqual(CgroupHierarchy.cgroup2Mount(mountinfo: unified), "/sys/fs/cgroup", "the root of the hierarchy, not a bind mount of a part")
        XCTAssertNil(CgroupHierarchy.cgroup2Mount(mountinfo: "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro"))
        XCTAssertEqual(CgroupHierarchy.ownPath(procCgroup: "4:memory:/x\n0::/system.slice/vmd.service\n"), "/system.slice/vmd.service")
        XCTAssertNil(CgroupHierarchy.ownPath(procCgroup: "4:memory:/x\n"))
        XCTAssertEqual(CgroupFiles.value(of: "oom_kill", in: "low 0\nhigh 0\nmax 12\noom 2\noom_kill 3\n"), 3)
        XCTAssertNil(CgroupFiles.value(of: "oom_kill", in: "oom 2\n"))
    }

    func testAMemoryLimitStopTellsWhy() {
        XCTAssertEqual(VMOutcome.memoryLimitExceeded(bytes: 64 << 20).description,
                       "went over its memory limit of 64 MiB; the kernel killed its processes (cgroup out of memory)")
        XCTAssertEqual(VMOutcome.memoryLimitExceeded(bytes: 64 << 20).exitStatus, ExitStatus.vmFailure)
    }
}

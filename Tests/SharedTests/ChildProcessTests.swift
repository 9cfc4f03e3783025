import Foundation
import CLinux
import Glibc
import XCTest
@testable import LinuxSystem

/// ChildProcess: what a child gets (stdin /dev/null, the channel on fd 3, the log on 1 and 2,
/// nothing else open, no signal blocked or ignored, a session of its own), whether it starts
/// inside a cgroup (clone3 with CLONE_INTO_CGROUP) or is started by posix_spawn.
final class ChildProcessTests: XCTestCase {
    /// A child that waits (sleep), looked at from outside through /proc while it runs.
    private func run(cgroup: FileDescriptor?, namespaces: [FileDescriptor?] = [nil, nil]) throws -> (child: ChildProcess, proc: ProcView) {
        let (channel, childEnd) = try FileDescriptor.socketPair()
        let log = FileDescriptor(adopting: fileno(tmpfile()))
        // An ignored signal would stay ignored across execve if the child did not reset it.
        let previous = signal(SIGUSR1, SIG_IGN)
        defer { signal(SIGUSR1, previous) }
        let stray = try FileDescriptor.open("/dev/null", flags: O_RDONLY)  // close-on-exec, and above 3
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["30"], channel: childEnd, log: log, cgroup: cgroup,
                                     namespaces: namespaces)
        defer { child.terminate() }
        childEnd.close()
        stray.close()
        // Until sleep sleeps: it opens files of its own while it starts (/etc/locale.alias).
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !Self.sleeping(child.pid) { usleep(1_000) }
        withExtendedLifetime(channel) {}
        return (child, ProcView(pid: child.pid))
    }

    /// In nanosleep or clock_nanosleep (x86-64 system calls 35 and 230).
    private static func sleeping(_ pid: pid_t) -> Bool {
        let call = CgroupTestFiles.read("/proc/\(pid)/syscall")?.split(separator: " ").first
        return call == "35" || call == "230"
    }

    /// What /proc says of a process, read once.
    struct ProcView {
        let descriptors: [Int: String]
        let status: String
        let stat: [Substring]
        let cgroup: String

        init(pid: pid_t) {
            var descriptors: [Int: String] = [:]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [] {
                if let fd = Int(name) {
                    descriptors[fd] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)")) ?? "?"
                }
            }
            self.descriptors = descriptors
            status = CgroupTestFiles.read("/proc/\(pid)/status") ?? ""
            let text = CgroupTestFiles.read("/proc/\(pid)/stat") ?? ""
            stat = text.split(separator: ")").last.map { $0.split(separator: " ") } ?? []
            cgroup = CgroupTestFiles.read("/proc/\(pid)/cgroup") ?? ""
        }

        func mask(_ field: String) -> UInt64? {
            status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                .flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        }
    }

    /// `namespaces`: what each descriptor from 5 on should be, by number.
    private func assertAlone(_ view: ProcView, pid: pid_t, namespaces: [Int: String] = [:], file: StaticString = #filePath,
                             line: UInt = #line) {
        XCTAssertEqual(view.descriptors.keys.sorted(), [0, 1, 2, 3] + namespaces.keys.sorted(),
                       "stdin, stdout, stderr, the channel and the namespaces given, only: \(view.descriptors)",
                       file: file, line: line)
        for (descriptor, name) in namespaces {
            XCTAssertEqual(view.descriptors[descriptor], name, "fd \(descriptor) is the namespace given", file: file, line: line)
        }
        XCTAssertEqual(view.descriptors[0], "/dev/null", file: file, line: line)
        XCTAssertTrue(view.descriptors[3]?.hasPrefix("socket:") ?? false, "\(view.descriptors)", file: file, line: line)
        XCTAssertEqual(view.descriptors[1], view.descriptors[2], "stdout and stderr are the log", file: file, line: line)
        XCTAssertEqual(view.mask("SigBlk"), 0, view.status, file: file, line: line)
        // Signals 1-31: none ignored (SIGUSR1 was, in the parent). glibc's own two (32, 33) may be.
        XCTAssertEqual((view.mask("SigIgn") ?? 1) & 0x7fff_ffff, 0, view.status, file: file, line: line)
        // After "(comm)": state, ppid, pgrp, session.
        XCTAssertEqual(view.stat.count > 3 ? String(view.stat[3]) : "", "\(pid)", "a session of its own", file: file, line: line)
    }

    func testPosixSpawnedChildHasOnlyWhatItIsGiven() throws {
        let (child, view) = try run(cgroup: nil)
        XCTAssertFalse(child.startedInCgroup)
        assertAlone(view, pid: child.pid)
    }

    /// Given the namespaces vmd makes for its children, either way of starting puts each at
    /// its number (network 5, mount 6) and nothing else besides; given only the mount one,
    /// 5 stays closed.
    func testAChildGetsTheNamespacesItIsGivenAtTheirNumbersEitherWay() throws {
        guard getuid() == 0 else {
            print("SKIP: making a namespace needs root")
            throw XCTSkip("making a namespace needs root")
        }
        var made: [FileDescriptor] = []
        var names: [String] = []
        for namespace in SharedNamespace.all {
            let descriptor = namespace.make()
            XCTAssertGreaterThanOrEqual(descriptor, 0, "making the \(namespace.name) namespace: \(-descriptor)")
            made.append(FileDescriptor(adopting: descriptor))
            let name = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
            XCTAssertTrue(name.hasPrefix("\(namespace.procName):["), name)
            XCTAssertNotEqual(name, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(namespace.procName)"),
                              "a new namespace, not this process's")
            names.append(name)
        }
        defer { made.forEach { $0.close() } }
        let both = [5: names[0], 6: names[1]]
        let (spawned, spawnedView) = try run(cgroup: nil, namespaces: made)
        XCTAssertFalse(spawned.startedInCgroup)
        assertAlone(spawnedView, pid: spawned.pid, namespaces: both)
        let (mountOnly, mountOnlyView) = try run(cgroup: nil, namespaces: [nil, made[1]])
        assertAlone(mountOnlyView, pid: mountOnly.pid, namespaces: [6: names[1]])
        try withTestCgroup("spawn-ns") { _, _, directory in
            let (cloned, clonedView) = try run(cgroup: directory, namespaces: made)
            XCTAssertTrue(cloned.startedInCgroup)
            assertAlone(clonedView, pid: cloned.pid, namespaces: both)
            let (clonedMountOnly, clonedMountOnlyView) = try run(cgroup: directory, namespaces: [nil, made[1]])
            assertAlone(clonedMountOnlyView, pid: clonedMountOnly.pid, namespaces: [6: names[1]])
        }
    }

    /// Started inside a cgroup of the test's own: the same as posix_spawn's child, and in it.
    func testChildStartedInsideACgroupHasOnlyWhatItIsGivenAndIsInIt() throws {
        try withTestCgroup("spawn") { _, name, directory in
            let (child, view) = try run(cgroup: directory)
            XCTAssertTrue(child.startedInCgroup, "this kernel has CLONE_INTO_CGROUP (Linux 5.7+)")
            XCTAssertTrue(view.cgroup.contains("0::/\(name)\n"), "the child started in the cgroup:\n\(view.cgroup)")
            assertAlone(view, pid: child.pid)
        }
    }

    /// A program that cannot be run fails the spawn with its errno, and leaves no child behind.
    func testAChildThatCannotExecFailsTheSpawnWithItsErrno() throws {
        try withTestCgroup("exec") { path, _, directory in
            let (_, childEnd) = try FileDescriptor.socketPair()
            let log = FileDescriptor(adopting: fileno(tmpfile()))
            XCTAssertThrowsError(try ChildProcess(executable: "/nonexistent/program", arguments: [], channel: childEnd, log: log,
                                                  cgroup: directory)) { error in
                XCTAssertEqual((error as? SystemError)?.errno, ENOENT, "\(error)")
            }
            XCTAssertEqual(CgroupTestFiles.read(path + "/cgroup.procs"), "", "no process left in the cgroup")
        }
    }

    /// Started without waiting for its execve (as vmd starts a VM's processes side by side):
    /// the same failure, told by `confirmExec`, and no child left behind.
    func testAChildStartedWithoutWaitingTellsItsExecFailureWhenConfirmed() throws {
        try withTestCgroup("exec-later") { path, _, directory in
            let (_, childEnd) = try FileDescriptor.socketPair()
            let log = FileDescriptor(adopting: fileno(tmpfile()))
            let child = try ChildProcess(executable: "/nonexistent/program", arguments: [], channel: childEnd, log: log,
                                         cgroup: directory, waitForExec: false)
            XCTAssertTrue(child.startedInCgroup)
            XCTAssertThrowsError(try child.confirmExec()) { error in
                XCTAssertEqual((error as? SystemError)?.errno, ENOENT, "\(error)")
            }
            XCTAssertTrue(child.hasBeenReaped, "confirmExec reaped the child that never ran")
            XCTAssertEqual(CgroupTestFiles.read(path + "/cgroup.procs"), "", "no process left in the cgroup")
        }
    }

    func testAChildStartedWithoutWaitingRunsOnceConfirmed() throws {
        try withTestCgroup("exec-ok") { _, _, directory in
            let (_, childEnd) = try FileDescriptor.socketPair()
            let log = FileDescriptor(adopting: fileno(tmpfile()))
            let child = try ChildProcess(executable: "/bin/sleep", arguments: ["30"], channel: childEnd, log: log,
                                         cgroup: directory, waitForExec: false)
            defer { child.terminate() }
            try child.confirmExec()
            try child.confirmExec()  // once is enough; again does nothing
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child.pid)/exe")
            XCTAssertTrue(exe.hasSuffix("/sleep"), "the child runs its program: \(exe)")
            XCTAssertNil(try child.poll(), "and is still running")
        }
    }

    /// A cgroup of the test's own at the top of the cgroup v2 hierarchy: its path, name and directory.
    private func withTestCgroup(_ suffix: String, _ body: (String, String, FileDescriptor) throws -> Void) throws {
        guard getuid() == 0, let mount = Self.cgroup2Mount() else {
            print("SKIP: needs root and a cgroup v2 hierarchy")
            throw XCTSkip("needs root and a cgroup v2 hierarchy")
        }
        let name = "vmd-childprocess-\(suffix)-\(getpid())"
        let path = mount + "/" + name
        XCTAssertEqual(mkdir(path, 0o755), 0, String(cString: strerror(errno)))
        defer { rmdir(path) }
        try body(path, name, try FileDescriptor.open(path, flags: O_RDONLY | O_DIRECTORY))
    }

    static func cgroup2Mount() -> String? {
        guard let mounts = CgroupTestFiles.read("/proc/self/mounts") else { return nil }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }
}

enum CgroupTestFiles {
    static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}

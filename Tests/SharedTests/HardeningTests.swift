import CLinux
import Glibc
import XCTest
@testable import GuestRAM
@testable import LinuxSystem

/// Each hardening step a user's kernel may lack (mseal before 6.10, Landlock before 5.13
/// or disabled, kill-process seccomp before 4.14, namespaces refused in containers)
/// degrades with a note instead of stopping the VM; a real failure still throws. The
/// kernel's answers are faked here, so nothing of this test process is sandboxed.
final class HardeningTests: XCTestCase {
    override func setUp() {
        Hardening.reset()
    }

    override func tearDown() {
        KernelCalls.current = .system
        Hardening.reset()
    }

    func testWithoutMsealGuestRAMIsMappedUnsealedAndThatIsNoted() throws {
        for missing in [ENOSYS, EINVAL] {
            Hardening.reset()
            KernelCalls.current.mseal = { _, _ in -missing }
            let sealed = try MemoryMapping(anonymousSize: 4096).seal()
            sealed.base.storeBytes(of: 7, as: UInt8.self)
            XCTAssertEqual(Hardening.shortfalls.map(\.step), ["mseal"], "errno \(missing)")
            XCTAssertEqual(Hardening.shortfalls.first?.errno, missing)
            XCTAssertFalse(Hardening.applied.contains("RAM sealed"))
            _ = try MemoryMapping(anonymousSize: 4096).seal()
            XCTAssertEqual(Hardening.shortfalls.count, 1, "noted once, not per slot")
        }
        KernelCalls.current.mseal = { _, _ in -EBADF }
        XCTAssertThrowsError(try MemoryMapping(anonymousSize: 4096).seal(), "a real failure is not a missing feature") {
            XCTAssertEqual($0 as? SystemError, SystemError("mseal", errno: EBADF))
        }
        KernelCalls.current.mseal = { _, _ in 0 }
        _ = try MemoryMapping(anonymousSize: 4096).seal()
        XCTAssertTrue(Hardening.applied.contains("RAM sealed"))
    }

    func testWithoutLandlockTheStepIsSkippedAndNoted() throws {
        for missing in [ENOSYS, EOPNOTSUPP] {
            Hardening.reset()
            var restricted = false
            KernelCalls.current.landlockABI = { -missing }
            KernelCalls.current.landlockRestrict = { _, _, _ in restricted = true; return 0 }
            try Landlock.restrictSelf()
            XCTAssertFalse(restricted)
            XCTAssertEqual(Hardening.shortfalls.map(\.step), ["Landlock"])
            XCTAssertEqual(Hardening.shortfalls.first?.errno, missing)
        }
        // An old ABI gets the rights that ABI knows, and no network or scope rules.
        Hardening.reset()
        var asked: (UInt64, UInt64, UInt64)?
        KernelCalls.current.landlockABI = { 1 }
        KernelCalls.current.landlockRestrict = { fs, net, scoped in asked = (fs, net, scoped); return 0 }
        try Landlock.restrictSelf()
        XCTAssertEqual(asked?.0, (1 << 13) - 1)
        XCTAssertEqual(asked?.1, 0)
        XCTAssertEqual(asked?.2, 0)
        XCTAssertEqual(Hardening.applied, ["Landlock ABI 1"])
        KernelCalls.current.landlockRestrict = { _, _, _ in -EFAULT }
        XCTAssertThrowsError(try Landlock.restrictSelf())
    }

    private let filter = SeccompFilter(rules: [.allow("read", "test"), .allow("write", "test")])

    func testWithoutKillProcessTheFilterKillsTheThreadInstead() throws {
        var actions: [Int] = []
        KernelCalls.current.seccompLoad = { _ in
            actions.append(actions.count)
            return actions.count == 1 ? -EINVAL : 0
        }
        try filter.install()
        XCTAssertEqual(actions.count, 2, "tried kill-process, then kill-thread")
        XCTAssertEqual(Hardening.shortfalls.map(\.step), ["seccomp kill-process"])
        XCTAssertEqual(Hardening.applied, ["seccomp kill-thread with 2 rules"])
    }

    func testWithoutSeccompTheProcessRunsUnfilteredAndThatIsNoted() throws {
        KernelCalls.current.seccompLoad = { _ in -ENOSYS }
        try filter.install()
        XCTAssertEqual(Hardening.shortfalls.map(\.step), ["seccomp"])
        XCTAssertEqual(Hardening.applied, [])
        KernelCalls.current.seccompLoad = { _ in -EFAULT }
        XCTAssertThrowsError(try filter.install(), "a real failure throws")
    }

    func testNamespacesTheKernelRefusesAreLeftOutOneByOne() throws {
        var calls: [Int32] = []
        KernelCalls.current.unshare = { flags in
            calls.append(flags)
            if flags.nonzeroBitCount > 1 { return -EPERM }   // all at once: refused
            return flags == VMD_CLONE_NEWNET ? -EINVAL : 0
        }
        var rootEntered = false
        KernelCalls.current.enterEmptyRoot = { rootEntered = true; return 0 }
        try Sandbox.leaveHost(SandboxProfile.ownNamespaces | VMD_CLONE_NEWNET)
        XCTAssertEqual(calls.count, 5, "once together, then each")
        XCTAssertEqual(Hardening.shortfalls.map(\.step), ["network namespace"])
        XCTAssertEqual(Hardening.applied, ["namespaces mount ipc uts", "empty read-only root"])
        XCTAssertTrue(rootEntered, "a mount namespace of its own gets the empty root")
    }

    /// Gives this process the descriptors a child of vmd gets: a namespace of each kind
    /// (here /dev/null, the fake kernel joins anything), named in its environment.
    private func giveNamespaces() -> [Int32] {
        SharedNamespace.all.map { namespace in
            let given = open("/dev/null", O_RDONLY)
            XCTAssertGreaterThan(given, 2)
            setenv(namespace.variable, String(given), 1)
            return given
        }
    }

    private func assertLetGo(_ given: [Int32], file: StaticString = #filePath, line: UInt = #line) {
        for (namespace, descriptor) in zip(SharedNamespace.all, given) {
            XCTAssertEqual(fcntl(descriptor, F_GETFD), -1, "the \(namespace.name) namespace's descriptor is closed", file: file, line: line)
            XCTAssertNil(getenv(namespace.variable), file: file, line: line)
        }
    }

    /// Given the namespaces vmd made for its children, a child joins them rather than making
    /// its own, and lets go of the descriptors either way. Where joining fails it makes its
    /// own, and a joined mount namespace whose root is not the empty one vmd makes (a
    /// container's stacked mounts) counts as not joined: the child then makes its own root.
    func testAChildJoinsTheNamespacesItWasGivenAndClosesThem() throws {
        let own = SandboxProfile.ownNamespaces | VMD_CLONE_NEWNET
        for (joinWorks, rootIsEmpty) in [(true, true), (false, true), (true, false)] {
            Hardening.reset()
            let given = giveNamespaces()
            var unshared: [Int32] = []
            var joined: [Int32] = []
            var rootEntered = false
            KernelCalls.current.unshare = { flags in unshared.append(flags); return 0 }
            KernelCalls.current.joinNamespace = { fd, flag in
                XCTAssertEqual(fd, given[SharedNamespace.all.firstIndex { $0.flag == flag }!], "each namespace from its own descriptor")
                joined.append(flag)
                return joinWorks ? 0 : -EINVAL
            }
            KernelCalls.current.rootIsEmptyReadOnlyTmpfs = { rootIsEmpty }
            KernelCalls.current.enterEmptyRoot = { rootEntered = true; return 0 }
            try Sandbox.leaveHost(own)
            XCTAssertEqual(joined, [VMD_CLONE_NEWNET, VMD_CLONE_NEWNS])
            let expected = !joinWorks ? own
                : rootIsEmpty ? own & ~(VMD_CLONE_NEWNET | VMD_CLONE_NEWNS)
                : own & ~VMD_CLONE_NEWNET
            XCTAssertEqual(unshared, [expected], "join works \(joinWorks), root empty \(rootIsEmpty)")
            XCTAssertEqual(rootEntered, !(joinWorks && rootIsEmpty), "a pivot_root only into a namespace of its own")
            XCTAssertEqual(Hardening.applied, ["namespaces mount ipc uts network", "empty read-only root"])
            assertLetGo(given)
        }
    }

    /// A child that keeps the host's network (virtio-net) joins the mount namespace only and
    /// still lets go of both descriptors.
    func testAChildThatKeepsTheHostNetworkJoinsOnlyTheMountNamespace() throws {
        let given = giveNamespaces()
        var joined: [Int32] = []
        var unshared: [Int32] = []
        KernelCalls.current.unshare = { flags in unshared.append(flags); return 0 }
        KernelCalls.current.joinNamespace = { _, flag in joined.append(flag); return 0 }
        KernelCalls.current.rootIsEmptyReadOnlyTmpfs = { true }
        KernelCalls.current.enterEmptyRoot = { XCTFail("vmd's root is joined, not made"); return 0 }
        try Sandbox.leaveHost(SandboxProfile.ownNamespaces)
        XCTAssertEqual(joined, [VMD_CLONE_NEWNS])
        XCTAssertEqual(unshared, [SandboxProfile.ownNamespaces & ~VMD_CLONE_NEWNS])
        assertLetGo(given)
        XCTAssertEqual(Hardening.applied, ["namespaces mount ipc uts", "empty read-only root"])
    }

    func testWithoutAMountNamespaceThereIsNoEmptyRootAndAFailedPivotIsNoted() throws {
        var rootEntered = false
        KernelCalls.current.unshare = { flags in flags & VMD_CLONE_NEWNS != 0 ? -EPERM : 0 }
        KernelCalls.current.enterEmptyRoot = { rootEntered = true; return 0 }
        try Sandbox.leaveHost(SandboxProfile.ownNamespaces)
        XCTAssertFalse(rootEntered, "no pivot_root in the host's own mount namespace")
        XCTAssertEqual(Hardening.shortfalls.map(\.step), ["mount namespace"])

        Hardening.reset()
        KernelCalls.current.unshare = { _ in 0 }
        KernelCalls.current.enterEmptyRoot = { -EINVAL }
        try Sandbox.leaveHost(SandboxProfile.ownNamespaces)
        XCTAssertEqual(Hardening.shortfalls.map(\.step), ["empty root"])
        KernelCalls.current.enterEmptyRoot = { -EIO }
        XCTAssertThrowsError(try Sandbox.leaveHost(SandboxProfile.ownNamespaces))
    }
}

import Glibc
import XCTest
@testable import GuestRAM
@testable import IPC
@testable import LinuxSystem
@testable import MemorySlots

/// The SHAREMEM handoff between two real processes (design §2): this test plays
/// vmd, and re-runs the test binary as the receiver (`testReceiverRole`).
final class SharedMemoryHandoffTests: XCTestCase {
    static let childRoleVariable = "VMD_TEST_HANDOFF_RECEIVER"
    static let parentPattern = Array("written by the sender".utf8)
    static let childPattern = Array("written by the receiver, across the slot boundary".utf8)
    static let slotSize: UInt64 = 2 << 20

    func testHandoffBetweenTwoProcesses() throws {
        let slots = [
            try MemorySlot(SlotDescriptor(guestBase: GuestAddress(0), size: Self.slotSize), name: "handoff-test-ram0"),
            try MemorySlot(SlotDescriptor(guestBase: GuestAddress(Self.slotSize), size: Self.slotSize), name: "handoff-test-ram1"),
        ]
        // The sender's own view of slot 0 (vmd never does this; the test needs it to check sharing).
        let view = try MemoryMapping(fd: slots[0].memfd, size: Int(Self.slotSize), writable: true)
        Self.parentPattern.withUnsafeBytes { (view.base + 0x1000).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let viewOfSlot1 = try MemoryMapping(fd: slots[1].memfd, size: Int(Self.slotSize), writable: true)

        let (channel, childEnd) = try Channel.pair()
        let log = FileDescriptor(adopting: fileno(tmpfile()))
        setenv(Self.childRoleVariable, "1", 1)
        let child = try ChildProcess(
            executable: try testBinaryPath(),
            arguments: ["SharedTests.SharedMemoryHandoffTests/testReceiverRole"],
            channel: childEnd.socket, log: log)
        unsetenv(Self.childRoleVariable)
        childEnd.socket.close()
        defer { child.terminate() }

        try channel.send(VMCommand.shareMemory(slots: slots.map(\.descriptor), memfds: slots.map(\.memfd)))
        let report = try channel.receive(HandoffMessage.self)
        guard case .report(let sawPattern, let munmapErrno, let mprotectErrno, let selfFlags) = report else {
            return XCTFail("expected a report, got \(report)")
        }
        XCTAssertTrue(sawPattern, "the receiver reads what the sender wrote")
        XCTAssertEqual(munmapErrno, EPERM, "munmap of a sealed slot fails with EPERM")
        XCTAssertEqual(mprotectErrno, EPERM, "mprotect of a sealed slot fails with EPERM")
        XCTAssertEqual(selfFlags.count, 2, "the receiver sees both slots in its own smaps")

        // Read the receiver's smaps from outside as well.
        let flags = try vmFlags(pid: child.pid, mappingNamePrefix: "/memfd:handoff-test-ram")
        XCTAssertEqual(flags.count, 2, "both slots mapped in the receiver")
        for slotFlags in flags + selfFlags {
            XCTAssertTrue(slotFlags.isSuperset(of: ["dc", "dd", "sl", "sh", "rd", "wr"]), "VmFlags \(slotFlags.sorted())")
            XCTAssertFalse(slotFlags.contains("ex"), "guest RAM is never executable")
        }

        // The receiver wrote across the boundary of slot 0 and slot 1; the sender sees both halves.
        let boundary = Int(Self.slotSize)
        let split = 20
        let firstHalf = Array(UnsafeRawBufferPointer(start: view.base + boundary - split, count: split))
        let secondHalf = Array(UnsafeRawBufferPointer(start: viewOfSlot1.base, count: Self.childPattern.count - split))
        XCTAssertEqual(firstHalf + secondHalf, Self.childPattern)

        try channel.send(HandoffMessage.done)
        let termination = try child.waitForExit()
        let childLog = try readAll(log)
        XCTAssertEqual(termination, .exited(0), "receiver log:\n\(childLog)")
    }

    /// The receiving process. Runs only as the child of the test above.
    func testReceiverRole() throws {
        guard getenv(Self.childRoleVariable) != nil else {
            throw XCTSkip("runs only as the receiver process started by testHandoffBetweenTwoProcesses")
        }
        let channel = ChildSetup.inheritedChannel()
        guard case .shareMemory(let slots, let memfds) = try channel.receive(VMCommand.self) else { return XCTFail("expected shareMemory") }
        let memory = try GuestMemory.mapShared(slots: slots, memfds: memfds)
        XCTAssertTrue(memfds.allSatisfy { !$0.isOpen }, "the receiver closes the memfds after mapping")
        let seen = try memory.readBytes(at: GuestAddress(0x1000), count: Self.parentPattern.count)
        try memory.writeBytes(Self.childPattern, at: GuestAddress(Self.slotSize - 20))

        let base = UnsafeMutableRawPointer(bitPattern: UInt(memory.kvmUserspaceAddresses[0].userspaceAddress))!
        let munmapResult = munmap(base, 4096)
        let munmapErrno = munmapResult == 0 ? 0 : errno
        let mprotectResult = mprotect(base, 4096, PROT_READ)
        let mprotectErrno = mprotectResult == 0 ? 0 : errno
        let flags = try vmFlags(pid: getpid(), mappingNamePrefix: "/memfd:handoff-test-ram")
        try channel.send(HandoffMessage.report(sawPattern: seen == Self.parentPattern, munmapErrno: munmapErrno,
                                               mprotectErrno: mprotectErrno, vmFlags: flags))
        guard case .done = try channel.receive(HandoffMessage.self) else { return XCTFail("expected done") }
    }

    private func testBinaryPath() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    private func readAll(_ fd: FileDescriptor) throws -> String {
        String(decoding: try fd.pread(count: 1 << 16, offset: 0), as: UTF8.self)
    }
}

/// The VmFlags of every mapping in /proc/PID/smaps whose path starts with `prefix`.
func vmFlags(pid: pid_t, mappingNamePrefix prefix: String) throws -> [Set<String>] {
    let smaps = try readProcFile("/proc/\(pid)/smaps")
    var result: [Set<String>] = []
    var inMatchingMapping = false
    for line in smaps.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.contains("-"), first.first?.isHexDigit == true {
            inMatchingMapping = fields.count >= 6 && fields[5].hasPrefix(prefix)
        } else if inMatchingMapping, line.hasPrefix("VmFlags:") {
            result.append(Set(fields.dropFirst().map(String.init)))
        }
    }
    return result
}

/// Reads a /proc file to its end (its size is reported as 0, so whole-file readers see nothing).
func readProcFile(_ path: String) throws -> String {
    String(decoding: try FileDescriptor.open(path, flags: O_RDONLY).readToEnd(), as: UTF8.self)
}

/// Test-only messages between the handoff test and its receiver.
enum HandoffMessage: ChannelMessage {
    case report(sawPattern: Bool, munmapErrno: Int32, mprotectErrno: Int32, vmFlags: [Set<String>])
    case done

    var tag: UInt16 {
        switch self {
        case .report: 1
        case .done: 2
        }
    }

    func encode(into writer: inout WireWriter) {
        guard case .report(let saw, let munmapErrno, let mprotectErrno, let flags) = self else { return }
        writer.write(saw)
        writer.write(munmapErrno)
        writer.write(mprotectErrno)
        writer.write(UInt32(flags.count))
        for set in flags { writer.write(set.sorted().joined(separator: " ")) }
    }

    static func decode(tag: UInt16, from reader: inout WireReader) throws -> HandoffMessage {
        switch tag {
        case 1:
            let saw = try reader.read(Bool.self)
            let munmapErrno = try reader.read(Int32.self)
            let mprotectErrno = try reader.read(Int32.self)
            let count = try reader.readCount(limit: 16)
            let flags = try (0..<count).map { _ in Set(try reader.read(String.self).split(separator: " ").map(String.init)) }
            return .report(sawPattern: saw, munmapErrno: munmapErrno, mprotectErrno: mprotectErrno, vmFlags: flags)
        case 2:
            return .done
        default:
            throw IPCError.unknownTag(tag)
        }
    }
}

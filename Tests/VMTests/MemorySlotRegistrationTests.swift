import Glibc
import GuestRAM
import LinuxSystem
import MemorySlots
import XCTest
@testable import VMCore

/// Guest RAM registered with KVM on a thread of its own (`MemorySlotRegistration`): once
/// `wait()` returns the slots are KVM's, and a registration KVM refused is thrown by `wait()`.
final class MemorySlotRegistrationTests: XCTestCase {
    private func kvm() throws -> KVMSystem {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else {
            print("SKIP: /dev/kvm is not available on this host")
            throw XCTSkip("needs /dev/kvm")
        }
        return try KVMSystem(fd: FileDescriptor.open("/dev/kvm", flags: O_RDWR))
    }

    func testTheSlotsAreKVMsOnceWaitReturns() throws {
        let system = try kvm()
        let vm = try KVMVirtualMachine(system: system)
        let memory = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
        let registration = try MemorySlotRegistration(vm: vm, memory: memory)
        try registration.wait()
        try registration.wait()  // a second wait returns at once, and the same
        // Slot 0 exists now: KVM refuses to move it to another host address (EINVAL), where it
        // would create a slot that did not exist.
        let other = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
        XCTAssertThrowsError(try vm.register(other)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EINVAL, "\(error)")
        }
        withExtendedLifetime((memory, other)) {}
    }

    func testARegistrationKVMRefusesIsThrownByWait() throws {
        let system = try kvm()
        let vm = try KVMVirtualMachine(system: system)
        // Both mappings stay alive: one freed first could be mapped again at the same address.
        let registered = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
        try vm.register(registered)
        let moved = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
        let registration = try MemorySlotRegistration(vm: vm, memory: moved)
        XCTAssertThrowsError(try registration.wait()) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EINVAL, "\(error)")
        }
        XCTAssertThrowsError(try registration.wait(), "the failure stays")
        withExtendedLifetime((registered, moved)) {}
    }
}

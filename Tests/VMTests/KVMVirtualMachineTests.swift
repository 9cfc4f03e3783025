import Glibc
import GuestRAM
import LinuxSystem
import MemorySlots
import XCTest
@testable import VMCore

/// The KVM VM as vm makes it (`KVMVirtualMachine`), on this host's /dev/kvm.
final class KVMVirtualMachineTests: XCTestCase {
    private func system() throws -> KVMSystem {
        try KVMSystem(fd: openKVMDeviceOrSkip())
    }

    /// RAM is registered when the VM is made (before its irqchip): the slots exist, so KVM
    /// refuses to move slot 0 to another host address.
    func testRAMGivenAtCreationIsRegistered() throws {
        let memory = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
        let vm = try KVMVirtualMachine(system: try system(), memory: memory)
        let other = try GuestMemory.anonymous(GuestPhysicalLayout.ramSlots(ramBytes: 16 << 20))
        XCTAssertThrowsError(try vm.register(other)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EINVAL, "\(error)")
        }
        withExtendedLifetime((memory, other)) {}
    }

    /// What `VirtualMachine.prepareToEnd` and `resume` do to the PIT: both ways are accepted.
    func testPITReinjectionTurnsOffAndOnAgain() throws {
        let vm = try KVMVirtualMachine(system: try system())
        XCTAssertNoThrow(try vm.setPITReinjection(false))
        XCTAssertNoThrow(try vm.setPITReinjection(true))
    }
}

import EntropyDeviceShape
import GuestRAM
import IPC
import LinuxSystem
import MemorySlots
import Logging
import VirtioCore
import XCTest
@testable import EntropyDevice

/// virtio-rng fills the driver's device-writable buffers, and only those, with bytes
/// that are not the same twice; a request gets at most 64 KiB.
final class EntropyDeviceTests: XCTestCase {
    private let sentinel: UInt8 = 0xA5
    private func memory() throws -> GuestMemory {
        let memory = try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: 1 << 20)])
        try memory.fill(sentinel, at: GuestAddress(0), count: 1 << 20)
        return memory
    }
    private func device() -> EntropyVirtioDevice { EntropyVirtioDevice(guestLog: RateLimitedLog(logger: Logger(label: "test"))) }

    func testTheDescriptionAgreesWithTheDeclaredShape() {
        XCTAssertTrue(DeviceShape.entropy.matches(device().description))
        XCTAssertEqual(device().description.type.pciDeviceID, 0x1044, "virtio 1.2 §4.1.2: 0x1040 + 4")
        XCTAssertEqual(device().description.features, VirtioFeature.version1 | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors,
                       "VERSION_1 (a modern device must offer it) and the ring features; nothing rng-specific")
        XCTAssertEqual(device().description.configSize, 0)
    }

    func testFillsEveryWritableBufferAndNothingElse() throws {
        let memory = try memory()
        let readable = DescriptorBuffer(address: GuestAddress(0x1000), length: 64)
        let first = DescriptorBuffer(address: GuestAddress(0x2000), length: 100)
        let second = DescriptorBuffer(address: GuestAddress(0x3000), length: 28)
        let length = device().fill(DescriptorChain(head: 0, readable: [readable], writable: [first, second]), memory: memory)
        XCTAssertEqual(length, 128)
        let bytes = try memory.readBytes(at: first.address, count: 100) + memory.readBytes(at: second.address, count: 28)
        XCTAssertLessThan(bytes.filter { $0 == sentinel }.count, 8, "random bytes, not the sentinel left in place")
        XCTAssertEqual(try memory.readBytes(at: readable.address, count: 64), [UInt8](repeating: sentinel, count: 64), "the readable buffer is not written")
        XCTAssertEqual(try memory.readBytes(at: GuestAddress(0x2000 + 100), count: 16), [UInt8](repeating: sentinel, count: 16), "nothing past the buffer")
    }

    func testTwoRequestsGetDifferentBytes() throws {
        let memory = try memory()
        let device = device()
        let a = DescriptorBuffer(address: GuestAddress(0x4000), length: 32), b = DescriptorBuffer(address: GuestAddress(0x5000), length: 32)
        _ = device.fill(DescriptorChain(head: 0, readable: [], writable: [a]), memory: memory)
        _ = device.fill(DescriptorChain(head: 1, readable: [], writable: [b]), memory: memory)
        XCTAssertNotEqual(try memory.readBytes(at: a.address, count: 32), try memory.readBytes(at: b.address, count: 32))
        XCTAssertEqual(device.bytesServed, 64)
    }

    func testARequestGetsAtMost64KiB() throws {
        let memory = try memory()
        let huge = DescriptorBuffer(address: GuestAddress(0x10000), length: 512 * 1024)
        XCTAssertEqual(device().fill(DescriptorChain(head: 0, readable: [], writable: [huge]), memory: memory), 65536)
        XCTAssertEqual(try memory.read(UInt8.self, at: GuestAddress(0x10000 + 65536)), sentinel)
    }

    func testNoWritableBufferOrOneOutsideMemoryGetsZeroBytes() throws {
        let memory = try memory()
        let device = device()
        XCTAssertEqual(device.fill(DescriptorChain(head: 0, readable: [DescriptorBuffer(address: GuestAddress(0), length: 8)], writable: []),
                                   memory: memory), 0)
        let outside = DescriptorBuffer(address: GuestAddress(1 << 30), length: 64)
        XCTAssertEqual(device.fill(DescriptorChain(head: 1, readable: [], writable: [outside]), memory: memory), 0)
        XCTAssertEqual(device.bytesServed, 0)
    }
}

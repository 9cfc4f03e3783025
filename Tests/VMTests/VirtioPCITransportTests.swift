import Glibc
import IPC
import LinuxSystem
import VirtioCore
import XCTest
@testable import VMCore

/// The virtio-pci transport (virtio 1.2 §4.1) driven as a guest driver would, over a
/// fake device process and a fake KVM: no /dev/kvm, no root. Hostile register values
/// included: a guest may write anything to any register at any time.
final class VirtioPCITransportTests: XCTestCase {
    typealias Common = VirtioPCILayout.Common

    // MARK: Features (§2.2, §3.1.1)

    func testDeviceFeaturesAreReadInTwoHalves() throws {
        let t = try TransportUnderTest()
        t.common(Common.deviceFeatureSelect, 0, size: 4)
        let low = t.common(Common.deviceFeature, size: 4)
        t.common(Common.deviceFeatureSelect, 1, size: 4)
        let high = t.common(Common.deviceFeature, size: 4)
        XCTAssertEqual(low | high << 32, TransportUnderTest.offered)
    }

    func testADeviceFeatureSelectBeyondTheFeaturesReadsZero() throws {
        let t = try TransportUnderTest()
        t.common(Common.deviceFeatureSelect, 7, size: 4)
        XCTAssertEqual(t.common(Common.deviceFeature, size: 4), 0)
    }

    func testDriverFeaturesRoundTrip() throws {
        let t = try TransportUnderTest()
        t.writeDriverFeatures(VirtioFeature.version1 | 1 << 5)
        t.common(Common.driverFeatureSelect, 0, size: 4)
        XCTAssertEqual(t.common(Common.driverFeature, size: 4), 1 << 5)
        t.common(Common.driverFeatureSelect, 1, size: 4)
        XCTAssertEqual(t.common(Common.driverFeature, size: 4), 1)
    }

    func testADriverFeatureSelectBeyondTheFeaturesIgnoresWrites() throws {
        let t = try TransportUnderTest()
        t.common(Common.driverFeatureSelect, 9, size: 4)
        t.common(Common.driverFeature, 0xFFFF_FFFF, size: 4)
        XCTAssertEqual(t.common(Common.driverFeature, size: 4), 0)
        t.common(Common.driverFeatureSelect, 0, size: 4)
        XCTAssertEqual(t.common(Common.driverFeature, size: 4), 0, "nothing leaked into another half")
    }

    func testFeaturesOKIsAcceptedForASubsetWithVersion1() throws {
        let t = try TransportUnderTest()
        t.negotiate(VirtioFeature.version1 | VirtioFeature.eventIndex)
        XCTAssertNotEqual(t.status & VirtioStatus.featuresOK, 0)
    }

    func testFeaturesOKIsRefusedWithoutVersion1() throws {
        let t = try TransportUnderTest()
        t.negotiate(VirtioFeature.eventIndex)
        XCTAssertEqual(t.status & VirtioStatus.featuresOK, 0, "a legacy driver is refused (§6.1)")
    }

    func testFeaturesOKIsRefusedForAFeatureNotOffered() throws {
        let t = try TransportUnderTest()
        t.negotiate(VirtioFeature.version1 | 1 << 40)
        XCTAssertEqual(t.status & VirtioStatus.featuresOK, 0)
    }

    func testDriverFeaturesAreFrozenAfterFeaturesOK() throws {
        let t = try TransportUnderTest()
        t.negotiate(VirtioFeature.version1)
        t.common(Common.driverFeatureSelect, 0, size: 4)
        t.common(Common.driverFeature, 1 << 5, size: 4)
        XCTAssertEqual(t.common(Common.driverFeature, size: 4), 0)
    }

    // MARK: Status and activation

    func testDriverOKWithoutFeaturesOKSetsNeedsResetAndActivatesNothing() throws {
        let t = try TransportUnderTest()
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.driverOK)
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
        XCTAssertTrue(t.device.activations.isEmpty)
    }

    func testDriverOKActivatesTheEnabledQueuesWithTheirAddresses() throws {
        let t = try TransportUnderTest(queues: 2)
        t.negotiate(VirtioFeature.version1 | VirtioFeature.eventIndex)
        t.setUpQueue(1, size: 64, base: 0x1_2345_0000)
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        let activation = try XCTUnwrap(t.device.activations.first)
        XCTAssertEqual(activation.features, VirtioFeature.version1 | VirtioFeature.eventIndex)
        XCTAssertEqual(activation.queues, [QueueActivation(index: 1, size: 64, descriptorTable: 0x1_2345_0000,
                                                           availableRing: 0x1_2345_1000, usedRing: 0x1_2345_2000)],
                       "only the enabled queue")
        XCTAssertEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
    }

    func testADeviceRefusingItsQueuesSetsNeedsResetAndRaisesAConfigInterrupt() throws {
        let t = try TransportUnderTest()
        t.device.refuseActivation = true
        t.setMSIXControl(enable: true)
        t.programVector(2, data: 0x42, masked: false)
        t.common(Common.configMSIXVector, 2, size: 2)
        t.negotiate()
        t.setUpQueue(0)
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
        XCTAssertEqual(t.platform.signals, [MSIMessage(address: 0xFEE0_0000, data: 0x42)], "config-change interrupt (§2.1.2)")
    }

    func testADeviceThatDoesNotAnswerActivationSetsNeedsReset() throws {
        let t = try TransportUnderTest()
        t.negotiate()
        t.setUpQueue(0)
        t.device.silent = true
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
    }

    func testWritingZeroResetsTheDeviceAndTheRegisters() throws {
        let t = try TransportUnderTest()
        t.negotiate(VirtioFeature.version1)
        t.setUpQueue(0, size: 32)
        t.common(Common.queueSelect, 1, size: 2)
        t.setStatus(0)
        XCTAssertEqual(t.device.requests.last, .reset)
        XCTAssertEqual(t.status, 0)
        XCTAssertEqual(t.common(Common.queueSelect, size: 2), 0)
        XCTAssertEqual(t.common(Common.queueSize, size: 2), 256, "back to the maximum")
        XCTAssertEqual(t.common(Common.queueEnable, size: 2), 0)
        t.common(Common.driverFeatureSelect, 1, size: 4)
        XCTAssertEqual(t.common(Common.driverFeature, size: 4), 0)
    }

    func testStatusBitsAreKeptButNeedsResetIsTheDevicesToSet() throws {
        let t = try TransportUnderTest()
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver)
        XCTAssertEqual(t.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        t.transport.markNeedsReset()
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.failed)
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0, "a driver write does not clear DEVICE_NEEDS_RESET")
    }

    // MARK: Queues (§4.1.4.3)

    func testNumQueuesAndTheDefaultSizeAreTheDevices() throws {
        let t = try TransportUnderTest(queues: 3, maximumQueueSize: 512)
        XCTAssertEqual(t.common(Common.numQueues, size: 2), 3)
        t.common(Common.queueSelect, 2, size: 2)
        XCTAssertEqual(t.common(Common.queueSize, size: 2), 512)
    }

    func testAQueueSelectOutOfRangeReadsSizeZeroAndIgnoresWrites() throws {
        let t = try TransportUnderTest(queues: 2)
        t.common(Common.queueSelect, 0xFFFF, size: 2)
        XCTAssertEqual(t.common(Common.queueSize, size: 2), 0, "size 0: no such queue")
        t.common(Common.queueSize, 64, size: 2)
        t.common(Common.queueEnable, 1, size: 2)
        t.common(Common.queueDescriptorLow, 0xDEAD_0000, size: 4)
        t.common(Common.queueMSIXVector, 0, size: 2)
        XCTAssertEqual(t.common(Common.queueEnable, size: 2), 0)
        XCTAssertEqual(t.common(Common.queueDescriptorLow, size: 4), 0)
        XCTAssertEqual(t.common(Common.queueMSIXVector, size: 2), UInt64(VirtioPCILayout.noVector))
        for queue: UInt64 in 0..<2 {
            t.common(Common.queueSelect, queue, size: 2)
            XCTAssertEqual(t.common(Common.queueEnable, size: 2), 0, "queue \(queue) untouched")
        }
    }

    func testQueueAddressesAreWrittenInHalves() throws {
        let t = try TransportUnderTest()
        t.setUpQueue(0, base: 0x0000_0012_3456_7000)
        XCTAssertEqual(t.common(Common.queueDescriptorLow, size: 4), 0x3456_7000)
        XCTAssertEqual(t.common(Common.queueDescriptorHigh, size: 4), 0x12)
        XCTAssertEqual(t.common(Common.queueDriverLow, size: 4), 0x3456_8000)
        XCTAssertEqual(t.common(Common.queueDeviceLow, size: 4), 0x3456_9000)
    }

    func testQueueSetupIsFrozenAfterDriverOK() throws {
        let t = try TransportUnderTest()
        t.negotiate()
        t.setUpQueue(0, size: 64, base: 0x10_0000)
        t.setStatus(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        t.common(Common.queueSelect, 0, size: 2)
        t.common(Common.queueSize, 8, size: 2)
        t.common(Common.queueDescriptorLow, 0x9999_0000, size: 4)
        t.common(Common.queueEnable, 0, size: 2)
        XCTAssertEqual(t.common(Common.queueSize, size: 2), 64)
        XCTAssertEqual(t.common(Common.queueDescriptorLow, size: 4), 0x10_0000)
        XCTAssertEqual(t.common(Common.queueEnable, size: 2), 1)
        XCTAssertEqual(t.device.activations.count, 1, "no second activation")
    }

    func testQueueNotifyOffIsTheQueueIndex() throws {
        let t = try TransportUnderTest(queues: 3)
        for queue: UInt64 in 0..<3 {
            t.common(Common.queueSelect, queue, size: 2)
            XCTAssertEqual(t.common(Common.queueNotifyOff, size: 2), queue)
        }
    }

    func testANotifyWriteThatReachesTheTransportKicksTheQueue() throws {
        let t = try TransportUnderTest(queues: 2)
        t.write(VirtioPCILayout.notifyOffset + UInt64(VirtioPCILayout.notifyMultiplier), 1, size: 2)
        XCTAssertEqual(t.kicks[1].drainEvent(), 1)
        XCTAssertEqual(t.kicks[0].drainEvent(), 0)
        t.write(VirtioPCILayout.notifyOffset + 0x800, 1, size: 2)  // a queue that does not exist
        XCTAssertEqual(t.kicks[0].drainEvent() + t.kicks[1].drainEvent(), 0)
    }

    // MARK: MSI-X (§4.1.5.1)

    func testAVectorOutOfRangeReadsNoVector() throws {
        let t = try TransportUnderTest(queues: 2)  // 3 vectors
        t.common(Common.queueSelect, 0, size: 2)
        t.common(Common.queueMSIXVector, 3, size: 2)
        XCTAssertEqual(t.common(Common.queueMSIXVector, size: 2), UInt64(VirtioPCILayout.noVector))
        t.common(Common.configMSIXVector, 0x7FFF, size: 2)
        XCTAssertEqual(t.common(Common.configMSIXVector, size: 2), UInt64(VirtioPCILayout.noVector))
        t.common(Common.configMSIXVector, 2, size: 2)
        XCTAssertEqual(t.common(Common.configMSIXVector, size: 2), 2)
    }

    func testADeliverableVectorRoutesItsGSIAndBindsTheIRQFD() throws {
        let t = try TransportUnderTest()
        t.setMSIXControl(enable: true)
        t.programVector(0, address: 0xFEE0_1000, data: 0x31, masked: false)
        t.common(Common.queueSelect, 0, size: 2)
        t.common(Common.queueMSIXVector, 0, size: 2)
        XCTAssertEqual(Array(t.platform.routes.values), [MSIMessage(address: 0xFEE0_1000, data: 0x31)])
        XCTAssertEqual(t.platform.boundIRQFDs, [t.calls[0].rawValue])
        XCTAssertTrue(t.platform.maskedWatchers.isEmpty)
    }

    func testReprogrammingTheVectorReroutesIt() throws {
        let t = try TransportUnderTest()
        t.setMSIXControl(enable: true)
        t.programVector(0, data: 0x31, masked: false)
        t.common(Common.queueMSIXVector, 0, size: 2)
        t.programVector(0, address: 0xFEE0_2000, data: 0x55, masked: false)
        XCTAssertEqual(Array(t.platform.routes.values), [MSIMessage(address: 0xFEE0_2000, data: 0x55)])
        XCTAssertEqual(t.platform.boundIRQFDs, [t.calls[0].rawValue])
    }

    func testAMaskedVectorIsPolledItsSignalSetsThePBAAndUnmaskDeliversIt() throws {
        let t = try TransportUnderTest()
        t.setMSIXControl(enable: true)
        t.programVector(0, data: 0x31, masked: true)
        t.common(Common.queueMSIXVector, 0, size: 2)
        XCTAssertTrue(t.platform.boundIRQFDs.isEmpty, "no irqfd while masked")
        let watcher = try XCTUnwrap(t.platform.maskedWatchers[t.calls[0].rawValue])
        try t.calls[0].signalEvent()
        watcher()
        XCTAssertEqual(t.pendingBits, 1, "PBA bit 0 set")
        XCTAssertTrue(t.platform.signals.isEmpty)
        t.mask(0, false)
        XCTAssertEqual(t.platform.signals, [MSIMessage(address: 0xFEE0_0000, data: 0x31)], "delivered on unmask")
        XCTAssertEqual(t.pendingBits, 0)
        XCTAssertEqual(t.platform.boundIRQFDs, [t.calls[0].rawValue])
        XCTAssertNil(t.platform.maskedWatchers[t.calls[0].rawValue])
    }

    func testTheFunctionMaskMasksEveryVector() throws {
        let t = try TransportUnderTest()
        t.setMSIXControl(enable: true, functionMask: true)
        t.programVector(0, data: 0x31, masked: false)
        t.common(Common.queueMSIXVector, 0, size: 2)
        XCTAssertTrue(t.platform.boundIRQFDs.isEmpty)
        XCTAssertNotNil(t.platform.maskedWatchers[t.calls[0].rawValue])
        t.setMSIXControl(enable: true, functionMask: false)
        XCTAssertEqual(t.platform.boundIRQFDs, [t.calls[0].rawValue])
    }

    func testWithMSIXDisabledNothingIsDelivered() throws {
        let t = try TransportUnderTest()
        t.programVector(0, data: 0x31, masked: false)
        t.common(Common.queueMSIXVector, 0, size: 2)
        t.common(Common.configMSIXVector, 1, size: 2)
        t.transport.configChanged()
        XCTAssertTrue(t.platform.boundIRQFDs.isEmpty)
        XCTAssertTrue(t.platform.signals.isEmpty)
        XCTAssertEqual(t.pendingBits, 0b10, "the config vector is pending until MSI-X is on")
        t.setMSIXControl(enable: true)
        t.programVector(1, data: 0x77, masked: false)
        XCTAssertEqual(t.platform.signals, [MSIMessage(address: 0xFEE0_0000, data: 0x77)])
    }

    func testTheMSIXTableReadsBackWhatWasWritten() throws {
        let t = try TransportUnderTest()
        t.programVector(1, address: 0x1_FEE0_3000, data: 0xABCD, masked: false)
        let base = VirtioPCILayout.msixTableOffset + 16
        XCTAssertEqual(t.read(base, size: 8), 0x1_FEE0_3000)
        XCTAssertEqual(t.read(base + 4, size: 4), 1)
        XCTAssertEqual(t.read(base + 8, size: 4), 0xABCD)
        XCTAssertEqual(t.read(base + 12, size: 4), 0)
        XCTAssertEqual(t.read(VirtioPCILayout.msixTableOffset + 12, size: 4), 1, "entries start masked")
    }

    func testWritesBeyondTheMSIXTableOrOfOddSizesAreIgnored() throws {
        let t = try TransportUnderTest(queues: 1)  // 2 vectors
        let beyond = VirtioPCILayout.msixTableOffset + 2 * 16
        t.write(beyond + 8, 0x99, size: 4)
        XCTAssertEqual(t.read(beyond + 8, size: 4), 0)
        t.write(VirtioPCILayout.msixTableOffset + 8, 0x1234, size: 2)
        XCTAssertEqual(t.read(VirtioPCILayout.msixTableOffset + 8, size: 4), 0, "MSI-X entries take 4- and 8-byte accesses")
        t.write(VirtioPCILayout.msixPBAOffset, 0xFF, size: 8)
        XCTAssertEqual(t.pendingBits, 0, "the PBA is read-only")
    }

    func testAConfigChangeIsDeliveredOrLeftPendingAndBumpsTheGeneration() throws {
        let t = try TransportUnderTest()
        t.setMSIXControl(enable: true)
        t.programVector(2, data: 0x60, masked: true)
        t.common(Common.configMSIXVector, 2, size: 2)
        let generation = t.common(Common.configGeneration, size: 1)
        t.transport.configChanged()
        XCTAssertEqual(t.common(Common.configGeneration, size: 1), generation + 1)
        XCTAssertEqual(t.pendingBits, 0b100)
        XCTAssertTrue(t.platform.signals.isEmpty)
        t.mask(2, false)
        XCTAssertEqual(t.platform.signals, [MSIMessage(address: 0xFEE0_0000, data: 0x60)])
        t.transport.configChanged()
        XCTAssertEqual(t.platform.signals.count, 2, "unmasked: at once")
    }

    func testReadingTheISRClearsIt() throws {
        let t = try TransportUnderTest()
        t.transport.markNeedsReset()
        XCTAssertEqual(t.read(VirtioPCILayout.isrOffset, size: 1), 2, "configuration change")
        XCTAssertEqual(t.read(VirtioPCILayout.isrOffset, size: 1), 0)
    }

    func testAFailedSignalIsCountedAsALostInterrupt() throws {
        let t = try TransportUnderTest()
        t.platform.failSignals = true
        t.setMSIXControl(enable: true)
        t.programVector(2, data: 0x60, masked: false)
        t.common(Common.configMSIXVector, 2, size: 2)
        XCTAssertEqual(t.transport.lostInterrupts, 0)
        t.transport.configChanged()
        t.transport.configChanged()
        XCTAssertEqual(t.transport.lostInterrupts, 2)
    }

    func testAResetKeepsTheMSIXTableButDropsTheQueuesVectors() throws {
        let t = try TransportUnderTest()
        t.setMSIXControl(enable: true)
        t.programVector(0, data: 0x31, masked: false)
        t.common(Common.queueMSIXVector, 0, size: 2)
        XCTAssertFalse(t.platform.boundIRQFDs.isEmpty)
        t.setStatus(0)
        XCTAssertTrue(t.platform.boundIRQFDs.isEmpty, "the reset vector is NO_VECTOR: unbound")
        XCTAssertEqual(t.read(VirtioPCILayout.msixTableOffset + 8, size: 4), 0x31, "PCI state is not the device's")
    }

    // MARK: BAR 0 and configuration space

    func testTheBARIsMappedOnlyWithMemoryDecodingOnAndItsNotifiesBound() throws {
        let t = try TransportUnderTest(queues: 2)
        XCTAssertTrue(t.platform.mappedBARs.isEmpty)
        t.enableMemory()
        XCTAssertEqual(t.platform.mappedBARs, [TransportUnderTest.initialBAR])
        let notify = TransportUnderTest.initialBAR + VirtioPCILayout.notifyOffset
        XCTAssertEqual(t.platform.ioeventfds, [notify, notify + 4])
        t.configWrite(PCIConfigSpace.Offset.command, 0, size: 2)
        XCTAssertTrue(t.platform.mappedBARs.isEmpty)
        XCTAssertTrue(t.platform.ioeventfds.isEmpty)
    }

    func testMovingTheBARMovesTheMappingAndTheIoeventfds() throws {
        let t = try TransportUnderTest(queues: 1)
        t.enableMemory()
        t.configWrite(PCIConfigSpace.Offset.bar0, 0xD000_0000, size: 4)
        t.configWrite(PCIConfigSpace.Offset.bar0 + 4, 0x1, size: 4)
        let moved: UInt64 = 0x1_D000_0000
        XCTAssertEqual(t.platform.mappedBARs, [moved])
        XCTAssertEqual(t.platform.ioeventfds, [moved + VirtioPCILayout.notifyOffset])
    }

    func testSizingTheBARReadsItsSize() throws {
        let t = try TransportUnderTest()
        t.configWrite(PCIConfigSpace.Offset.bar0, 0xFFFF_FFFF, size: 4)
        let low = t.transport.configRead(offset: PCIConfigSpace.Offset.bar0, size: 4)
        XCTAssertEqual(low, UInt32(truncatingIfNeeded: ~(VirtioPCILayout.barSize - 1)) | 0x4, "64-bit memory BAR of 32 KiB")
    }

    func testTheFunctionIdentifiesAsModernVirtio() throws {
        let t = try TransportUnderTest()
        XCTAssertEqual(t.transport.configRead(offset: 0, size: 2), 0x1AF4)
        XCTAssertEqual(t.transport.configRead(offset: 2, size: 2), 0x1042, "0x1040 + block")
        XCTAssertEqual(t.transport.configRead(offset: PCIConfigSpace.Offset.revision, size: 1), 1)
        t.configWrite(0, 0x1234_5678, size: 4)
        XCTAssertEqual(t.transport.configRead(offset: 0, size: 4), 0x1042_1AF4, "ids are read-only")
    }

    func testDeviceConfigurationGoesToTheDeviceAndAFailureReadsAllOnes() throws {
        let t = try TransportUnderTest()
        XCTAssertEqual(t.read(VirtioPCILayout.deviceOffset + 4, size: 4), 0x0706_0504)
        t.write(VirtioPCILayout.deviceOffset + 8, 0xAABB, size: 2)
        XCTAssertEqual(t.device.writtenConfig.first?.0, 8)
        XCTAssertEqual(t.device.writtenConfig.first?.1, [0xBB, 0xAA])
        XCTAssertEqual(t.read(VirtioPCILayout.deviceOffset + 0x800, size: 4), 0xFFFF_FFFF, "the device refused: all ones")
        t.device.silent = true
        XCTAssertEqual(t.read(VirtioPCILayout.deviceOffset, size: 2), 0xFFFF, "no answer: all ones")
    }

    func testUnknownAndReadOnlyRegistersIgnoreWrites() throws {
        let t = try TransportUnderTest(queues: 2)
        t.common(Common.numQueues, 99, size: 2)
        t.common(Common.configGeneration, 99, size: 1)
        t.common(Common.queueNotifyOff, 99, size: 2)
        t.common(0x37, 0xFF, size: 1)
        XCTAssertEqual(t.common(Common.numQueues, size: 2), 2)
        XCTAssertEqual(t.common(Common.configGeneration, size: 1), 0)
        XCTAssertEqual(t.common(Common.queueNotifyOff, size: 2), 0)
        t.write(VirtioPCILayout.isrOffset, 0xFF, size: 1)
        XCTAssertEqual(t.read(VirtioPCILayout.isrOffset, size: 1), 0)
        XCTAssertEqual(t.read(0x7FF8, size: 8), 0, "a hole in the BAR reads zero")
    }

    func testQuiesceAndResumeAreRequestsToTheDevice() throws {
        let t = try TransportUnderTest()
        XCTAssertTrue(t.transport.setQuiesced(true))
        XCTAssertTrue(t.transport.setQuiesced(false))
        XCTAssertEqual(t.device.requests, [.quiesce, .resume])
        t.device.silent = true
        XCTAssertFalse(t.transport.setQuiesced(true), "a device that does not answer did not confirm")
    }

    /// The vendor capabilities (type, length) in list order, as a driver walks them.
    private func vendorCapabilities(_ t: TransportUnderTest) -> [(type: UInt64, length: UInt64)] {
        var found: [(type: UInt64, length: UInt64)] = []
        var offset = Int(t.transport.configRead(offset: 0x34, size: 1))
        while offset != 0 && found.count < 16 {
            if t.transport.configRead(offset: offset, size: 1) == 0x09 {
                found.append((type: UInt64(t.transport.configRead(offset: offset + 3, size: 1)),
                               length: UInt64(t.transport.configRead(offset: offset + 12, size: 4))))
            }
            offset = Int(t.transport.configRead(offset: offset + 1, size: 1))
        }
        return found
    }

    func testADeviceWithoutConfigurationSpaceHasNoDeviceCapability() throws {
        let block = try TransportUnderTest(queues: 1)
        XCTAssertEqual(vendorCapabilities(block).map(\.type), [1, 3, 4, 2, 5], "common, ISR, device, notify, PCI config access")
        XCTAssertEqual(vendorCapabilities(block).first { $0.type == 4 }?.length, 60)
        let entropy = try TransportUnderTest(queues: 1, type: .entropy, configSize: 0)
        XCTAssertEqual(vendorCapabilities(entropy).map(\.type), [1, 3, 2, 5], "no device capability of length 0 (Linux refuses one)")
        XCTAssertEqual(entropy.transport.configRead(offset: 2, size: 2), 0x1044, "0x1040 + entropy")
        XCTAssertEqual(entropy.transport.configRead(offset: 0x0A, size: 2), 0xFF00, "class: unassigned, as QEMU's virtio-rng-pci")
    }
}

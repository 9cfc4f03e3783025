import IPC

/// Everything the guest can see of one virtio-pci function, under the transport's lock.
struct TransportState {
    struct Queue {
        var size: UInt16
        let maximumSize: UInt16
        var vector = VirtioPCILayout.noVector
        var enabled = false
        var descriptorTable: UInt64 = 0
        var availableRing: UInt64 = 0
        var usedRing: UInt64 = 0
        var binding = InterruptBinding.none
    }

    var space = PCIConfigSpace()
    var msix: MSIXTable
    var queues: [Queue]
    var deviceFeatureSelect: UInt32 = 0
    var driverFeatureSelect: UInt32 = 0
    var driverFeatures: UInt64 = 0
    var status: UInt8 = 0
    var configGeneration: UInt8 = 0
    var configVector = VirtioPCILayout.noVector
    var queueSelect: UInt16 = 0
    var isr: UInt8 = 0
    /// Where BAR 0 is registered on the MMIO bus and its ioeventfds bound, if anywhere.
    var mappedAt: UInt64?
    private let deviceFeatures: UInt64

    init(description: DeviceDescription, bar: UInt64) {
        deviceFeatures = description.features
        let vectorCount = Int(description.queueCount) + 1  // one per queue plus configuration changes
        msix = MSIXTable(vectorCount: vectorCount)
        queues = (0..<Int(description.queueCount)).map { _ in
            Queue(size: description.maximumQueueSize, maximumSize: description.maximumQueueSize)
        }
        typealias Offset = PCIConfigSpace.Offset
        space.set16(Offset.vendorID, 0x1AF4)
        space.set16(Offset.deviceID, description.type.pciDeviceID)
        space.set16(Offset.command, 0, writableMask: PCIConfigSpace.Command.memorySpace | PCIConfigSpace.Command.busMaster
                    | PCIConfigSpace.Command.interruptDisable)
        space.set16(Offset.status, PCIConfigSpace.statusCapabilitiesList)
        space.set8(Offset.revision, 1)  // modern-only device (§4.1.2.1)
        let (classCode, subclass): (UInt8, UInt8) = switch description.type {
        case .block: (0x01, 0x80)    // mass storage, other
        case .network: (0x02, 0x00)  // network, Ethernet
        case .entropy: (0xFF, 0x00)  // unassigned class, as QEMU's virtio-rng-pci
        }
        space.set8(Offset.classCode + 1, subclass)
        space.set8(Offset.classCode + 2, classCode)
        // BAR 0: 64-bit memory, not prefetchable; the size follows from the writable mask.
        let sizeMask = ~(VirtioPCILayout.barSize - 1)
        space.set32(Offset.bar0, UInt32(truncatingIfNeeded: bar) | 0x4, writableMask: UInt32(truncatingIfNeeded: sizeMask))
        space.set32(Offset.bar0 + 4, UInt32(truncatingIfNeeded: bar >> 32), writableMask: 0xFFFF_FFFF)
        space.set16(Offset.subsystemVendorID, 0x1AF4)
        space.set16(Offset.subsystemID, 0x40 + description.type.rawValue)
        space.set8(Offset.capabilitiesPointer, UInt8(VirtioPCILayout.firstCapability))
        space.set8(Offset.interruptLine, 0, writableMask: 0xFF)
        VirtioPCILayout.writeCapabilities(into: &space, deviceConfigLength: description.configSize, vectorCount: vectorCount)
    }

    var barAddress: UInt64 {
        UInt64(space.read32(PCIConfigSpace.Offset.bar0) & 0xFFFF_FFF0) | UInt64(space.read32(PCIConfigSpace.Offset.bar0 + 4)) << 32
    }

    var memoryEnabled: Bool { space.read16(PCIConfigSpace.Offset.command) & PCIConfigSpace.Command.memorySpace != 0 }

    var msixControl: UInt16 { space.read16(VirtioPCILayout.msixCapability + 2) }

    /// The MSI message for `vector` if MSI-X is on and neither the function nor the vector is masked.
    func deliverableMessage(vector: UInt16) -> MSIMessage? {
        let control = msixControl
        guard control & VirtioPCILayout.msixEnable != 0, control & VirtioPCILayout.msixFunctionMask == 0,
              Int(vector) < msix.count, !msix.entries[Int(vector)].masked else { return nil }
        let entry = msix.entries[Int(vector)]
        return MSIMessage(address: entry.address, data: entry.data)
    }

    func readCommon(_ offset: UInt64) -> UInt64 {
        typealias Common = VirtioPCILayout.Common
        let queue = Int(queueSelect) < queues.count ? queues[Int(queueSelect)] : nil
        switch offset {
        case Common.deviceFeatureSelect: return UInt64(deviceFeatureSelect)
        case Common.deviceFeature: return deviceFeatureSelect < 2 ? (deviceFeatures >> (UInt64(deviceFeatureSelect) * 32)) & 0xFFFF_FFFF : 0
        case Common.driverFeatureSelect: return UInt64(driverFeatureSelect)
        case Common.driverFeature: return driverFeatureSelect < 2 ? (driverFeatures >> (UInt64(driverFeatureSelect) * 32)) & 0xFFFF_FFFF : 0
        case Common.configMSIXVector: return UInt64(configVector)
        case Common.numQueues: return UInt64(queues.count)
        case Common.deviceStatus: return UInt64(status)
        case Common.configGeneration: return UInt64(configGeneration)
        case Common.queueSelect: return UInt64(queueSelect)
        case Common.queueSize: return UInt64(queue?.size ?? 0)  // 0: the queue does not exist (§4.1.4.3)
        case Common.queueMSIXVector: return UInt64(queue?.vector ?? VirtioPCILayout.noVector)
        case Common.queueEnable: return queue?.enabled == true ? 1 : 0
        case Common.queueNotifyOff: return UInt64(queueSelect)
        case Common.queueDescriptorLow: return (queue?.descriptorTable ?? 0) & 0xFFFF_FFFF
        case Common.queueDescriptorHigh: return (queue?.descriptorTable ?? 0) >> 32
        case Common.queueDriverLow: return (queue?.availableRing ?? 0) & 0xFFFF_FFFF
        case Common.queueDriverHigh: return (queue?.availableRing ?? 0) >> 32
        case Common.queueDeviceLow: return (queue?.usedRing ?? 0) & 0xFFFF_FFFF
        case Common.queueDeviceHigh: return (queue?.usedRing ?? 0) >> 32
        default: return 0
        }
    }

    /// Device reset (§2.4): queues, features, status and vectors back to their initial values.
    /// PCI configuration (BAR, MSI-X table) is not part of the virtio device and stays.
    mutating func reset(description: DeviceDescription) {
        queues = queues.map { old in
            var queue = Queue(size: description.maximumQueueSize, maximumSize: description.maximumQueueSize)
            queue.binding = old.binding  // the caller re-evaluates bindings with the reset vectors
            return queue
        }
        driverFeatures = 0
        deviceFeatureSelect = 0
        driverFeatureSelect = 0
        status = 0
        configVector = VirtioPCILayout.noVector
        queueSelect = 0
        isr = 0
    }
}

/// Where everything lives in a virtio-pci function (virtio 1.2 §4.1.4): the
/// capabilities in configuration space and the regions of BAR 0, one 64-bit
/// memory BAR that holds the common, ISR, device and notify regions and the
/// MSI-X table and PBA.
enum VirtioPCILayout {
    static let barSize: UInt64 = 0x8000
    static let commonOffset: UInt64 = 0x0000
    static let commonLength: UInt64 = 0x38
    static let isrOffset: UInt64 = 0x1000
    static let isrLength: UInt64 = 4
    static let deviceOffset: UInt64 = 0x2000
    static let deviceLength: UInt64 = 0x1000
    static let notifyOffset: UInt64 = 0x3000
    static let notifyLength: UInt64 = 0x1000
    /// Each queue notifies at notify + queue_notify_off × multiplier; queue_notify_off = queue index.
    static let notifyMultiplier: UInt32 = 4
    static let msixTableOffset: UInt64 = 0x4000
    static let msixPBAOffset: UInt64 = 0x5000

    /// virtio_pci_cap.cfg_type (§4.1.4).
    enum CapabilityType: UInt8 {
        case common = 1
        case notify = 2
        case isr = 3
        case device = 4
        case pciConfigAccess = 5
    }

    static let vendorCapabilityID: UInt8 = 0x09
    static let msixCapabilityID: UInt8 = 0x11
    static let firstCapability = 0x40
    static let pciConfigAccessCapability = 0x84
    static let msixCapability = 0x98

    /// Offsets in the common configuration structure (§4.1.4.3).
    enum Common {
        static let deviceFeatureSelect: UInt64 = 0x00
        static let deviceFeature: UInt64 = 0x04
        static let driverFeatureSelect: UInt64 = 0x08
        static let driverFeature: UInt64 = 0x0C
        static let configMSIXVector: UInt64 = 0x10
        static let numQueues: UInt64 = 0x12
        static let deviceStatus: UInt64 = 0x14
        static let configGeneration: UInt64 = 0x15
        static let queueSelect: UInt64 = 0x16
        static let queueSize: UInt64 = 0x18
        static let queueMSIXVector: UInt64 = 0x1A
        static let queueEnable: UInt64 = 0x1C
        static let queueNotifyOff: UInt64 = 0x1E
        static let queueDescriptorLow: UInt64 = 0x20
        static let queueDescriptorHigh: UInt64 = 0x24
        static let queueDriverLow: UInt64 = 0x28
        static let queueDriverHigh: UInt64 = 0x2C
        static let queueDeviceLow: UInt64 = 0x30
        static let queueDeviceHigh: UInt64 = 0x34
    }

    static let noVector: UInt16 = 0xFFFF

    /// Writes the capability chain: common, ISR, device, notify, PCI config access, MSI-X.
    /// A device without configuration space (virtio-rng) has no device capability: the
    /// spec makes it optional then (§4.1.4.6), and Linux refuses one of length 0.
    static func writeCapabilities(into space: inout PCIConfigSpace, deviceConfigLength: UInt32, vectorCount: Int) {
        var offset = firstCapability
        func vendorCapability(_ type: CapabilityType, regionOffset: UInt64, length: UInt64, next: Int, extra: UInt32? = nil) {
            space.set8(offset, vendorCapabilityID)
            space.set8(offset + 1, UInt8(next))
            space.set8(offset + 2, extra == nil ? 16 : 20)
            space.set8(offset + 3, type.rawValue)
            space.set8(offset + 4, 0)  // BAR 0
            space.set32(offset + 8, UInt32(regionOffset))
            space.set32(offset + 12, UInt32(length))
            if let extra { space.set32(offset + 16, extra) }
            offset = next
        }
        vendorCapability(.common, regionOffset: commonOffset, length: commonLength, next: 0x50)
        if deviceConfigLength == 0 {
            vendorCapability(.isr, regionOffset: isrOffset, length: isrLength, next: 0x70)
        } else {
            vendorCapability(.isr, regionOffset: isrOffset, length: isrLength, next: 0x60)
            vendorCapability(.device, regionOffset: deviceOffset, length: UInt64(deviceConfigLength), next: 0x70)
        }
        vendorCapability(.notify, regionOffset: notifyOffset, length: notifyLength, next: pciConfigAccessCapability,
                         extra: notifyMultiplier)
        // VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.9): bar, offset and length are the guest's to write.
        space.set8(offset, vendorCapabilityID)
        space.set8(offset + 1, UInt8(msixCapability))
        space.set8(offset + 2, 20)
        space.set8(offset + 3, CapabilityType.pciConfigAccess.rawValue)
        space.set8(offset + 4, 0, writableMask: 0xFF)
        space.set32(offset + 8, 0, writableMask: 0xFFFF_FFFF)
        space.set32(offset + 12, 0, writableMask: 0xFFFF_FFFF)
        // MSI-X (PCI 3.0 §6.8.2): table size N−1, enable and function-mask bits writable.
        space.set8(msixCapability, msixCapabilityID)
        space.set8(msixCapability + 1, 0)
        space.set16(msixCapability + 2, UInt16(vectorCount - 1), writableMask: 0xC000)
        space.set32(msixCapability + 4, UInt32(msixTableOffset))  // BIR 0
        space.set32(msixCapability + 8, UInt32(msixPBAOffset))
    }

    static let msixEnable: UInt16 = 1 << 15
    static let msixFunctionMask: UInt16 = 1 << 14
}

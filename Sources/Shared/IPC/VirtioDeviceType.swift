/// Device types (virtio 1.2 §5) and their modern PCI device ids (0x1040 + type, §4.1.2).
public enum VirtioDeviceType: UInt16, Sendable {
    case network = 1
    case block = 2
    case entropy = 4

    public var pciDeviceID: UInt16 { 0x1040 + rawValue }
}

import MemorySlots
/// One buffer of a descriptor chain, after every check of virtio 1.2 §2.7.5:
/// inside guest RAM, length and address checked for overflow.
public struct DescriptorBuffer: Equatable, Sendable {
    public let address: GuestAddress
    public let length: UInt32

    public init(address: GuestAddress, length: UInt32) {
        self.address = address
        self.length = length
    }
}

/// A validated descriptor chain popped from an available ring: the device-
/// readable buffers, then the device-writable ones (virtio 1.2 §2.7.4.2: a
/// driver MUST place readable descriptors before writable ones).
///
/// One array holds both halves, so a chain costs one buffer, which the queue
/// reuses for the next chain once this one is gone.
public struct DescriptorChain: Equatable, Sendable {
    /// The head descriptor index, returned to the driver in the used ring.
    public let head: UInt16
    /// Every buffer of the chain, the `readableCount` device-readable ones first.
    public let buffers: [DescriptorBuffer]
    public let readableCount: Int

    public init(head: UInt16, readable: [DescriptorBuffer], writable: [DescriptorBuffer]) {
        self.init(head: head, buffers: readable + writable, readableCount: readable.count)
    }

    init(head: UInt16, buffers: [DescriptorBuffer], readableCount: Int) {
        precondition(readableCount <= buffers.count, "more readable buffers than buffers")
        self.head = head
        self.buffers = buffers
        self.readableCount = readableCount
    }

    public var readable: ArraySlice<DescriptorBuffer> { buffers[..<readableCount] }
    public var writable: ArraySlice<DescriptorBuffer> { buffers[readableCount...] }

    /// Total bytes the device may read, summed without overflow (the walker checked it).
    public var readableLength: UInt64 { readable.totalLength }
    public var writableLength: UInt64 { writable.totalLength }
}

extension Collection where Element == DescriptorBuffer {
    /// The bytes these buffers hold end to end (a chain's total fits in 64 bits, §2.7.5.2).
    @inlinable
    public var totalLength: UInt64 {
        var total: UInt64 = 0
        for buffer in self { total += UInt64(buffer.length) }
        return total
    }
}

/// Feature bits shared by all devices (virtio 1.2 §6).
public enum VirtioFeature {
    public static let indirectDescriptors: UInt64 = 1 << 28
    public static let eventIndex: UInt64 = 1 << 29
    public static let version1: UInt64 = 1 << 32
    public static let accessPlatform: UInt64 = 1 << 33
}

/// Device status bits (virtio 1.2 §2.1).
public enum VirtioStatus {
    public static let acknowledge: UInt8 = 1
    public static let driver: UInt8 = 2
    public static let driverOK: UInt8 = 4
    public static let featuresOK: UInt8 = 8
    public static let deviceNeedsReset: UInt8 = 64
    public static let failed: UInt8 = 128
}

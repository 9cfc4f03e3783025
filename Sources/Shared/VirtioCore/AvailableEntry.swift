/// One entry taken from the available ring by `SplitVirtqueue.popAvailable()`.
public enum AvailableEntry: Equatable, Sendable {
    /// A chain that passed every check of virtio 1.2 §2.7.
    case chain(DescriptorChain)
    /// A chain that breaks a rule: the device completes `head` (with
    /// `pushUsed(head:length: 0)` and an error status where it has one) and goes on.
    case malformed(head: UInt16, VirtqueueError)
}

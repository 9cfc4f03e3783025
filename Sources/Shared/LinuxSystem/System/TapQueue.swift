import CLinux
import Glibc

/// One queue of a multi-queue tap (IFF_MULTI_QUEUE): each descriptor vmd opened on the tap is
/// a queue, which the kernel steers packets to only while it is attached. vmd detaches all
/// but the first before a guest runs; virtio-net attaches as many as the driver puts in use
/// (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET). The kernel needs no privilege for this (tun.c,
/// tun_set_queue); it queues nothing to a detached queue and drops what was queued there.
public enum TapQueue {
    /// TUNSETQUEUE with IFF_ATTACH_QUEUE or IFF_DETACH_QUEUE.
    public static func setAttached(_ tap: FileDescriptor, _ attached: Bool) throws {
        var request = ifreq()
        request.ifr_ifru.ifru_flags = Int16(attached ? VMD_IFF_ATTACH_QUEUE : VMD_IFF_DETACH_QUEUE)
        let call = attached ? "TUNSETQUEUE(attach)" : "TUNSETQUEUE(detach)"
        // SAFETY: TUNSETQUEUE reads one struct ifreq, alive for the call.
        try retryingInterrupts(call) { withUnsafeMutablePointer(to: &request) { vmd_ioctl_ptr(tap.rawValue, VMD_TUNSETQUEUE, $0) } }
    }
}

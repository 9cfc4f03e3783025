import EntropyDeviceShape
import GuestRAM
import IPC
import LinuxSystem
import VirtioCore

/// virtio-rng (virtio 1.2 §5.4): the driver posts device-writable buffers on its one
/// queue and the device fills them with bytes from the host kernel's CSPRNG
/// (getrandom(2), through the standard library's system generator). No device-specific
/// features (only VERSION_1 and the ring's), no configuration space. At most `maximumBytesPerRequest` go into one request, so a
/// guest cannot make one request cost the device unbounded work; the used length
/// says how many bytes it got, as the driver expects.
final class EntropyVirtioDevice: VirtioDeviceModel {
    static let maximumBytesPerRequest = 64 * 1024
    private let guestLog: RateLimitedLog
    private var active: ActiveQueues?
    /// Bytes handed to the guest so far (reported when the process ends).
    private(set) var bytesServed: UInt64 = 0
    private(set) var requests: UInt64 = 0

    init(guestLog: RateLimitedLog) {
        self.guestLog = guestLog
    }

    static let features = VirtioFeature.version1 | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors

    var description: DeviceDescription {
        DeviceDescription(type: .entropy, features: EntropyVirtioDevice.features, queueCount: DeviceShape.entropy.queueCount,
                          maximumQueueSize: DeviceShape.entropy.maximumQueueSize, configSize: 0)
    }

    func readConfig(offset: Int, size: Int) -> [UInt8] {
        readConfigBytes([], offset: offset, size: size)
    }

    func writeConfig(offset: Int, bytes: [UInt8]) {}

    func activate(features: UInt64, queues: ActiveQueues) throws {
        active = queues
    }

    func queueNotified(_ index: Int) throws {
        guard let active else { return }
        try active.drain(index, noting: guestLog, queueName: "request queue") { chain in fill(chain, memory: active.memory) }
    }

    /// Fills the chain's device-writable buffers; returns the bytes written (0 when the
    /// chain has none, or points outside guest memory).
    func fill(_ chain: DescriptorChain, memory: GuestMemory) -> UInt32 {
        requests += 1
        let count = Int(min(chain.writableLength, UInt64(EntropyVirtioDevice.maximumBytesPerRequest)))
        guard count > 0 else {
            guestLog.note("request queue: chain at descriptor \(chain.head) has no device-writable buffer")
            return 0
        }
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: count)
        for start in stride(from: 0, to: count, by: 8) {
            let word = generator.next()
            for offset in 0..<min(8, count - start) { bytes[start + offset] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(offset))) }
        }
        do {
            // SAFETY: `bytes` outlives the copy; the stream writes only inside the chain's checked buffers.
            try bytes.withUnsafeBytes { try chain.writable.writeBytes($0, at: 0, memory: memory) }
        } catch {
            guestLog.note("request queue: chain at descriptor \(chain.head): \(error)")
            return 0
        }
        bytesServed += UInt64(count)
        return UInt32(count)
    }

    func reset() {
        active = nil
    }
}

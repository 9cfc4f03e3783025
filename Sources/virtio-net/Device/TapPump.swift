import LinuxSystem
import VirtioCore

/// Moves packets from the tap to the receive queue when the tap is readable,
/// and stops watching the tap while the driver has no receive buffers or the
/// interface's receive limit holds it back (back-pressure: packets wait in the
/// tap's own queue, not in our memory).
final class TapPump {
    private let tap: FileDescriptor
    private var watch: EventWatch?
    /// While the receive limit holds the tap back: the timer that watches it again.
    private var limitTimer: EventWatch?
    weak var device: NetVirtioDevice?
    var runner: VirtioDeviceRunner?

    init(tap: FileDescriptor) {
        self.tap = tap
    }

    /// Watches the tap (again); called at start and by the device when buffers return.
    func resume() {
        guard watch == nil, let runner else { return }
        watch = try? runner.watchReadable(tap.rawValue) { [weak self] in self?.readable() }
    }

    private func readable() {
        guard let device else { return }
        do {
            switch try device.tapReadable() {
            case .tapDrained, .budgetSpent:
                break  // the watch is level-triggered: more will come round
            case .outOfBuffers:
                watch?.cancel()
                watch = nil
            case .limited:
                watch?.cancel()
                watch = nil
                guard limitTimer == nil, let runner else { break }
                limitTimer = try runner.after(seconds: device.secondsUntilReceiveAdmitted) { [weak self] in
                    self?.limitTimer = nil
                    self?.resume()
                }
            }
        } catch let error as QueueFault {
            watch?.cancel()
            watch = nil
            runner?.reportBrokenRing(error)
        } catch {
            // The tap itself failed: a host error; stop reading it rather than spin.
            watch?.cancel()
            watch = nil
            runner?.reportBrokenRing(error)
        }
    }
}

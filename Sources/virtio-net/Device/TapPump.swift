import LinuxSystem
import VirtioCore

/// Moves packets from one tap queue to its pair's receive queue when the tap is readable,
/// and stops watching the tap while the driver has no receive buffers there, the
/// interface's receive limit holds it back (back-pressure: packets wait in the tap's own
/// queue, not in our memory), or the pair goes out of use (its tap queue is detached).
final class TapPump {
    private let tap: FileDescriptor
    /// The queue pair this tap queue serves.
    let pair: Int
    private var watch: EventWatch?
    /// While the receive limit holds the tap back: the timer that watches it again.
    private var limitTimer: EventWatch?
    weak var device: NetVirtioDevice?
    var runner: VirtioDeviceRunner?

    init(tap: FileDescriptor, pair: Int) {
        self.tap = tap
        self.pair = pair
    }

    /// Watches the tap (again); called at start and by the device when buffers return or
    /// the pair comes into use.
    func resume() {
        guard watch == nil, let runner else { return }
        watch = try? runner.watchReadable(tap.rawValue) { [weak self] in self?.readable() }
    }

    /// Stops watching the tap and forgets a pending limit timer (the pair goes out of use).
    func stop() {
        watch?.cancel()
        watch = nil
        limitTimer?.cancel()
        limitTimer = nil
    }

    private func readable() {
        guard let device else { return }
        do {
            switch try device.tapReadable(pair: pair) {
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
            stop()
            runner?.reportBrokenRing(error)
        } catch {
            // The tap itself failed: a host error; stop reading it rather than spin.
            stop()
            runner?.reportBrokenRing(error)
        }
    }
}

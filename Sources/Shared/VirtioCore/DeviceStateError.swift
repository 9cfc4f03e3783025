/// A restored device state the device cannot take.
public enum DeviceStateError: Error, CustomStringConvertible {
    /// A device that keeps no state of its own was given some.
    case notKept(Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .notKept(let count): "\(count) bytes of device state for a device that keeps none"
        case .malformed(let why): "device state: \(why)"
        }
    }
}

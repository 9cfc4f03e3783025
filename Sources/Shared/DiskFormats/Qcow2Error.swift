/// Why a qcow2 image cannot be used, or a request on it failed. Each names what was
/// found, so `vmd -n` and the device log can say it plainly.
public enum Qcow2Error: Error, Equatable, Sendable, CustomStringConvertible {
    case notQcow2
    case truncated(String)
    case unsupported(String)
    case corrupt(String)

    public var description: String {
        switch self {
        case .notQcow2: "not a qcow2 image (no QFI\\xfb magic)"
        case .truncated(let what): "truncated qcow2 image: \(what)"
        case .unsupported(let what): "unsupported qcow2 image: \(what)"
        case .corrupt(let what): "corrupt qcow2 image: \(what)"
        }
    }
}

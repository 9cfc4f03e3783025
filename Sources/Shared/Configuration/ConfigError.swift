/// A problem in a configuration file, pinned to the token that caused it.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var location: ConfigLocation
    public var message: String

    public init(location: ConfigLocation, message: String) {
        self.location = location
        self.message = message
    }

    /// For example `guest.conf:3:12: expected a size such as 64M after 'memory', found 'abc'`.
    public var description: String { "\(location): \(message)" }
}

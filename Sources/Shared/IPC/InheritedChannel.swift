import LinuxSystem

extension ChildSetup {
    /// The control channel vmd handed down as fd 3 (`ChildProcess.channelDescriptor`).
    public static func inheritedChannel() -> Channel {
        Channel(socket: FileDescriptor(adopting: ChildProcess.channelDescriptor))
    }
}

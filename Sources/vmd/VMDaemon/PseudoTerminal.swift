import CLinux
import Glibc
import LinuxSystem

/// A pseudo-terminal for a guest console: vmd keeps the controller side and
/// hands the other side to the vm process, whose UART writes into it.
public struct PseudoTerminal {
    public let controller: FileDescriptor
    public let device: FileDescriptor
    public let devicePath: String

    public init() throws {
        let raw = try retryingInterrupts("posix_openpt") { vmd_posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC) }
        let controller = FileDescriptor(adopting: raw)
        self.controller = controller
        try retryingInterrupts("grantpt") { vmd_grantpt(controller.rawValue) }
        try retryingInterrupts("unlockpt") { vmd_unlockpt(controller.rawValue) }
        var name = [CChar](repeating: 0, count: 128)
        let result = vmd_ptsname(controller.rawValue, &name, name.count)
        guard result == 0 else { throw SystemError("ptsname_r", errno: result) }
        devicePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let device = try FileDescriptor.open(devicePath, flags: O_RDWR | O_NOCTTY)
        self.device = device
        // Raw: the guest's bytes pass unchanged (no \n to \r\n, no echo, no line editing).
        var settings = termios()
        try retryingInterrupts("tcgetattr") { tcgetattr(device.rawValue, &settings) }
        cfmakeraw(&settings)
        try retryingInterrupts("tcsetattr") { tcsetattr(device.rawValue, TCSANOW, &settings) }
    }
}

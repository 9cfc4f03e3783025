import Foundation
import Glibc
import XCTest

/// A network namespace a test makes for itself, so that taps, addresses and
/// traffic stay inside it; deleted when the test is done with it.
final class NetworkNamespace {
    let name: String

    init(_ prefix: String) throws {
        name = "\(prefix)\(getpid())"
        _ = NetworkNamespace.run(["/usr/sbin/ip", "netns", "del", name])
        guard NetworkNamespace.run(["/usr/sbin/ip", "netns", "add", name]).status == 0 else {
            throw CocoaError(.featureUnsupported, userInfo: [NSLocalizedDescriptionKey: "ip netns add \(name) failed"])
        }
        _ = exec(["ip", "link", "set", "lo", "up"])
    }

    deinit {
        _ = NetworkNamespace.run(["/usr/sbin/ip", "netns", "del", name])
    }

    /// Runs a command inside the namespace to completion.
    func exec(_ arguments: [String]) -> (status: Int32, output: String) {
        NetworkNamespace.run(["/usr/sbin/ip", "netns", "exec", name] + arguments)
    }

    /// `vmd boot CONFIG ARGUMENTS` inside the namespace, output to files in the VM's directory.
    func startVmd(_ vm: VmdHarness, config: String, arguments: [String]) throws -> VmdHarness.Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", name, VmdHarness.productsDirectory + "/vmd", "boot", config] + arguments
        let stdoutPath = vm.directory.appendingPathComponent("stdout").path
        let stderrPath = vm.directory.appendingPathComponent("stderr").path
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return VmdHarness.Run(process: process, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// Starts one of the guest kit's host tools (Guest/tools/NAME) with python3 inside the
    /// namespace, its output to `stdout`, and gives it half a second to bind its socket.
    /// The caller terminates it if it is still running when the test ends.
    func startTool(_ name: String, _ arguments: [String], stdout: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", self.name, "python3",
                             VmdHarness.packageRoot.appendingPathComponent("Guest/tools/\(name)").path] + arguments
        process.standardOutput = stdout ?? FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.5)  // bound before the guest sends
        return process
    }

    static func run(_ arguments: [String]) -> (status: Int32, output: String) {
        VmdHarness.runCommand(arguments)
    }

    static func requireTun() throws {
        guard FileManager.default.fileExists(atPath: "/dev/net/tun") else {
            print("SKIP: /dev/net/tun is missing")
            throw XCTSkip("/dev/net/tun is missing")
        }
    }
}

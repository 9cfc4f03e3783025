import IPC
import LinuxSystem

/// How a VM run by vmd ended, as vmd reports it.
enum VMOutcome: Equatable, CustomStringConvertible {
    case guest(GuestEnd)
    case deadlineExceeded(seconds: Double)
    case vmProcessDied(ChildProcess.Termination)
    case deviceProcessDied(role: String, ChildProcess.Termination)
    case interrupted(signal: Int32)
    case forcedAfterGracePeriod(seconds: Double)
    case stoppedByRequest
    /// `vmctl send` wrote the VM's snapshot, of this many bytes, and stopped it.
    case sent(bytes: UInt64)
    /// `vmctl migrate`: the VM runs on another vmd now.
    case migrated(to: String)
    /// The guest rebooted but its new processes could not be started (the error is logged).
    case restartFailed(GuestEnd)
    /// The guest rebooted more often than `RestartPolicy` allows.
    case restartLimit(GuestEnd, restarts: Int, seconds: Double)
    /// The VM's processes went over its `memory limit`: the kernel killed them (cgroup OOM).
    case memoryLimitExceeded(bytes: UInt64)

    var description: String {
        switch self {
        case .guest(let end): end.description
        case .deadlineExceeded(let seconds): "deadline of \(seconds.formatted)s passed; vm process killed"
        case .vmProcessDied(let termination): "vm process \(termination) without reporting"
        case .deviceProcessDied(let role, let termination): "\(role) process \(termination); VM stopped"
        case .interrupted(let signal): "stopped by signal \(signal)"
        case .forcedAfterGracePeriod(let seconds): "did not shut down within \(seconds.formatted)s; forced"
        case .stoppedByRequest: "stopped by vmctl stop -f"
        case .sent(let bytes): "sent as a snapshot of \(bytes) bytes"
        case .migrated(let destination): "migrated to \(destination)"
        case .restartFailed(let end): "\(end); the restart failed"
        case .restartLimit(let end, let restarts, let seconds): "\(end) after \(restarts) restarts within \(seconds.formatted)s; not restarted"
        case .memoryLimitExceeded(let bytes):
            "went over its memory limit of \(bytes >> 20) MiB; the kernel killed its processes (cgroup out of memory)"
        }
    }

    /// vmd's exit status for this outcome (documented in `vmd boot --help`).
    var exitStatus: Int32 {
        switch self {
        case .guest(.exitCode(let code)): Int32(code)
        case .guest(.powerOff), .guest(.reset), .guest(.stopped), .sent, .migrated: 0
        case .guest(.tripleFault): ExitStatus.tripleFault
        case .guest(.failed): ExitStatus.vmFailure
        case .deadlineExceeded: ExitStatus.deadline
        case .vmProcessDied, .deviceProcessDied, .memoryLimitExceeded: ExitStatus.vmFailure
        case .interrupted, .forcedAfterGracePeriod, .stoppedByRequest: ExitStatus.interrupted
        case .restartFailed: ExitStatus.setupFailure
        case .restartLimit(let end, _, _): VMOutcome.guest(end).exitStatus
        }
    }
}

enum ExitStatus {
    static let tripleFault: Int32 = 65
    static let deadline: Int32 = 66
    static let interrupted: Int32 = 67
    static let vmFailure: Int32 = 70   // EX_SOFTWARE
    static let setupFailure: Int32 = 71 // EX_OSERR
    static let configError: Int32 = 78 // EX_CONFIG
}

extension Double {
    var formatted: String { self == rounded() ? String(Int(self)) : String(self) }
}

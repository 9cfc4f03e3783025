import CLinux
import Glibc
import Logging
import Synchronization

/// Logging for every swift-vmd process (design §1, issue 5): stderr in the
/// foreground, syslog for the daemon, and one process-wide level that
/// `vmctl log verbose|brief` changes at run time in every process.
///
/// Children of vmd never open a log of their own (their sandbox forbids sockets and
/// files): they write lines with a syslog priority prefix to their stderr, a pipe that
/// vmd reads (`ChildLogRelay`) and writes, tagged, where its own log goes (`relay`).
public enum VmdLog {
    public enum Destination: Sendable {
        case standardError
        case syslog(identity: String)
        /// A child's stderr, read by vmd: each line starts with its priority, "<N>".
        case parentPipe
    }

    /// Where this process's own lines and the ones it relays go.
    nonisolated(unsafe) private static var destination = Destination.standardError

    /// The level every handler of this process uses, changeable at run time.
    static let level = Atomic<UInt8>(VmdLog.rank(.info))

    public static var currentLevel: Logger.Level {
        get { Logger.Level.allCases[Int(level.load(ordering: .relaxed))] }
        set { level.store(rank(newValue), ordering: .relaxed) }
    }

    static func rank(_ level: Logger.Level) -> UInt8 {
        UInt8(Logger.Level.allCases.firstIndex(of: level) ?? 3)
    }

    /// The level a parent passed down in VMD_LOG_LEVEL, else `fallback`.
    public static func inheritedLevel(fallback: Logger.Level = .info) -> Logger.Level {
        getenv("VMD_LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? fallback
    }

    /// Installs the handler once per process, before any thread starts; children
    /// inherit the level through the environment (`bootstrapChild`).
    public static func bootstrap(_ destination: Destination, level: Logger.Level) {
        currentLevel = level
        setenv("VMD_LOG_LEVEL", level.rawValue, 1)
        self.destination = destination
        if case .syslog(let identity) = destination {
            openlog(strdup(identity), LOG_PID | LOG_NDELAY, LOG_DAEMON)
        }
        LoggingSystem.bootstrap { label in VmdLogHandler(label: label, destination: destination) }
    }

    /// For a child of vmd: its parent's level, its lines to the pipe vmd reads.
    public static func bootstrapChild() {
        bootstrap(.parentPipe, level: inheritedLevel())
    }

    /// Writes a line a child logged, tagged "VM/role", where this process's log goes.
    public static func relay(_ record: ChildLogRelay.Record, tag: String) {
        switch destination {
        case .syslog:
            "\(tag): \(record.text)".withCString { vmd_syslog(record.priority, $0) }
        case .standardError, .parentPipe:
            FileDescriptor.standardError("\(tag): \(record.text)\n")
        }
    }

    /// Sets the level in this process and in the children started from now on.
    public static func setLevel(_ level: Logger.Level) {
        currentLevel = level
        setenv("VMD_LOG_LEVEL", level.rawValue, 1)
    }
}

/// Writes one line per message; the level comes from `VmdLog`, not from the logger.
struct VmdLogHandler: LogHandler {
    let label: String
    let destination: VmdLog.Destination
    var metadata: Logger.Metadata = [:]

    var logLevel: Logger.Level {
        get { VmdLog.currentLevel }
        set { VmdLog.currentLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let context = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let priority: Int32 = switch event.level {
        case .trace, .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        case .critical: LOG_CRIT
        }
        switch destination {
        case .standardError:
            FileDescriptor.standardError("\(label)[\(getpid())]\(context): \(event.level): \(event.message)\n")
        case .parentPipe:
            // One write per line, so lines of several threads do not interleave (PIPE_BUF).
            FileDescriptor.standardError("<\(priority)>\(label)[\(getpid())]\(context): \(event.level): \(event.message)\n")
        case .syslog:
            "\(label)\(context): \(event.message)".withCString { text in
                vmd_syslog(priority, text)
            }
        }
    }
}

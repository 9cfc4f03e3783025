import CLinux
import Glibc
import Logging
import Synchronization

/// Logging for every swift-vmd process (design §1, issue 5): stderr in the
/// foreground, syslog for the daemon, and one process-wide level that
/// `vmctl log verbose|brief` changes at run time in every process.
public enum VmdLog {
    public enum Destination: Sendable {
        case standardError
        case syslog(identity: String)
    }

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

    /// Installs the handler once per process; children inherit the level and
    /// the destination through the environment (`bootstrapChild`).
    public static func bootstrap(_ destination: Destination, level: Logger.Level) {
        currentLevel = level
        setenv("VMD_LOG_LEVEL", level.rawValue, 1)
        if case .syslog(let identity) = destination {
            setenv("VMD_LOG_SYSLOG", "1", 1)
            openlog(strdup(identity), LOG_PID | LOG_NDELAY, LOG_DAEMON)
        }
        LoggingSystem.bootstrap { label in VmdLogHandler(label: label, destination: destination) }
    }

    /// For a child of vmd: the same destination and level as its parent.
    public static func bootstrapChild(identity: String) {
        let syslog = getenv("VMD_LOG_SYSLOG") != nil
        bootstrap(syslog ? .syslog(identity: identity) : .standardError, level: inheritedLevel())
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
        switch destination {
        case .standardError:
            FileDescriptor.standardError("\(label)[\(getpid())]\(context): \(event.level): \(event.message)\n")
        case .syslog:
            let priority: Int32 = switch event.level {
            case .trace, .debug: LOG_DEBUG
            case .info: LOG_INFO
            case .notice: LOG_NOTICE
            case .warning: LOG_WARNING
            case .error: LOG_ERR
            case .critical: LOG_CRIT
            }
            "\(label)\(context): \(event.message)".withCString { text in
                vmd_syslog(priority, text)
            }
        }
    }
}

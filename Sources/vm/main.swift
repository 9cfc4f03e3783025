import Glibc
import Logging
import Shared

// The vm process. vmd starts it with its control channel as fd 3; it is not
// meant to be run by hand.
// vmd passes its log level down (VMD_LOG_LEVEL), so `vmd -v` makes every process verbose.
let logLevel = getenv("VMD_LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = logLevel
    return handler
}
var logger = Logger(label: "vm")
do {
    try ChildSetup.dieWithParent()
    try ChildSetup.forbidNewPrivileges()
} catch {
    logger.critical("setup: \(error)")
    exit(70)
}
let process = VMProcess(channel: ChildSetup.inheritedChannel(), logger: logger)
let end: GuestEnd
do {
    end = try process.run()
} catch {
    logger.error("\(error)")
    end = .failed("\(error)")
}
logger.info("guest \(end)")
try? process.channel.send(VMEvent.ended(end))
exit(0)

import Glibc
import IPC
import LinuxSystem
import Logging

/// The vm process from start to exit. vmd starts it with its control channel as
/// fd 3; it is not meant to be run by hand.
package enum VMProcessMain {
    package static func run() -> Never {
        VmdLog.bootstrapChild()
        // A snapshot or a migration goes to a pipe or a socket whose reader may go away:
        // that is a failed send (EPIPE), never the end of the VM.
        signal(SIGPIPE, SIG_IGN)
        let pager = CommandLine.arguments.dropFirst(2).first == "--pager"
        let logger = Logger(label: pager ? "pager" : "vm")
        do {
            try ChildSetup.dieWithParent()
        } catch {
            logger.critical("setup: \(error)")
            exit(70)
        }
        if pager {
            do {
                try PagerProcess(channel: ChildSetup.inheritedChannel(), logger: logger).run()
            } catch {
                logger.error("\(error)")
                exit(70)
            }
            exit(0)
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
    }
}

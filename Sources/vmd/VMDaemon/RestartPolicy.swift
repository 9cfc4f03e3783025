/// How often a guest may reboot before vmd stops restarting it: at most `limit`
/// restarts within any `window` seconds. A Linux reboot takes seconds; a kernel that
/// triple-faults at once would otherwise restart in a tight loop for ever.
struct RestartPolicy {
    static let limit = 10
    static let window: Double = 60
    private var times: [Double] = []

    func allowsRestart(at now: Double) -> Bool {
        times.filter { now - $0 < RestartPolicy.window }.count < RestartPolicy.limit
    }

    mutating func record(at now: Double) {
        times = times.filter { now - $0 < RestartPolicy.window } + [now]
    }
}

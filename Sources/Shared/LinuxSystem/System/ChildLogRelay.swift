import Glibc

/// What a child process writes to its log pipe, turned into records vmd can pass on
/// (issue 13): split into lines, each at most `maximumLineBytes`, control characters
/// replaced (a child cannot forge a second line or a terminal escape), its priority
/// taken from a syslog-style `<N>` prefix but never more severe than LOG_ERR, and at
/// most `LineRateLimiter`'s rate, with one note of how many lines were dropped.
///
/// A child is sandboxed and may be compromised, so it never logs anywhere itself: its
/// stdout and stderr are a pipe to vmd, which tags each line with the VM and the
/// process role and writes it to syslog or its own stderr (`VmdLog.relay`).
public struct ChildLogRelay {
    public struct Record: Equatable {
        public let priority: Int32
        public let text: String
    }

    public static let maximumLineBytes = 1024
    public static let defaultBurst = 200
    public static let defaultPerSecond = 50

    private var limiter: LineRateLimiter
    private var partial: [UInt8] = []
    private var truncating = false
    private var suppressed = 0

    public init(burst: Int = ChildLogRelay.defaultBurst, perSecond: Int = ChildLogRelay.defaultPerSecond) {
        limiter = LineRateLimiter(burst: burst, perSecond: perSecond)
    }

    /// Records for the complete lines in `bytes` (what came before is kept until its newline).
    public mutating func feed(_ bytes: some Collection<UInt8>, now: Double) -> [Record] {
        var records: [Record] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                endLine(now: now, into: &records)
            } else if partial.count < ChildLogRelay.maximumLineBytes {
                partial.append(byte)
            } else {
                truncating = true
            }
        }
        return records
    }

    /// At end of file: the last line, even without its newline, and the count of drops.
    public mutating func finish(now: Double) -> [Record] {
        var records: [Record] = []
        if !partial.isEmpty || truncating { endLine(now: now, into: &records) }
        if let note = takeDropNote(more: true) { records.append(note) }
        return records
    }

    /// The count of lines dropped since the last note, as a record, and the count reset.
    private mutating func takeDropNote(more: Bool) -> Record? {
        guard suppressed > 0 else { return nil }
        defer { suppressed = 0 }
        return Record(priority: LOG_WARNING, text: "(\(suppressed) \(more ? "more " : "")lines dropped: over \(Int(limiter.perSecond)) a second)")
    }

    private mutating func endLine(now: Double, into records: inout [Record]) {
        defer {
            partial.removeAll(keepingCapacity: true)
            truncating = false
        }
        guard limiter.admit(now: now) else {
            suppressed += 1
            return
        }
        if let note = takeDropNote(more: false) { records.append(note) }
        var priority = LOG_ERR  // unprefixed lines are the runtime's own (a crash) or a child's before its log was set up
        var body = partial[...]
        if body.count >= 3, body[body.startIndex] == UInt8(ascii: "<"), body[body.startIndex + 2] == UInt8(ascii: ">"),
           let digit = Int32(exactly: body[body.startIndex + 1]).map({ $0 - 0x30 }), (0...7).contains(digit) {
            priority = max(digit, LOG_ERR)
            body = body.dropFirst(3)
        }
        let printable = body.map { $0 < 0x20 && $0 != UInt8(ascii: "\t") || $0 == 0x7F ? UInt8(ascii: "?") : $0 }
        records.append(Record(priority: priority, text: String(decoding: printable, as: UTF8.self) + (truncating ? " [truncated]" : "")))
    }
}

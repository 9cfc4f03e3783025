import IPC

/// `vmctl status` output: one aligned row per VM, as vmctl(8) prints it.
enum StatusTable {
    static let headers = ["ID", "PID", "VCPUS", "MEMORY", "RESTARTS", "STATE", "OWNER", "NAME"]

    static func render(_ entries: [VMStatusEntry]) -> String {
        let rows = entries.map { entry in
            [String(entry.id), entry.pid == 0 ? "-" : String(entry.pid), String(entry.vcpus), size(entry.memoryBytes),
             String(entry.restarts), entry.state, entry.owner, entry.name + (entry.reason.isEmpty ? "" : " (\(entry.reason))")]
        }
        // Numbers right-aligned, text left-aligned.
        return AlignedColumns.render([headers] + rows) { $0 < 5 }
    }

    static func size(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        return "\(bytes)"
    }
}

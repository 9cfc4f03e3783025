/// The HTTP side of the metrics endpoint: what to answer to a request head. Only enough
/// HTTP/1.x for a scraper (Prometheus, curl): `GET /metrics` (or `/`), one response, then
/// the connection closes. Anything else gets its 4xx and nothing more.
struct MetricsResponse: Equatable {
    let status: Int
    let reason: String
    let contentType: String
    let body: [UInt8]

    /// The largest request head read; a longer one is answered 431.
    static let maximumHead = 8192

    /// The answer to `head` (the bytes up to the blank line), with `metrics` called only for a GET.
    static func answer(head: [UInt8], metrics: () -> [UInt8]) -> MetricsResponse {
        let firstLine = head.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        let fields = String(decoding: firstLine, as: UTF8.self).trimmingSuffix("\r").split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[2].hasPrefix("HTTP/1.") else { return .plain(400, "Bad Request") }
        let path = fields[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/metrics" || path == "/" else { return .plain(404, "Not Found") }
        switch fields[0] {
        case "GET": return MetricsResponse(status: 200, reason: "OK", contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
        case "HEAD": return MetricsResponse(status: 200, reason: "OK", contentType: "text/plain; version=0.0.4; charset=utf-8", body: [])
        default: return .plain(405, "Method Not Allowed")
        }
    }

    static func plain(_ status: Int, _ reason: String) -> MetricsResponse {
        MetricsResponse(status: status, reason: reason, contentType: "text/plain; charset=utf-8", body: Array("\(reason)\n".utf8))
    }

    /// Status line, headers and body, ready to send.
    var bytes: [UInt8] {
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        if status == 405 { head += "Allow: GET, HEAD\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// Where the head of `bytes` ends (after the blank line), nil if it has not yet.
    static func headEnd(in bytes: [UInt8]) -> Int? {
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\n") {
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { return index + 2 }
                if index + 2 < bytes.count, bytes[index + 1] == UInt8(ascii: "\r"), bytes[index + 2] == UInt8(ascii: "\n") { return index + 3 }
            }
            index += 1
        }
        return nil
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> Substring {
        hasSuffix(suffix) ? dropLast(suffix.count) : self[...]
    }
}

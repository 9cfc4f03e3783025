import LinuxSystem

/// The rate limits inside a disk's or an interface's block (vm.conf(5)):
///
///     disk "path" ... { limit ... }        limit := "bandwidth" size ["burst" size]
///                                                  | "ops" count ["burst" count]
///     interface ... { ... limit ... }      limit := "bandwidth" size ["burst" size]
///                                                  | "packets" count ["burst" count]
///
/// `bandwidth` is bytes per second, a size as for `memory` (K, M, G: powers of 1024);
/// `ops` are requests and `packets` packets per second, whole numbers. The burst is what
/// may go at once after a quiet spell; by default a tenth of a second of the rate.
enum RateLimitOption {
    /// Keywords of these statements, reserved for macros.
    static let words: Set<String> = ["bandwidth", "ops", "packets", "burst"]

    /// Parses the arguments of `keyword` (`bandwidth`, or `operations`: "ops" or
    /// "packets") into `limit`; the statement end is the caller's.
    static func parse(_ keyword: ConfigToken, operations: String, _ tokens: inout ConfigTokenStream,
                      into limit: inout RateLimit) throws(ConfigError) {
        let isBandwidth = keyword.kind == .word("bandwidth")
        let unit = isBandwidth ? "size such as 50M (bytes per second)" : "whole number of \(operations) per second such as 2000"
        let rate = try value(try tokens.next(), after: keyword.text ?? "", isSize: isBandwidth, expected: unit)
        var burst: UInt64?
        if try tokens.peek().kind == .word("burst") {
            _ = try tokens.next()
            burst = try value(try tokens.next(), after: "burst", isSize: isBandwidth,
                              expected: isBandwidth ? "size such as 5M (bytes)" : "whole number of \(operations) such as 200")
        }
        let bucket = RateLimit.Bucket(rate: rate, burst: burst)
        if isBandwidth { limit.bytes = bucket } else { limit.operations = bucket }
    }

    /// A rate or burst: at least 1 and at most `RateLimit.Bucket.maximum`.
    private static func value(_ token: ConfigToken, after word: String, isSize: Bool, expected: String) throws(ConfigError) -> UInt64 {
        let parsed: UInt64??
        if let text = token.text {
            parsed = isSize ? ConfigValues.parseSize(text) : (text.allSatisfy { $0.isASCII && $0.isNumber } && !text.isEmpty ? .some(UInt64(text)) : nil)
        } else {
            parsed = nil
        }
        guard let parsed else {
            throw ConfigError(location: token.location, message: "expected a \(expected) after '\(word)', found \(token.description)")
        }
        guard let number = parsed, number <= RateLimit.Bucket.maximum else {
            throw ConfigError(location: token.location, message: "'\(word)' value \(token.description) is too large; at most \(RateLimit.Bucket.maximum)")
        }
        guard number > 0 else {
            throw ConfigError(location: token.location, message: "'\(word)' must be at least 1; leave the statement out for no limit")
        }
        return number
    }
}

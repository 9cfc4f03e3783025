/// Milliseconds as the logs and vmctl print them, to a fixed number of decimals (the
/// release programs link no Foundation, so no String(format:)).
public enum MillisecondsText {
    /// `milliseconds` rounded to `decimals` places; a negative or non-finite value prints as 0.
    public static func format(_ milliseconds: Double, decimals: Int) -> String {
        var scale = 1
        for _ in 0..<max(0, decimals) { scale *= 10 }
        let value = milliseconds.isFinite ? max(0, milliseconds) : 0
        // Clamped below Int.max, which converting a larger Double would trap on.
        let units = Int(min((value * Double(scale)).rounded(), 9.0e18))
        guard decimals > 0 else { return "\(units)" }
        let fraction = String(units % scale)
        return "\(units / scale).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }
}

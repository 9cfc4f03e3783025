/// A LAPIC timer that expires between a vCPU's park and its snapshot would be lost to the
/// snapshot: KVM counts the expiry apart from the registers KVM_GET_LAPIC gives, and injects
/// it only when that vCPU next enters the guest, which on the sending side it never does.
/// So the current count is read at park, and a capture whose timer has expired since (a
/// periodic count that started a new period, a one-shot count that reached zero) gets the
/// timer's vector set in its IRR: the interrupt KVM would have injected, now pending on
/// the receiving side. Several expiries in that window make one interrupt, as KVM would;
/// a periodic timer paused for longer than its period (`vmctl pause`, then `send`) may
/// show a count below the one at park although it expired, and then gets none.
/// TSC-deadline mode needs none of this: its deadline is an MSR, and KVM fires a restored
/// deadline that has passed.
///
/// The register page is struct kvm_lapic_state's 1 KiB: each register at its xAPIC MMIO
/// offset, 32 bits wide, in x2APIC mode too.
enum LAPICTimerCatchUp {
    static let pageSize = 1024
    private static let irr = 0x200, timerLVT = 0x320, initialCount = 0x380, currentCount = 0x390
    private static let masked: UInt32 = 1 << 16
    private enum Mode: UInt32 { case oneShot = 0, periodic = 1, tscDeadline = 2, reserved = 3 }

    /// The timer's current count in a register page (what to keep at park).
    static func currentCount(of page: UnsafeRawBufferPointer) -> UInt32? {
        page.count >= pageSize ? read(page, currentCount) : nil
    }

    /// Whether the timer of `page` (read after the park) expired since it read `countAtPark`.
    static func expired(since countAtPark: UInt32, page: UnsafeRawBufferPointer) -> Bool {
        guard page.count >= pageSize, read(page, initialCount) != 0 else { return false }
        let lvt = read(page, timerLVT), now = read(page, currentCount)
        switch Mode(rawValue: lvt >> 17 & 3) {
        case .periodic: return now > countAtPark  // counts down, reloads at zero: larger means a new period
        case .oneShot: return countAtPark > 0 && now == 0
        case .tscDeadline, .reserved, nil: return false
        }
    }

    /// Sets the timer's vector in the IRR of `page` if its timer expired since `countAtPark`
    /// and is not masked. Returns whether it did.
    @discardableResult
    static func catchUp(_ page: UnsafeMutableRawBufferPointer, countAtPark: UInt32) -> Bool {
        guard expired(since: countAtPark, page: UnsafeRawBufferPointer(page)) else { return false }
        let lvt = read(UnsafeRawBufferPointer(page), timerLVT)
        let vector = Int(lvt & 0xFF)
        // Vectors 0–15 are reserved: an LVT naming one raises an error, not an interrupt.
        guard lvt & masked == 0, vector >= 16 else { return false }
        let word = irr + 0x10 * (vector / 32)
        write(page, word, read(UnsafeRawBufferPointer(page), word) | 1 << UInt32(vector % 32))
        return true
    }

    private static func read(_ page: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: page.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    private static func write(_ page: UnsafeMutableRawBufferPointer, _ offset: Int, _ value: UInt32) {
        page.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
}

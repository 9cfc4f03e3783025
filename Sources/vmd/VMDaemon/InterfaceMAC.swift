import Glibc
import LinuxSystem

/// The MAC addresses of a NIC when the configuration gives none: the same each time the VM
/// starts on this host (a reboot, `vmctl receive`, a migration between two vmds here), so a
/// restored guest finds its own address and its gateway's where it left them. A random
/// address per start made the restored guest's neighbour entry for the host point at the
/// old tap's address: its traffic to the host was lost until the entry expired (forever for
/// a guest that keeps its ARP cache, as the guest kit does).
enum InterfaceMAC {
    /// fe:e1:ba (vmd's prefix, as when these were random) and three bytes of a hash of the
    /// host's identity (/etc/machine-id, else its name), the VM's name and the interface's
    /// index. Another host, VM or interface almost surely gets another address: 24 bits, as
    /// many as the random ones had.
    static func guest(vmName: String, index: Int, host: String = hostIdentity) -> [UInt8] {
        let hash = fnv1a(Array("\(host)\u{0}\(vmName)\u{0}\(index)".utf8))
        return [0xFE, 0xE1, 0xBA, UInt8(truncatingIfNeeded: hash >> 16), UInt8(truncatingIfNeeded: hash >> 8),
                UInt8(truncatingIfNeeded: hash)]
    }

    /// The host end of a `local interface` (its tap), from the guest's: bit 2 of the first
    /// octet flipped, kept unicast and locally administered, so the two always differ and
    /// the tap's follows the guest's (the guest's gateway stays where it was on a restore).
    static func tap(forGuest mac: [UInt8]) -> [UInt8] {
        var tap = mac
        tap[0] = ((mac[0] ^ 0x04) | 0x02) & ~0x01
        return tap
    }

    /// What tells this host from another: systemd's machine id, else the host name. (Not
    /// Foundation: the release vmd links the Swift runtime statically, without it.)
    static let hostIdentity: String = {
        if let file = try? FileDescriptor.open("/etc/machine-id", flags: O_RDONLY), let bytes = try? file.read(upTo: 64) {
            let id = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
            if !id.isEmpty { return id }
        }
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "" }
        return String(cString: name)
    }()

    /// FNV-1a, 64 bits: stable across processes and builds (Swift's Hasher is seeded per process).
    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return hash
    }
}

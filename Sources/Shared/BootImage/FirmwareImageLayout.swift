/// Where a PC BIOS image goes, and which sizes fit (vm places it, vmd checks it first):
/// the whole image ends at 4 GiB, read-only, where the reset vector (0xFFFFFFF0) finds
/// it; its last 128 KiB also appear below 1 MiB, ending at 0x100000, where its real-mode
/// code runs (QEMU's "isa-bios" alias). SeaBIOS's bios.bin (128 KiB) and bios-256k.bin
/// fit; 256 KiB is the most, as KVM's real-mode TSS and identity map sit just below.
public struct FirmwareImageLayout: Equatable, Sendable {
    public static let granule = 64 << 10
    public static let maximumSize = 256 << 10
    public static let lowAliasMaximum = 128 << 10
    /// The Debian seabios package's image, what QEMU's pc machine loads.
    public static let defaultPath = "/usr/share/seabios/bios-256k.bin"

    public let size: Int

    public enum SizeError: Error, Equatable, CustomStringConvertible {
        case size(Int)
        public var description: String {
            switch self {
            case .size(let size):
                "a BIOS image of \(size) bytes: it must be a multiple of 64 KiB, from 64 KiB to 256 KiB (SeaBIOS's bios.bin or bios-256k.bin)"
            }
        }
    }

    public init(size: Int) throws(SizeError) {
        guard size >= FirmwareImageLayout.granule, size <= FirmwareImageLayout.maximumSize,
              size % FirmwareImageLayout.granule == 0 else { throw .size(size) }
        self.size = size
    }

    /// Where the whole image starts: it ends at 4 GiB.
    public var highBase: UInt64 { (1 << 32) - UInt64(size) }
    /// How much of its end also sits below 1 MiB, and where that starts.
    public var lowAliasSize: Int { min(size, FirmwareImageLayout.lowAliasMaximum) }
    public var lowAliasBase: UInt64 { 0x10_0000 - UInt64(lowAliasSize) }
}

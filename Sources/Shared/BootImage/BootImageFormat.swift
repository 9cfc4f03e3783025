/// The kernel image formats the loader takes, told apart by their first bytes: an ELF
/// file (with or without a PVH note) or a Linux bzImage (its setup header's "HdrS").
/// vm loads them; vmd recognizes them first, so that `vmd -n` and start refuse any other file.
public enum BootImageFormat: Equatable, Sendable {
    case elf
    case bzImage

    public static let elfMagic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
    /// The bzImage setup header's magic and where it is (Linux boot protocol, 2.00+).
    public static let bzImageMagic = Array("HdrS".utf8)
    public static let bzImageMagicOffset = 0x202
    /// Enough of the file's start to tell.
    public static let bytesNeeded = bzImageMagicOffset + 4

    public init?(head bytes: some Collection<UInt8>) {
        let head = Array(bytes.prefix(BootImageFormat.bytesNeeded))
        if head.starts(with: BootImageFormat.elfMagic) {
            self = .elf
        } else if head.count >= BootImageFormat.bytesNeeded,
                  Array(head[BootImageFormat.bzImageMagicOffset...]) == BootImageFormat.bzImageMagic {
            self = .bzImage
        } else {
            return nil
        }
    }

    public static func recognizes(_ head: [UInt8]) -> Bool { BootImageFormat(head: head) != nil }
}

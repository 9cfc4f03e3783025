import BootImage
/// The setup header of a Linux x86 bzImage (Documentation/arch/x86/boot.rst,
/// "The real-mode kernel header"). Parsing is pure: bytes in, header or typed
/// error out. Offsets are from the start of the file (the zero page's layout).
struct BzImage: Equatable {
    enum ParseError: Error, Equatable, CustomStringConvertible {
        case notBzImage(String)
        case protocolTooOld(major: UInt8, minor: UInt8)
        case unsupported(String)
        case malformed(String)

        var description: String {
            switch self {
            case .notBzImage(let why): "not a bzImage: \(why)"
            case .protocolTooOld(let major, let minor):
                "boot protocol \(major).\(String(format2: minor)) is too old (need 2.12 or later for the 64-bit entry)"
            case .unsupported(let what): "unsupported bzImage: \(what)"
            case .malformed(let what): "malformed bzImage: \(what)"
            }
        }
    }

    // Field offsets (boot.rst, "The real-mode kernel header").
    static let setupHeaderOffset = 0x1F1
    static let setupSectorsOffset = 0x1F1
    static let bootFlagOffset = 0x1FE
    static let jumpOffset = 0x200
    static let headerMagicOffset = BootImageFormat.bzImageMagicOffset
    static let versionOffset = 0x206
    static let typeOfLoaderOffset = 0x210
    static let loadFlagsOffset = 0x211
    static let code32StartOffset = 0x214
    static let ramdiskImageOffset = 0x218
    static let ramdiskSizeOffset = 0x21C
    static let heapEndPointerOffset = 0x224
    static let commandLinePointerOffset = 0x228
    static let initrdAddressMaxOffset = 0x22C
    static let kernelAlignmentOffset = 0x230
    static let relocatableKernelOffset = 0x234
    static let minAlignmentOffset = 0x235
    static let xLoadFlagsOffset = 0x236
    static let commandLineSizeOffset = 0x238
    static let payloadOffsetOffset = 0x248
    static let payloadLengthOffset = 0x24C
    static let preferredAddressOffset = 0x258
    static let initSizeOffset = 0x260

    static let headerMagic = BootImageFormat.bzImageMagic
    static let bootFlag: UInt16 = 0xAA55
    static let sectorSize = 512
    /// Protocol 2.12: xloadflags, the first with a documented 64-bit entry flag.
    static let minimumVersion: UInt16 = 0x020C

    struct LoadFlags: OptionSet, Equatable {
        let rawValue: UInt8
        /// The protected-mode code is loaded at 0x100000.
        static let loadedHigh = LoadFlags(rawValue: 1 << 0)
        static let keepSegments = LoadFlags(rawValue: 1 << 6)
        static let canUseHeap = LoadFlags(rawValue: 1 << 7)
    }

    struct XLoadFlags: OptionSet, Equatable {
        let rawValue: UInt16
        /// The kernel has the 64-bit entry at load address + 0x200.
        static let kernel64 = XLoadFlags(rawValue: 1 << 0)
        static let canBeLoadedAbove4G = XLoadFlags(rawValue: 1 << 1)
        static let efiHandover32 = XLoadFlags(rawValue: 1 << 2)
        static let efiHandover64 = XLoadFlags(rawValue: 1 << 3)
        static let efiKexec = XLoadFlags(rawValue: 1 << 4)
    }

    /// Sectors of real-mode setup code after the boot sector (0 means 4).
    let setupSectors: Int
    /// Boot protocol version, major in the high byte (0x020F is 2.15).
    let version: UInt16
    let loadFlags: LoadFlags
    let xLoadFlags: XLoadFlags
    let kernelAlignment: UInt32
    let relocatable: Bool
    /// Memory the kernel needs from its load address while it decompresses and starts.
    let initSize: UInt32
    /// The longest command line the kernel accepts, without the terminating NUL.
    let commandLineSize: UInt32
    /// The highest address the last byte of the initrd may occupy.
    let initrdAddressMax: UInt32
    let preferredAddress: UInt64
    /// The setup header as in the file: from 0x1F1 to 0x202 + the byte at 0x201.
    let setupHeader: [UInt8]
    /// Where the protected-mode kernel starts in the file, and how long it is.
    let kernelOffset: Int
    let kernelSize: Int

    var versionString: String { "\(version >> 8).\(String(format2: UInt8(version & 0xFF)))" }

    init(bytes: [UInt8]) throws {
        let reader = ByteReader(bytes)
        guard bytes.count >= 0x270 else { throw ParseError.notBzImage("\(bytes.count) bytes, shorter than a setup header") }
        guard Array(bytes[BzImage.headerMagicOffset..<(BzImage.headerMagicOffset + 4)]) == BzImage.headerMagic else {
            throw ParseError.notBzImage("no \"HdrS\" magic at 0x202")
        }
        guard try reader.u16(at: BzImage.bootFlagOffset) == BzImage.bootFlag else {
            throw ParseError.notBzImage("boot flag is not 0xAA55")
        }
        version = try reader.u16(at: BzImage.versionOffset)
        guard version >= BzImage.minimumVersion else {
            throw ParseError.protocolTooOld(major: UInt8(version >> 8), minor: UInt8(version & 0xFF))
        }
        let sectors = Int(bytes[BzImage.setupSectorsOffset])
        setupSectors = sectors == 0 ? 4 : sectors
        loadFlags = LoadFlags(rawValue: bytes[BzImage.loadFlagsOffset])
        xLoadFlags = XLoadFlags(rawValue: try reader.u16(at: BzImage.xLoadFlagsOffset))
        guard loadFlags.contains(.loadedHigh) else { throw ParseError.unsupported("zImage (LOADED_HIGH clear): loads below 1 MiB") }
        guard xLoadFlags.contains(.kernel64) else { throw ParseError.unsupported("no 64-bit entry (XLF_KERNEL_64 clear)") }
        kernelAlignment = try reader.u32(at: BzImage.kernelAlignmentOffset)
        relocatable = bytes[BzImage.relocatableKernelOffset] != 0
        guard kernelAlignment == 0 || kernelAlignment & (kernelAlignment - 1) == 0 else {
            throw ParseError.malformed("kernel_alignment 0x\(String(kernelAlignment, radix: 16)) is not a power of two")
        }
        initSize = try reader.u32(at: BzImage.initSizeOffset)
        commandLineSize = try reader.u32(at: BzImage.commandLineSizeOffset)
        initrdAddressMax = try reader.u32(at: BzImage.initrdAddressMaxOffset)
        preferredAddress = try reader.u64(at: BzImage.preferredAddressOffset)

        // The header's length is given by its own jump instruction (boot.rst: "0x202 + byte at 0x201").
        let headerEnd = 0x202 + Int(bytes[BzImage.jumpOffset + 1])
        guard headerEnd <= bytes.count, headerEnd <= 0x1000 else { throw ParseError.malformed("setup header ends past the file") }
        setupHeader = Array(bytes[BzImage.setupHeaderOffset..<headerEnd])
        kernelOffset = (setupSectors + 1) * BzImage.sectorSize
        guard kernelOffset < bytes.count else {
            throw ParseError.malformed("\(setupSectors) setup sectors, but the file has \(bytes.count) bytes")
        }
        kernelSize = bytes.count - kernelOffset
        guard UInt64(initSize) >= UInt64(kernelSize) else {
            throw ParseError.malformed("init_size 0x\(String(initSize, radix: 16)) is smaller than the kernel")
        }
    }

    /// Where the protected-mode kernel is loaded (LOADED_HIGH: 1 MiB, as QEMU does).
    static let loadAddress: UInt64 = 0x10_0000

    /// The end of the memory the kernel needs while it starts: init_size bytes from where
    /// it runs. A relocatable kernel moves itself up to pref_address (its LOAD_PHYSICAL_ADDR,
    /// aligned to kernel_alignment) and decompresses there; a fixed one runs where it is loaded.
    var memoryEnd: UInt64 {
        let runAddress = relocatable ? max(BzImage.loadAddress, preferredAddress) : BzImage.loadAddress
        return runAddress + UInt64(initSize)
    }
}

extension String {
    /// A two-digit decimal (protocol minor versions print as 2.05, 2.15).
    init(format2 value: UInt8) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}

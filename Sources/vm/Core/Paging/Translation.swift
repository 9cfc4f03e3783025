/// The result of walking the page tables for one linear address: where it
/// lands in guest-physical memory and what the combined entries allow.
public struct Translation: Hashable, Sendable, CustomStringConvertible {
    /// The guest-physical address the linear address translates to.
    public var physicalAddress: UInt64
    /// The size of the page that maps it.
    public var pageSize: PageSize
    /// R/W was 1 in every entry of the walk (SDM vol. 3A §4.6.1).
    public var writable: Bool
    /// U/S was 1 in every entry of the walk (SDM vol. 3A §4.6.1).
    public var user: Bool
    /// XD was 0 in every entry of the walk, or IA32_EFER.NXE is 0 (SDM vol. 3A §4.6.1).
    public var executable: Bool

    public init(physicalAddress: UInt64, pageSize: PageSize, writable: Bool, user: Bool, executable: Bool) {
        self.physicalAddress = physicalAddress
        self.pageSize = pageSize
        self.writable = writable
        self.user = user
        self.executable = executable
    }

    /// The guest-physical address of the start of the page.
    public var pageBase: UInt64 { physicalAddress & ~pageSize.offsetMask }

    public var description: String {
        let access = (writable ? "W" : "-") + (user ? "U" : "S") + (executable ? "X" : "-")
        return "Translation(0x\(String(physicalAddress, radix: 16)) \(pageSize) \(access))"
    }
}

import Glibc

/// Whether the host lets guest RAM have 2 MiB pages. Guest RAM is a memfd, which is
/// shmem, and shmem gets transparent huge pages only as
/// /sys/kernel/mm/transparent_hugepage/shmem_enabled allows: with `advise` the vm
/// process's MADV_HUGEPAGE takes effect, with `always` it is not needed, with `never`
/// (Debian's default) or `deny` every guest page is 4 KiB and so is every KVM nested
/// page-table entry. Measured in the nested rig: Linux booted 25-35% faster with
/// `advise` (bench/nested-boot --shmem-thp advise).
package enum ShmemHugePages {
    package static let settingPath = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

    /// The selected word of the sysfs file ("always within_size advise [never] deny force").
    package static func selected(in text: String) -> String? {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("[") && $0.hasSuffix("]") }
            .map { String($0.dropFirst().dropLast()) }
    }

    /// A line for the log when guest RAM will have 4 KiB pages only, else nil.
    package static func advice(setting: String?) -> String? {
        guard let setting, setting == "never" || setting == "deny" else { return nil }
        return "guest RAM gets 4 KiB pages only: \(settingPath) is [\(setting)]; "
            + "`echo advise > \(settingPath)` lets vm ask for 2 MiB pages (Linux guests boot faster)"
    }

    /// Reads the host's setting; nil when the file is absent (no THP in this kernel).
    package static func hostSetting() -> String? {
        guard let file = fopen(settingPath, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        return selected(in: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}

/// The VM's ACPI tables as SeaBIOS takes them over fw_cfg, as QEMU gives them: the
/// RSDP in "etc/acpi/rsdp", every other table back to back in "etc/acpi/tables", and
/// "etc/table-loader" to place and link them. The tables are built by `ACPITables`
/// with their pointers holding offsets into the tables file; the loader adds the
/// file's final address to each pointer and recomputes the checksums it touched
/// (a checksum stays right under the additions because the loader subtracts the new sum).
struct FirmwareACPIFiles {
    static let rsdpFile = "etc/acpi/rsdp"
    static let tablesFile = "etc/acpi/tables"
    static let loaderFile = "etc/table-loader"

    let rsdp: [UInt8]
    let tables: [UInt8]
    let loader: [UInt8]

    init(_ acpi: ACPITables) {
        let dsdt = acpi.dsdt(), madt = acpi.madt()
        // XSDT first, then the tables it lists, then the DSDT the FADT points at.
        let xsdtOffset = 0
        let xsdtSize = acpi.xsdt().count  // the pointers are fixed-width: sizes do not depend on them
        let fadtOffset = xsdtOffset + xsdtSize
        let fadtSize = acpi.fadt().count
        let madtOffset = fadtOffset + fadtSize
        let dsdtOffset = madtOffset + madt.count
        let xsdt = acpi.xsdt(fadt: UInt64(fadtOffset), madt: UInt64(madtOffset))
        let fadt = acpi.fadt(dsdt: UInt64(dsdtOffset))
        tables = xsdt + fadt + madt + dsdt
        rsdp = acpi.rsdp(xsdt: UInt64(xsdtOffset))

        let checksumOffset = 9  // in every table header (§5.2.6)
        var script = TableLoaderScript()
        script.allocate(FirmwareACPIFiles.rsdpFile, alignment: 16, zone: .fSegment)
        script.allocate(FirmwareACPIFiles.tablesFile, alignment: 64, zone: .high)
        script.addPointer(in: FirmwareACPIFiles.rsdpFile, at: FirmwareACPIFiles.rsdpXSDTOffset, size: 8, to: FirmwareACPIFiles.tablesFile)
        for entry in 0..<2 {
            script.addPointer(in: FirmwareACPIFiles.tablesFile, at: xsdtOffset + ACPITables.xsdtEntriesOffset + 8 * entry, size: 8,
                              to: FirmwareACPIFiles.tablesFile)
        }
        script.addPointer(in: FirmwareACPIFiles.tablesFile, at: fadtOffset + ACPITables.fadtDSDTOffset, size: 4, to: FirmwareACPIFiles.tablesFile)
        script.addPointer(in: FirmwareACPIFiles.tablesFile, at: fadtOffset + ACPITables.fadtXDSDTOffset, size: 8, to: FirmwareACPIFiles.tablesFile)
        script.addChecksum(in: FirmwareACPIFiles.tablesFile, at: xsdtOffset + checksumOffset, over: xsdtOffset..<(xsdtOffset + xsdtSize))
        script.addChecksum(in: FirmwareACPIFiles.tablesFile, at: fadtOffset + checksumOffset, over: fadtOffset..<(fadtOffset + fadtSize))
        // The RSDP's first checksum covers bytes 0-19, which hold no pointer; the extended one covers all 36.
        script.addChecksum(in: FirmwareACPIFiles.rsdpFile, at: FirmwareACPIFiles.rsdpExtendedChecksumOffset, over: 0..<rsdp.count)
        loader = script.bytes
    }

    static let rsdpXSDTOffset = 24
    static let rsdpExtendedChecksumOffset = 32

    /// The three files, in the order QEMU lists them.
    func add(to table: inout FirmwareConfigTable) throws {
        try table.addFile(FirmwareACPIFiles.rsdpFile, rsdp)
        try table.addFile(FirmwareACPIFiles.tablesFile, tables)
        try table.addFile(FirmwareACPIFiles.loaderFile, loader)
    }
}

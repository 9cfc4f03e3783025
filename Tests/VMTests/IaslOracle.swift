import Foundation
import XCTest

/// iasl (Debian's acpica-tools, installed by scripts/setup) as the oracle for the ACPI
/// tables vm emits: `iasl -d` must disassemble a table without errors or warnings.
extension XCTestCase {
    /// The disassembly of `bytes`; fails the test when iasl complains, skips when it is missing.
    func disassembleACPI(_ bytes: [UInt8], name: String) throws -> String {
        guard let iasl = ["/usr/bin/iasl", "/usr/local/bin/iasl"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("SKIP: iasl is missing (Debian's acpica-tools; scripts/setup installs it)")
            throw XCTSkip("iasl is missing")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("acpi-\(getpid())-\(name)")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["KEEP_ACPI"] == nil { try? FileManager.default.removeItem(at: directory) } }
        let input = directory.appendingPathComponent("\(name).dat")
        try Data(bytes).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: iasl)
        process.arguments = ["-d", input.path]
        process.currentDirectoryURL = directory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "iasl -d \(name):\n\(log)")
        let output = directory.appendingPathComponent("\(name).dsl")
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        XCTAssertFalse(text.isEmpty, "iasl wrote no \(name).dsl:\n\(log)")
        XCTAssertFalse(log.contains("Error") || text.contains("Invalid") || text.contains("**** "), "iasl complains about \(name):\n\(log)\n\(text)")
        return text
    }
}

import Foundation
import XCTest

/// The release programs link the Swift runtime statically (Package.swift's `leanRelease`),
/// which has no Foundation beyond what ArgumentParser brings: a source that imports
/// Foundation links in debug builds, where tests run, and fails to link in release
/// (`make install`, bench/run), with ICU symbols missing. So no source does.
final class LeanReleaseTests: XCTestCase {
    func testNoProgramSourceImportsFoundation() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let files = try XCTUnwrap(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        var swiftFiles = 0
        for case let file as URL in files where file.pathExtension == "swift" {
            swiftFiles += 1
            let text = try String(contentsOf: file, encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.hasPrefix("import Foundation") }
            XCTAssertTrue(imports.isEmpty, "\(file.path) imports Foundation")
        }
        XCTAssertGreaterThan(swiftFiles, 100, "the sources were found")
    }
}

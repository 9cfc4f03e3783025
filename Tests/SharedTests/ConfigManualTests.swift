import Foundation
import XCTest
@testable import Configuration

/// vm.conf(5) against the parser: every statement the grammar has is described there, and
/// every statement described there is one the grammar has.
final class ConfigManualTests: XCTestCase {
    /// The first word of each `.It Ic word ...` item (the statements and their options).
    private func documentedStatements() throws -> [(word: String, line: String)] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("man/vm.conf.5"), encoding: .utf8)
        return page.split(separator: "\n").filter { $0.hasPrefix(".It Ic ") }.map { line in
            (String(line.dropFirst(7).split(separator: " ")[0]), String(line))
        }
    }

    func testEveryStatementAndOptionHasItsItem() throws {
        let items = try documentedStatements()
        let words = Set(items.map(\.word))
        let statements = VMOption.all.map(\.name) + ["vm", "include", "local", "metrics", "format", "readonly", "cache", "lladdr", "switch"]
            + RateLimitOption.words.subtracting(["burst"]) + ["io"]
        for statement in statements {
            XCTAssertTrue(words.contains(statement), "vm.conf.5 has no item for '\(statement)'")
        }
        let page = items.map(\.line).joined(separator: "\n")
        for phrase in [".It Ic local prefix", ".It Ic local interface", ".It Ic metrics listen on", ".It Ic boot device disk"] {
            XCTAssertTrue(page.contains(phrase), "vm.conf.5 has no '\(phrase)' item")
        }
    }

    func testEveryItemIsAStatementTheParserKnows() throws {
        for (word, line) in try documentedStatements() {
            XCTAssertTrue(ConfigMacros.reservedWords.contains(word), "vm.conf.5 describes '\(line)', which the grammar does not have")
        }
    }
}

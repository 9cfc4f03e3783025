import Foundation
import XCTest

/// The manuals (man/): mandoc -Tlint is the oracle of their form; the programs' own
/// command trees (ArgumentParser's --experimental-dump-help) of what they must cover.
final class ManualPageTests: XCTestCase {
    private static let manuals = VmdHarness.packageRoot.appendingPathComponent("man")

    private func page(_ name: String) throws -> String {
        try String(contentsOf: Self.manuals.appendingPathComponent(name), encoding: .utf8)
    }

    func testManualsAreMandocLintClean() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mandoc") else {
            print("SKIP: mandoc is missing (Debian's mandoc; scripts/setup installs it)")
            throw XCTSkip("mandoc is missing")
        }
        let pages = ["vmd.8", "vmctl.8", "vm.conf.5"].map { Self.manuals.appendingPathComponent($0).path }
        let result = VmdHarness.runCommand(["/usr/bin/mandoc", "-Tlint", "-Wstyle"] + pages)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output, "", "mandoc -Tlint complains:\n\(result.output)")
    }

    /// Each verb's options as the program parses them, each with its names (`-v`, `--verbose`):
    /// verb -> [["-s"], ["-v", "--verbose"], ...].
    private func commandTree(_ program: String) throws -> (flags: [[String]], verbs: [String: [[String]]]) {
        let result = VmdHarness.runCommand([VmdHarness.productsDirectory + "/" + program, "--experimental-dump-help"])
        XCTAssertEqual(result.status, 0, result.output)
        let tree = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let command = try XCTUnwrap(tree["command"] as? [String: Any])
        func flags(_ command: [String: Any]) -> [[String]] {
            let arguments = command["arguments"] as? [[String: Any]] ?? []
            return arguments.map { argument in
                (argument["names"] as? [[String: Any]] ?? []).compactMap { name in
                    guard let text = name["name"] as? String, text != "help", text != "h" else { return nil }
                    return (name["kind"] as? String) == "short" ? "-" + text : "--" + text
                }
            }.filter { !$0.isEmpty }
        }
        var verbs: [String: [[String]]] = [:]
        for sub in command["subcommands"] as? [[String: Any]] ?? [] {
            guard let name = sub["commandName"] as? String, name != "help" else { continue }
            verbs[name] = flags(sub)
        }
        return (flags(command), verbs)
    }

    /// mdoc's way of writing a flag: `-w` is `Fl w`, `--json` is `Fl -json`.
    private func mdoc(_ flag: String) -> String { "Fl " + flag.dropFirst() }

    /// The items of vmctl.8's COMMANDS list, by verb: the `.It Cm verb` line and its body.
    private func commandItems(_ text: String) -> [String: String] {
        guard let start = text.range(of: ".Sh COMMANDS") else { return [:] }
        let section = text[start.upperBound...].prefix { _ in true }
        let end = section.range(of: "\n.Sh ")?.lowerBound ?? section.endIndex
        var items: [String: String] = [:]
        var current: String?
        for line in section[..<end].split(separator: "\n") {
            if line.hasPrefix(".It Cm ") {
                current = String(line.dropFirst(7).split(separator: " ").first ?? "")
                items[current!] = String(line)
            } else if let current {
                items[current, default: ""] += "\n" + line
            }
        }
        return items
    }

    func testVmctlManualCoversEveryVerbAndFlagAndNothingElse() throws {
        let (_, verbs) = try commandTree("vmctl")
        let items = commandItems(try page("vmctl.8"))
        XCTAssertFalse(verbs.isEmpty)
        XCTAssertEqual(Set(items.keys), Set(verbs.keys), "vmctl.8's COMMANDS and vmctl's verbs differ")
        for (verb, options) in verbs {
            guard let item = items[verb] else { continue }
            for flag in options.joined() {
                XCTAssertTrue(item.contains(mdoc(flag)), "vmctl.8 does not document \(verb) \(flag)")
            }
        }
    }

    func testVmdManualCoversEveryFlagOfEverySubcommand() throws {
        let (_, verbs) = try commandTree("vmd")
        let text = try page("vmd.8")
        let synopsis = String(text[text.range(of: ".Sh SYNOPSIS")!.lowerBound..<text.range(of: ".Sh DESCRIPTION")!.lowerBound])
        XCTAssertFalse(verbs.isEmpty)
        let itemLines = text.split(separator: "\n").filter { $0.hasPrefix(".It ") }
        for (verb, options) in verbs {
            XCTAssertTrue(verb == "serve" || synopsis.contains("Cm \(verb)"), "vmd.8's SYNOPSIS lacks vmd \(verb)")
            for names in options {
                // The synopsis gives one spelling of an option; the description list gives every one.
                XCTAssertTrue(names.contains { synopsis.contains(mdoc($0)) }, "vmd.8's SYNOPSIS lacks \(verb) \(names)")
                for flag in names {
                    XCTAssertTrue(itemLines.contains { $0.contains(mdoc(flag)) }, "vmd.8 does not describe \(verb) \(flag)")
                }
            }
        }
    }
}

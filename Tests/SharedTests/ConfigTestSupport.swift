import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Configuration

/// Helpers shared by the config grammar tests that need more than one file.
enum ConfigTestSupport {
    /// A reader over in-memory files; anything else is ENOENT, like the real one.
    static func reader(_ files: [String: String]) -> ConfigParser.FileReader {
        { (path: String) throws(ConfigFileReadError) -> [UInt8] in
            guard let text = files[path] else { throw ConfigFileReadError(path: path, errno: ENOENT) }
            return Array(text.utf8)
        }
    }

    /// The first vm of `text`.
    static func firstVM(_ text: String) throws -> VMConfig {
        try XCTUnwrap(try parse(text).vms.first)
    }

    static func parse(_ text: String, file: String = "g.conf", files: [String: String] = [:]) throws -> ConfigFile {
        try ConfigParser.parse(text, file: file, readingIncludesWith: reader(files))
    }

    /// Asserts that parsing `text` (as `g.conf`, with `files` to include) fails
    /// at exactly `file:line:column` and that the message contains `message`.
    static func assertError(
        _ text: String, files: [String: String] = [:],
        at file: String = "g.conf", _ line: Int, _ column: Int, _ message: String,
        file testFile: StaticString = #filePath, line testLine: UInt = #line
    ) {
        do {
            let config = try ConfigParser.parse(text, file: "g.conf", readingIncludesWith: reader(files))
            XCTFail("expected an error, parsed \(config)", file: testFile, line: testLine)
        } catch {
            let prefix = "\(file):\(line):\(column): "
            XCTAssertTrue(error.description.hasPrefix(prefix), "\(error.description) does not start with \(prefix)",
                          file: testFile, line: testLine)
            XCTAssertTrue(error.message.contains(message), "\(error.description) does not contain \(message)",
                          file: testFile, line: testLine)
        }
    }
}

// Fuzz target 5: the configuration parser, `ConfigParser.parse(_:file:)` and
// `parse(_:file:readingIncludesWith:)` (Sources/Shared/Config).
//
// Input: byte 0 picks the entry point (bit 0: with an include reader); the rest
// is split at NUL bytes into files: the first is /etc/vm.conf, the others are
// what `include` reads. The reader serves a path whose last character is a digit
// d with file d + 1 (so "a1", "/x/1" and "../1" all read file 2, which makes
// include chains and loops through different names easy to reach; a real file
// system has those through symlinks), and fails with ENOENT otherwise.
import FuzzKit
import Glibc
@testable import Configuration

@_cdecl("FuzzConfig_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let control = input.byte()
    let files = input.rest().split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
    let text = String(decoding: files.first ?? [], as: UTF8.self)

    let result: Result<ConfigFile, ConfigError>
    if control & 1 == 0 {
        result = Result { () throws(ConfigError) in try ConfigParser.parse(text, file: "/etc/vm.conf") }
    } else {
        var reads = 0
        let reader: ConfigParser.FileReader = { (path: String) throws(ConfigFileReadError) -> [UInt8] in
            reads += 1
            fuzzCheck(reads <= 10_000, "more than 10 000 includes read for one input")
            guard let last = path.unicodeScalars.last, let digit = Int(String(last)), digit + 1 < files.count else {
                throw ConfigFileReadError(path: path, errno: ENOENT)
            }
            return files[digit + 1]
        }
        result = Result { () throws(ConfigError) in
            try ConfigParser.parse(text, file: "/etc/vm.conf", readingIncludesWith: reader)
        }
    }
    switch result {
    case .success(let config):
        // Every vm has a name and a unique one.
        let names = config.vms.map(\.name)
        fuzzCheck(Set(names).count == names.count, "duplicate vm names accepted: \(names)")
        _ = "\(config)"
    case .failure(let error):
        _ = error.description
    }
    return 0
}

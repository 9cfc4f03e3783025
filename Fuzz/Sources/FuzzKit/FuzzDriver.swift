import FuzzSupport

/// Hands the process to libFuzzer. SwiftPM renames each executable's entry point to
/// `<Target>_main` (and links with --defsym main=...), so every target defines that
/// symbol and calls this with its LLVMFuzzerTestOneInput.
public func runLibFuzzer(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// A failed check of a target's oracle: a crash for libFuzzer, with the reason.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz oracle: \(message())", file: file, line: line) }
}

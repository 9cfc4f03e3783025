// swift-tools-version:6.0
// libFuzzer targets for swift-vmd (see README.md here). A package of its own so the
// main Package.swift never sees it; it depends on the main package's libraries by path
// (the FuzzableLibraries product) and reaches their internals with @testable import,
// which is why run.sh builds with -enable-testing. Build with ./run.sh or:
//   swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing
import PackageDescription

let libraries = Target.Dependency.product(name: "FuzzableLibraries", package: "swift-vmd")
let shared: [Target.Dependency] = [libraries, "FuzzKit"]

let package = Package(
    name: "swift-vmd-fuzz",
    dependencies: [
        .package(name: "swift-vmd", path: ".."),
    ],
    targets: [
        .target(name: "FuzzSupport"),
        .target(name: "FuzzKit", dependencies: [libraries, "FuzzSupport"]),
        .executableTarget(name: "FuzzVirtqueue", dependencies: shared),
        .executableTarget(name: "FuzzBlockRequest", dependencies: shared),
        .executableTarget(name: "FuzzNet", dependencies: shared),
        .executableTarget(name: "FuzzIPC", dependencies: shared),
        .executableTarget(name: "FuzzConfig", dependencies: shared),
        .executableTarget(name: "FuzzQcow2", dependencies: shared),
        .executableTarget(name: "FuzzSnapshot", dependencies: shared),
    ],
    swiftLanguageModes: [.v5]
)

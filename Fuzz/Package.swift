// swift-tools-version:6.0
// libFuzzer targets for swift-vmd (see README.md here). A package of its own so the
// main Package.swift never sees it; it compiles the main sources through symlinks:
// Sources/{CLinux,CEvent,CSeccomp,Shared} point at ../Sources, and each fuzz target
// links in the files it needs from the executable targets virtio-blk and virtio-net
// (which cannot be imported as modules). Build with ./run.sh or:
//   swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
import PackageDescription

let shared: [Target.Dependency] = ["Shared", "CLinux", "FuzzKit"]

let package = Package(
    name: "swift-vmd-fuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(name: "CLinux"),
        .target(name: "FuzzSupport"),
        .target(name: "FuzzKit", dependencies: ["Shared", "FuzzSupport"]),
        .systemLibrary(name: "CEvent", pkgConfig: "libevent_core"),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp"),
        .target(
            name: "Shared",
            dependencies: ["CLinux", "CEvent", "CSeccomp", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(name: "FuzzVirtqueue", dependencies: shared),
        .executableTarget(name: "FuzzBlockRequest", dependencies: shared),
        .executableTarget(name: "FuzzNet", dependencies: shared),
        .executableTarget(name: "FuzzIPC", dependencies: shared),
        .executableTarget(name: "FuzzConfig", dependencies: shared),
    ],
    swiftLanguageModes: [.v5]
)

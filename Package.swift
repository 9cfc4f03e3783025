// swift-tools-version:6.0
// swift-vmd: a multi-process KVM virtual machine monitor (see shared design notes in README.md).
import PackageDescription

let package = Package(
    name: "swift-vmd",
    products: [
        .executable(name: "vmd", targets: ["vmd"]),
        .executable(name: "vm", targets: ["vm"]),
        .executable(name: "virtio-blk", targets: ["virtio-blk"]),
        .executable(name: "virtio-net", targets: ["virtio-net"]),
        .executable(name: "vmctl", targets: ["vmctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C shims: no logic, only what Swift cannot reach (macros, variadic calls, new syscalls).
        .target(name: "CLinux"),
        .target(name: "CKVM"),
        // System libraries from Debian's libevent-dev and libseccomp-dev (installed by scripts/setup).
        .systemLibrary(name: "CEvent", pkgConfig: "libevent_core", providers: [.apt(["libevent-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),

        .target(
            name: "Shared",
            dependencies: [
                "CLinux", "CEvent", "CSeccomp",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "vm",
            dependencies: ["Shared", "CLinux", "CKVM", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "vmd",
            dependencies: [
                "Shared", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "virtio-blk", dependencies: ["Shared", "CLinux"]),
        .executableTarget(name: "virtio-net", dependencies: ["Shared", "CLinux"]),
        .executableTarget(
            name: "vmctl",
            dependencies: ["Shared", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .testTarget(name: "SharedTests", dependencies: ["Shared", "CLinux"]),
        .testTarget(name: "VMTests", dependencies: ["vm", "Shared"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Shared"]),
        .testTarget(name: "VirtioBlkTests", dependencies: ["virtio-blk", "Shared", "CLinux"]),
        .testTarget(
            name: "VirtioNetTests",
            dependencies: ["virtio-net", "Shared", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v5]
)

// swift-tools-version:6.0
// swift-vmd: a multi-process KVM virtual machine monitor (see shared design notes in README.md).
import PackageDescription

// Release executables carry the Swift runtime statically (each process then maps only
// the parts of it that it uses, instead of all of libswiftCore.so and its companions),
// linked by lld with packed relative relocations (DT_RELR, glibc >= 2.36): the
// relocation table, which every process reads in full at start, shrinks from ~550 KiB
// to ~5 KiB. PIE stays, and RELRO becomes full RELRO (`-z now`: every symbol bound at
// start, the GOT read-only before a guest runs). Debug builds and tests keep the shared
// runtime. Measured with bench/run --only mem (issue 8): total RSS 44.6 -> 32.1 MiB.
let leanRelease: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                  "-Xlinker", "-z", "-Xlinker", "now"],
                 .when(platforms: [.linux], configuration: .release)),
]

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
            dependencies: ["Shared", "CLinux", "CKVM", .product(name: "Logging", package: "swift-log")],
            linkerSettings: leanRelease
        ),
        .executableTarget(
            name: "vmd",
            dependencies: [
                "Shared", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // ArgumentParser's FoundationEssentials needs these two when linked statically.
            linkerSettings: leanRelease + ["_FoundationCollections", "_FoundationCShims"].map {
                .linkedLibrary($0, .when(platforms: [.linux], configuration: .release))
            }
        ),
        .executableTarget(name: "virtio-blk", dependencies: ["Shared", "CLinux"], linkerSettings: leanRelease),
        .executableTarget(name: "virtio-net", dependencies: ["Shared", "CLinux"], linkerSettings: leanRelease),
        .executableTarget(
            name: "vmctl",
            dependencies: ["Shared", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .testTarget(name: "SharedTests", dependencies: ["Shared", "CLinux"]),
        .testTarget(name: "VMTests", dependencies: ["vm", "Shared"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Shared", "CLinux"]),
        .testTarget(name: "VirtioBlkTests", dependencies: ["virtio-blk", "Shared", "CLinux"]),
        .testTarget(
            name: "VirtioNetTests",
            dependencies: ["virtio-net", "Shared", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v5]
)

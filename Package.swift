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

// The programs vmd starts for each VM, and vmctl, link everything statically as static
// PIEs (glibc's rcrt1.o: each exec still gets its own address-space layout, as ASLR
// needs): no dynamic loader, no shared library to map and bind at start. Measured here
// (exec to exit, no work): vm 6.4 -> 3.0 ms (CPU 4.1 -> 1.8 ms), virtio-blk 4.4 -> 2.3 ms,
// `vmctl status` 9.0 -> 6.4 ms. Only with SWIFT_VMD_STATIC_PIE=1 and SwiftPM's
// --disable-local-rpath together, which scripts/build passes (a static PIE with a library
// search path dies in glibc's start code). vmd stays dynamic: it resolves users, groups
// and hosts through glibc's NSS, which a static program cannot load.
let staticRelease: [LinkerSetting] = Context.environment["SWIFT_VMD_STATIC_PIE"] != "1" ? leanRelease : [
    .unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xclang-linker", "-static-pie", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                  "-Xlinker", "-z", "-Xlinker", "now"],
                 .when(platforms: [.linux], configuration: .release)),
]

// ArgumentParser's FoundationEssentials needs these two when linked statically.
let argumentParserLibraries: [LinkerSetting] = ["_FoundationCollections", "_FoundationCShims"].map {
    .linkedLibrary($0, .when(platforms: [.linux], configuration: .release))
}
let leanReleaseWithArgumentParser = leanRelease + argumentParserLibraries
let staticReleaseWithArgumentParser = staticRelease + argumentParserLibraries

let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

// The libraries (ARCHITECTURE.md has the graph and why). Each executable is a short
// main.swift over its own library; vmd's does not depend on GuestRAM, so the build
// itself keeps vmd from mapping guest RAM.
let package = Package(
    name: "swift-vmd",
    products: [
        .executable(name: "vmd", targets: ["vmd"]),
        .executable(name: "vm", targets: ["vm"]),
        .executable(name: "virtio-blk", targets: ["virtio-blk"]),
        .executable(name: "virtio-net", targets: ["virtio-net"]),
        .executable(name: "virtio-rng", targets: ["virtio-rng"]),
        .executable(name: "vmctl", targets: ["vmctl"]),
        // For the fuzz package (Fuzz/), which depends on these by path.
        .library(name: "FuzzableLibraries", targets: ["IPC", "Configuration", "VirtioCore", "VirtioTestSupport", "BlockDevice", "NetDevice", "DiskFormats", "Snapshot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The Prometheus text format for vmd's metrics endpoint (MetricsExposition.swift).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C shims: no logic, only what Swift cannot reach (macros, variadic calls, new syscalls).
        .target(name: "CLinux"),
        .target(name: "CKVM"),
        // System libraries from Debian's libevent-dev and libseccomp-dev (installed by scripts/setup).
        .systemLibrary(name: "CEvent", pkgConfig: "libevent_core", providers: [.apt(["libevent-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
        .systemLibrary(name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),

        // Sources/Shared: what more than one process uses.
        // Descriptors, errno, logging, the event loop, spawning, the sandbox and its hardening.
        .target(name: "LinuxSystem", dependencies: ["CLinux", "CKVM", "CEvent", "CSeccomp", logging], path: "Sources/Shared/LinuxSystem"),
        // Guest addresses, the slot table and the sealed memfds vmd creates (no mapping).
        .target(name: "MemorySlots", dependencies: ["LinuxSystem", "CLinux"], path: "Sources/Shared/MemorySlots"),
        // Guest RAM mapped and accessed: vm and the device processes only.
        .target(name: "GuestRAM", dependencies: ["MemorySlots", "LinuxSystem", "CLinux"], path: "Sources/Shared/GuestRAM"),
        // Channels, framing, the wire format and every message between the processes.
        .target(name: "IPC", dependencies: ["MemorySlots", "LinuxSystem", "CLinux"], path: "Sources/Shared/IPC"),
        // The vm.conf grammar.
        .target(name: "Configuration", dependencies: ["LinuxSystem"], path: "Sources/Shared/Configuration"),
        // Which kernel formats the loader takes (vmd checks, vm loads).
        .target(name: "BootImage", path: "Sources/Shared/BootImage"),
        // Disk image formats (qcow2's header): pure parsing, for vmd and virtio-blk.
        .target(name: "DiskFormats", path: "Sources/Shared/DiskFormats"),
        // The VM snapshot format (vmctl send/receive): writer and a reader that treats the file as hostile.
        .target(name: "Snapshot", dependencies: ["IPC", "LinuxSystem", "CXXHash"], path: "Sources/Shared/Snapshot"),
        // Split virtqueues, the device model protocol and the device process's runner.
        .target(name: "VirtioCore", dependencies: ["GuestRAM", "IPC", "LinuxSystem", logging], path: "Sources/Shared/VirtioCore"),
        // The driver side of a queue, for tests and fuzzers: linked into no executable.
        .target(name: "VirtioTestSupport", dependencies: ["VirtioCore", "GuestRAM"], path: "Sources/Shared/VirtioTestSupport"),

        // Each executable and its library.
        .target(
            name: "VMCore",
            dependencies: ["GuestRAM", "MemorySlots", "IPC", "VirtioCore", "Snapshot", "LinuxSystem", "BootImage", "CLinux", "CKVM", logging],
            path: "Sources/vm/Core"),
        .executableTarget(name: "vm", dependencies: ["VMCore"], path: "Sources/vm",
                          exclude: ["Core"], linkerSettings: staticRelease),
        .target(
            name: "VMDaemon",
            dependencies: ["IPC", "MemorySlots", "Configuration", "BootImage", "DiskFormats", "LinuxSystem", "CLinux",
                           "BlockDeviceShape", "NetDeviceShape", "EntropyDeviceShape", argumentParser, logging,
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Sources/vmd/VMDaemon"),
        .executableTarget(name: "vmd", dependencies: ["VMDaemon"], path: "Sources/vmd", exclude: ["VMDaemon"],
                          linkerSettings: leanReleaseWithArgumentParser),
        // A device's shape (type, queues, their maximum size), declared once: vmd wires from it.
        .target(name: "BlockDeviceShape", dependencies: ["IPC"], path: "Sources/virtio-blk/Shape"),
        .target(name: "BlockDevice", dependencies: ["BlockDeviceShape", "VirtioCore", "GuestRAM", "IPC", "LinuxSystem", "CLinux", "DiskFormats", "CZlib", "CZstd", "CURing", logging],
                path: "Sources/virtio-blk/Device"),
        .executableTarget(name: "virtio-blk", dependencies: ["BlockDevice"],
                          path: "Sources/virtio-blk", exclude: ["Device", "Shape"], linkerSettings: staticRelease),
        .target(name: "NetDeviceShape", dependencies: ["IPC"], path: "Sources/virtio-net/Shape"),
        .target(name: "NetDevice", dependencies: ["NetDeviceShape", "VirtioCore", "GuestRAM", "IPC", "LinuxSystem", "CLinux", logging],
                path: "Sources/virtio-net/Device"),
        .executableTarget(name: "virtio-net", dependencies: ["NetDevice"],
                          path: "Sources/virtio-net", exclude: ["Device", "Shape"], linkerSettings: staticRelease),
        .target(name: "EntropyDeviceShape", dependencies: ["IPC"], path: "Sources/virtio-rng/Shape"),
        .target(name: "EntropyDevice", dependencies: ["EntropyDeviceShape", "VirtioCore", "GuestRAM", "IPC", "LinuxSystem", logging],
                path: "Sources/virtio-rng/Device"),
        .executableTarget(name: "virtio-rng", dependencies: ["EntropyDevice"],
                          path: "Sources/virtio-rng", exclude: ["Device", "Shape"], linkerSettings: staticRelease),
        .target(name: "VmctlCommands", dependencies: ["IPC", "Configuration", "LinuxSystem", "DiskFormats", "BlockDevice", argumentParser],
                path: "Sources/vmctl/Commands"),
        // vmctl too (a static PIE, as vm): every `vmctl receive` or `send` a user times
        // includes its start, 9 ms here with shared libraries, 6.4 ms without.
        .executableTarget(name: "vmctl", dependencies: ["VmctlCommands"], path: "Sources/vmctl", exclude: ["Commands"],
                          linkerSettings: staticReleaseWithArgumentParser),

        .testTarget(name: "SharedTests", dependencies: [
            "LinuxSystem", "MemorySlots", "GuestRAM", "IPC", "Configuration", "BootImage", "VirtioCore", "VirtioTestSupport", "CLinux",
            "Snapshot",
        ]),
        .testTarget(name: "VMTests", dependencies: ["VMCore", "GuestRAM", "MemorySlots", "IPC", "CKVM"]),
        .testTarget(name: "VmdTests", dependencies: ["VMDaemon", "LinuxSystem", "IPC"]),
        .testTarget(name: "VmctlTests", dependencies: ["VmctlCommands", "IPC"]),
        .testTarget(name: "IntegrationTests", dependencies: ["LinuxSystem", "IPC", "CLinux", "MemorySlots"]),
        .testTarget(name: "VirtioRngTests", dependencies: ["EntropyDevice", "EntropyDeviceShape", "IPC", "VirtioCore", "GuestRAM", "MemorySlots", "LinuxSystem", logging]),
        .testTarget(name: "VirtioBlkTests", dependencies: ["BlockDevice", "BlockDeviceShape", "DiskFormats", "IPC", "VirtioCore", "VirtioTestSupport", "GuestRAM", "MemorySlots", "LinuxSystem", "CLinux", "CURing", "CZstd"]),
        .testTarget(
            name: "VirtioNetTests",
            dependencies: ["NetDevice", "NetDeviceShape", "IPC", "VirtioCore", "VirtioTestSupport", "GuestRAM", "MemorySlots", "LinuxSystem", "CLinux", logging]
        ),
    ],
    swiftLanguageModes: [.v5]
)

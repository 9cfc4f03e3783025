import BlockDeviceShape
import EntropyDeviceShape
import Glibc
import NetDeviceShape
import CLinux
import Logging
import Configuration
import IPC
import LinuxSystem
import MemorySlots

/// One child process of a VM, as vmd supervises it.
struct VMChild {
    /// "vm", "virtio-blk disk0", ...
    let role: String
    /// "vm", "disk0", "net0", "pager": its key in `vmctl status --json`'s pids.
    let name: String
    /// What its log lines are tagged with: "VM/vm", "VM/disk0", "VM/net0".
    let logTag: String
    let process: ChildProcess
    let channel: Channel
    /// The read end of its stdout and stderr (non-blocking), relayed by `VMInstance`.
    let log: FileDescriptor
}

/// Everything that makes up one VM's processes once started.
struct LaunchedVM {
    let vm: VMChild
    let devices: [VMChild]
    /// A lazy restore's pager (`vm --pager`), and the snapshot it will get once vm asks.
    var pager: VMChild? = nil
    var pagerSnapshot: FileDescriptor? = nil
    /// An incoming migration: the disk images, opened unlocked while the sender still holds
    /// them, to lock once it has stopped (flock on these copies locks the device's files too).
    var unlockedDisks: [(fd: FileDescriptor, exclusive: Bool, path: String)] = []
    /// The cgroup of its processes (nil where the host has none and the VM asks no limit).
    var cgroup: VMCgroup? = nil
    /// The RAM slots' memfds, never mapped here: lent to vm for a send or a migration (to find
    /// the pages the guest ever wrote), so that vm itself keeps no descriptor of guest RAM.
    var ramFiles: [FileDescriptor] = []
    /// What the processes count (vmctl stats).
    var counters: VMCounterPages
    var children: [VMChild] { [vm] + devices + (pager.map { [$0] } ?? []) }
}

/// Starts the processes of one VM (design §1): opens every file first so a bad
/// path fails before anything starts, creates the RAM slots, the eventfds and
/// socketpairs of each device, starts the device processes and the vm process
/// with posix_spawn, and hands each what it needs over its channel.
struct VMLauncher {
    let config: VMConfig
    /// What the configuration's relative paths resolve against.
    let configDirectory: String
    let logger: Logger
    /// Where `local interface` /31s come from, and this VM's first index in it.
    var localPrefix = IPv4Prefix.defaultLocal
    var localInterfaceBase = 0

    /// Offloads asked of every tap, best first: checksum, TSO and USO (Linux 6.2 and later),
    /// then the same without USO, so guests may send large segments on any kernel.
    static let tapOffloads = [VMD_TUN_F_CSUM | VMD_TUN_F_TSO4 | VMD_TUN_F_TSO6 | VMD_TUN_F_USO4 | VMD_TUN_F_USO6,
                              VMD_TUN_F_CSUM | VMD_TUN_F_TSO4 | VMD_TUN_F_TSO6]

    /// Starts the VM's processes with `console` as the guest's serial console (the
    /// caller keeps it across restarts, so an attached console stays attached).
    /// With `snapshot`, vm restores the VM from it instead of booting (the snapshot's shape
    /// must be this configuration's, which vm checks before reading anything else).
    /// `lazy`: RAM is paged in from the snapshot as the guest touches it, by a pager process
    /// started here; the snapshot must then be a regular file.
    /// `incomingMigration`: the snapshot is a live migration's connection (RAM in rounds).
    func launch(console: PseudoTerminal, snapshot: FileDescriptor? = nil, lazy: Bool = false,
                incomingMigration: Bool = false) throws -> LaunchedVM {
        // The same checked opens as `vmd -n`: a FIFO, a directory or a device is refused, never waited on.
        let files = VMPreflight(vm: config, directory: configDirectory)
        let image: FileDescriptor
        if config.bootDevice != nil {
            image = try files.openFirmware()
        } else if let boot = config.boot {
            image = try files.openKernel(boot)
        } else {
            throw VMLaunchError.noBootImage(config.name)
        }
        let kvm = try FileDescriptor.open("/dev/kvm", flags: O_RDWR)
        let initrd = try config.initrd.map { try files.openBootFile($0, option: "initrd") }
        let disks = try config.disks.map { disk in
            try DiskImage.open(disk, resolvedPath: files.resolve(disk.path), lock: !incomingMigration)
        }
        let unlockedDisks = try !incomingMigration ? [] : disks.flatMap { disk in
            try disk.chain.enumerated().map { index, image in
                (fd: try image.fd.duplicate(), exclusive: index == 0 && !disk.config.readOnly, path: image.path)
            }
        }
        try config.interfaces.forEach(files.checkSwitch)
        let nics = try config.interfaces.enumerated().map { index, interface in try openInterface(interface, index: index) }
        let slots = try MemorySlot.ramSlots(ramBytes: config.memoryBytes, vmName: config.name)
        let cgroup = try VMCgroup.make(vmName: config.name, limits: try VMLauncher.cgroupLimits(config, disks: disks))

        var started: [VMChild] = []
        // Each process joins the VM's cgroup before it is sent anything that makes it touch
        // guest RAM (charged to the cgroup that first touches a page): it starts there where
        // the kernel can, else it is moved in. Its first messages, the RAM's descriptors and
        // /dev/kvm, may wait in its socket before that: mapping RAM touches no page.
        func join(_ child: VMChild) throws {
            started.append(child)
            if !child.process.startedInCgroup { try cgroup?.add(child.process.pid) }
        }
        func spawn(_ executable: String, role: String, logName: String, extraArguments: [String] = [],
                   firstMessages: (Channel) throws -> Void = { _ in }) throws -> VMChild {
            try VMLauncher.spawn(executable, role: role, logName: logName, vmName: config.name, extraArguments: extraArguments,
                                 cgroup: cgroup?.directory, firstMessages: firstMessages)
        }
        var counters = VMCounterPages(vcpus: config.cpus)
        // A device's first message (SHAREMEM), queued before it starts.
        let shareRAM = { (channel: Channel) in
            try channel.send(DeviceSetupCommand.shareMemory(slots: slots.map(\.descriptor), memfds: slots.map(\.memfd)))
        }
        do {
            // vm first: it starts up (exec, the runtime, its sandbox) while the devices are
            // spawned, and is sent its part once they are.
            let vm = try spawn("vm", role: "vm", logName: "vm") { channel in
                try channel.send(VMCommand.shareMemory(slots: slots.map(\.descriptor), memfds: slots.map(\.memfd)))
                try channel.send(VMCommand.kvm(kvm))
            }
            try join(vm)
            var attachments: [(VirtioAttachment, DeviceWiring)] = []
            for (index, disk) in disks.enumerated() {
                let name = "disk\(index)"
                let shape = DeviceShape.block(queues: config.cpus)
                let (vmSide, deviceSide) = try VMLauncher.wiring(for: shape)
                let child = try spawn("virtio-blk", role: "virtio-blk \(name)", logName: name, firstMessages: shareRAM)
                try join(child)
                counters.disks.append(.init(name: name, backing: disk.path, page: try VMLauncher.handCounters(
                    to: child, slots: BlockCounter.pageSlots, name: "vmd-\(config.name)-\(name)-counters")))
                let serial = String("\(config.name)-\(name)".utf8.prefix(20))!
                try child.channel.send(DeviceSetupCommand.block(
                    BlockDeviceSetup(name: name, readOnly: disk.config.readOnly, serial: serial, formats: disk.chain.map(\.format),
                                     rateLimit: disk.config.rateLimit),
                    images: disk.chain.map(\.fd), wiring: deviceSide))
                attachments.append((VirtioAttachment(shape: shape, name: name), vmSide))
                let backing = disk.chain.dropFirst().map { " over \($0.path) (\($0.format))" }.joined()
                let limit = disk.config.rateLimit.isUnlimited ? "" : ", limited to \(disk.config.rateLimit)"
                logger.info("\(name): \(disk.path) (\(disk.config.format), \(disk.sizeBytes) bytes, \(shape.queueCount) queues\(disk.config.readOnly ? ", read-only" : "")\(limit))\(backing) served by pid \(child.process.pid)")
            }

            for (index, nic) in nics.enumerated() {
                let name = "net\(index)"
                let shape = DeviceShape.network(queuePairs: nic.tap.queues.count)
                let (vmSide, deviceSide) = try VMLauncher.wiring(for: shape)
                let child = try spawn("virtio-net", role: "virtio-net \(name)", logName: name, firstMessages: shareRAM)
                try join(child)
                counters.interfaces.append(.init(name: name, backing: nic.tap.name, page: try VMLauncher.handCounters(
                    to: child, slots: NetCounter.pageSlots, name: "vmd-\(config.name)-\(name)-counters")))
                try child.channel.send(DeviceSetupCommand.network(
                    NetworkDeviceSetup(name: name, mac: nic.mac, localGuestAddress: nic.local?.guest, localHostAddress: nic.local?.host,
                                       tapOffloads: nic.offloads, rateLimit: config.interfaces[index].rateLimit),
                    taps: nic.tap.queues, wiring: deviceSide))
                attachments.append((VirtioAttachment(shape: shape, name: name), vmSide))
                let local = nic.local.map { " local \(LocalSubnet.format($0.host)) ↔ guest \(LocalSubnet.format($0.guest))" } ?? ""
                let limit = config.interfaces[index].rateLimit
                let limited = limit.isUnlimited ? "" : ", limited each way to \(limit)"
                let pairs = nic.tap.queues.count > 1 ? ", \(nic.tap.queues.count) queue pairs" : ""
                logger.info("\(name): \(nic.tap.name)\(pairs) mac \(nic.mac.map { String($0, radix: 16) }.joined(separator: ":"))\(local)\(limited) served by pid \(child.process.pid)")
            }

            if config.entropy {
                let name = "rng0"
                let (vmSide, deviceSide) = try VMLauncher.wiring(for: .entropy)
                let child = try spawn("virtio-rng", role: "virtio-rng \(name)", logName: name, firstMessages: shareRAM)
                try join(child)
                try child.channel.send(DeviceSetupCommand.entropy(EntropyDeviceSetup(name: name), wiring: deviceSide))
                attachments.append((VirtioAttachment(shape: .entropy, name: name), vmSide))
                logger.info("\(name): entropy served by pid \(child.process.pid)")
            }

            var pager: VMChild?
            var pagerSnapshot: FileDescriptor?
            if let snapshot, lazy {
                guard (try? snapshot.fileSize()) != nil, lseek(snapshot.rawValue, 0, SEEK_CUR) >= 0 else {
                    throw VMLaunchError.lazyNeedsFile
                }
                pagerSnapshot = try snapshot.duplicate()
                let child = try spawn("vm", role: "pager", logName: "pager", extraArguments: ["--pager"])
                try join(child)
                pager = child
            }
            for (attachment, wiring) in attachments {
                try vm.channel.send(VMCommand.attachDevice(attachment, wiring: wiring))
            }
            let (exits, exitsFile) = try CounterPage.create(slots: VcpuExitCounter.pageSlots(vcpus: config.cpus),
                                                            name: "vmd-\(config.name)-vm-counters")
            try vm.channel.send(VMCommand.counters(exitsFile))
            exitsFile.close()
            counters.exits = exits
            let request = BootRequest(name: config.name, vcpus: config.cpus, cmdline: config.cmdline, firmware: config.bootDevice != nil,
                                      lazyRestore: snapshot != nil && lazy, incomingMigration: snapshot != nil && incomingMigration)
            try vm.channel.send(VMCommand.boot(request, kernel: image, initrd: initrd, console: console.device,
                                               snapshot: snapshot))
            // Each was started without waiting for its exec, so that they exec side by side.
            for child in started { try child.process.confirmExec() }
            logger.info("vm \"\(config.name)\" started as pid \(vm.process.pid), console \(console.devicePath)")
            // vmd never maps guest RAM and keeps none of the children's descriptors but the
            // RAM memfds (lent to vm for a send) and, for an incoming migration, the disks
            // to lock (the locked disk fds close here; the device processes hold their own).
            return LaunchedVM(vm: vm, devices: started.filter { $0.role != "pager" && $0.role != "vm" }, pager: pager,
                              pagerSnapshot: pagerSnapshot, unlockedDisks: unlockedDisks,
                              cgroup: cgroup, ramFiles: try slots.map { try $0.memfd.duplicate() }, counters: counters)
        } catch {
            // A child that could not run its program says more than a failed send to it.
            var cause = error
            for child in started {
                do { try child.process.confirmExec() } catch let execFailure { cause = execFailure; break }
            }
            started.forEach { $0.process.terminate() }
            cgroup?.remove()
            throw cause
        }
    }

    /// The VM's cgroup limits, with each disk's `io limit` on the disk holding its image.
    static func cgroupLimits(_ config: VMConfig, disks: [DiskImage]) throws -> CgroupLimits {
        var limits = CgroupLimits(config: config)
        for disk in disks where !disk.config.ioLimit.isUnlimited {
            guard let top = disk.chain.first, let device = BlockDeviceNumber(holding: top.fd) else {
                throw VMLaunchError.ioLimitWithoutBlockDevice(disk.path)
            }
            limits.addIO(disk.config.ioLimit, device: device)
        }
        return limits
    }

    struct OpenedInterface {
        let tap: TapDevice
        let mac: [UInt8]
        let local: LocalSubnet?
        let offloads: UInt32
    }

    /// Creates the tap of one `interface` or `local interface` line.
    private func openInterface(_ interface: InterfaceConfig, index: Int) throws -> OpenedInterface {
        // One queue pair per vCPU, as for a disk's queues (the guest's driver puts one per CPU in use).
        let (tap, offloads) = try TapDevice.create(name: interface.name, offloads: VMLauncher.tapOffloads,
                                                   queueCount: DeviceShape.netQueuePairs(vcpus: config.cpus))
        let mac = interface.lladdr ?? InterfaceMAC.guest(vmName: config.name, index: index)
        var local: LocalSubnet?
        if interface.local {
            guard let subnet = LocalSubnet(prefix: localPrefix, index: localInterfaceBase + index) else {
                throw VMLaunchError.localPrefixExhausted(localPrefix.description)
            }
            // The guest's gateway: the same address on every start, as the guest's own.
            try tap.setHardwareAddress(InterfaceMAC.tap(forGuest: mac))
            try tap.setAddress(subnet.host, prefixLength: LocalSubnet.prefixLength)
            local = subnet
        }
        if let bridge = interface.switchName { try tap.addToBridge(bridge) }
        return OpenedInterface(tap: tap, mac: mac, local: local, offloads: offloads)
    }

    enum VMLaunchError: Error, CustomStringConvertible {
        case localPrefixExhausted(String)
        case noBootImage(String)
        case lazyNeedsFile
        case ioLimitWithoutBlockDevice(String)
        var description: String {
            switch self {
            case .ioLimitWithoutBlockDevice(let path):
                "io limit of disk \(path): the image is on a file system with no block device (tmpfs, overlayfs, NFS), which io.max cannot limit"
            case .lazyNeedsFile: "a lazy restore (receive -l) needs the snapshot in a regular file, not a pipe"
            case .localPrefixExhausted(let prefix): "local prefix \(prefix) has no /31 left for this interface"
            case .noBootImage(let name): "vm \(name) has no boot image"
            }
        }
    }

    /// The vm-side and device-side descriptors of one device's channels and eventfds:
    /// a kick and a call eventfd for each queue the device's shape declares.
    static func wiring(for shape: DeviceShape) throws -> (vm: DeviceWiring, device: DeviceWiring) {
        let queueCount = Int(shape.queueCount)
        let (transportVM, transportDevice) = try FileDescriptor.socketPair()
        let (eventsVM, eventsDevice) = try FileDescriptor.socketPair()
        let kicks = try (0..<queueCount).map { _ in try FileDescriptor.eventFD() }
        let calls = try (0..<queueCount).map { _ in try FileDescriptor.eventFD() }
        return (DeviceWiring(transport: transportVM, events: eventsVM, kicks: kicks, calls: calls),
                DeviceWiring(transport: transportDevice, events: eventsDevice, kicks: kicks, calls: calls))
    }

    /// Makes a counter page for `child`, sends it and keeps only the read-only mapping.
    static func handCounters(to child: VMChild, slots: Int, name: String) throws -> CounterPage {
        let (page, memfd) = try CounterPage.create(slots: slots, name: name)
        defer { memfd.close() }
        try child.channel.send(DeviceSetupCommand.counters(memfd))
        return page
    }

    /// `cgroup`: the VM's cgroup directory, which the child starts in where the kernel can.
    /// Returns before the child has exec'd its program: the caller confirms that
    /// (`ChildProcess.confirmExec`) once it has started the VM's other processes.
    /// `firstMessages`: sent before the child exists (the socket holds them, descriptors
    /// included), so that it finds them as soon as it reads instead of waiting for vmd to
    /// be scheduled again after the clone, which on a busy host may be milliseconds later.
    static func spawn(_ executable: String, role: String, logName: String, vmName: String,
                      extraArguments: [String] = [], cgroup: FileDescriptor? = nil,
                      firstMessages: (Channel) throws -> Void = { _ in }) throws -> VMChild {
        let (parentEnd, childEnd) = try Channel.pair()
        try firstMessages(parentEnd)
        let log = try FileDescriptor.pipe()
        try log.read.setNonBlocking(true)
        let process = try ChildProcess(executable: try siblingExecutable(executable), arguments: [vmName] + extraArguments,
                                       channel: childEnd.socket, log: log.write, cgroup: cgroup, waitForExec: false)
        childEnd.socket.close()
        log.write.close()
        return VMChild(role: role, name: logName, logTag: "\(vmName)/\(logName)", process: process, channel: parentEnd, log: log.read)
    }
}

import Glibc
import Logging
import Shared

/// One child process of a VM, as vmd supervises it.
struct VMChild {
    /// "vm", "virtio-blk disk0", ...
    let role: String
    let process: ChildProcess
    let channel: Channel
}

/// Everything that makes up one VM's processes once started.
struct LaunchedVM {
    let vm: VMChild
    let devices: [VMChild]
    let console: PseudoTerminal
    var children: [VMChild] { [vm] + devices }
}

/// Starts the processes of one VM (design §1): opens every file first so a bad
/// path fails before anything starts, creates the RAM slots, the eventfds and
/// socketpairs of each device, starts the device processes and the vm process
/// with posix_spawn, and hands each what it needs over its channel.
struct VMLauncher {
    let config: VMConfig
    let kernelPath: String
    let configDirectory: String
    let logger: Logger

    func launch() throws -> LaunchedVM {
        let kernel = try FileDescriptor.open(kernelPath, flags: O_RDONLY)
        let kvm = try FileDescriptor.open("/dev/kvm", flags: O_RDWR)
        let disks = try config.disks.map { disk in
            try DiskImage.open(disk, resolvedPath: disk.path.hasPrefix("/") ? disk.path : configDirectory + "/" + disk.path)
        }
        let slots = try MemorySlot.ramSlots(ramBytes: config.memoryBytes, vmName: config.name)
        let console = try PseudoTerminal()

        var started: [VMChild] = []
        do {
            var attachments: [(VirtioAttachment, DeviceWiring)] = []
            for (index, disk) in disks.enumerated() {
                let name = "disk\(index)"
                let (vmSide, deviceSide) = try VMLauncher.wiring(queueCount: 1)
                let child = try VMLauncher.spawn("virtio-blk", role: "virtio-blk \(name)", vmName: config.name)
                started.append(child)
                try child.channel.send(DeviceSetupCommand.shareMemory(slots: slots.map(\.descriptor), memfds: slots.map(\.memfd)))
                let serial = String("\(config.name)-\(name)".utf8.prefix(20))!
                try child.channel.send(DeviceSetupCommand.block(
                    BlockDeviceSetup(name: name, readOnly: disk.config.readOnly, serial: serial),
                    disk: disk.fd, wiring: deviceSide))
                attachments.append((VirtioAttachment(type: .block, name: name, queueCount: 1), vmSide))
                logger.info("\(name): \(disk.path) (\(disk.sizeBytes) bytes\(disk.config.readOnly ? ", read-only" : "")) served by pid \(child.process.pid)")
            }

            let vm = try VMLauncher.spawn("vm", role: "vm", vmName: config.name)
            started.append(vm)
            try vm.channel.send(VMCommand.shareMemory(slots: slots.map(\.descriptor), memfds: slots.map(\.memfd)))
            for (attachment, wiring) in attachments {
                try vm.channel.send(VMCommand.attachDevice(attachment, wiring: wiring))
            }
            try vm.channel.send(VMCommand.boot(BootRequest(name: config.name, vcpus: config.cpus, cmdline: config.cmdline),
                                               kvm: kvm, kernel: kernel, console: console.device))
            logger.info("vm \"\(config.name)\" started as pid \(vm.process.pid), console \(console.devicePath)")
            // vmd never maps guest RAM and keeps none of the children's descriptors
            // (the locked disk fds close here too; the device processes hold their own).
            return LaunchedVM(vm: vm, devices: Array(started.dropLast()), console: console)
        } catch {
            started.forEach { $0.process.terminate() }
            throw error
        }
    }

    /// The vm-side and device-side descriptors of one device's channels and eventfds.
    static func wiring(queueCount: Int) throws -> (vm: DeviceWiring, device: DeviceWiring) {
        let (transportVM, transportDevice) = try FileDescriptor.socketPair()
        let (eventsVM, eventsDevice) = try FileDescriptor.socketPair()
        let kicks = try (0..<queueCount).map { _ in try FileDescriptor.eventFD() }
        let calls = try (0..<queueCount).map { _ in try FileDescriptor.eventFD() }
        return (DeviceWiring(transport: transportVM, events: eventsVM, kicks: kicks, calls: calls),
                DeviceWiring(transport: transportDevice, events: eventsDevice, kicks: kicks, calls: calls))
    }

    static func spawn(_ executable: String, role: String, vmName: String) throws -> VMChild {
        let (parentEnd, childEnd) = try Channel.pair()
        let process = try ChildProcess(executable: try siblingExecutable(executable), arguments: [vmName], channel: childEnd.socket)
        childEnd.socket.close()
        return VMChild(role: role, process: process, channel: parentEnd)
    }
}

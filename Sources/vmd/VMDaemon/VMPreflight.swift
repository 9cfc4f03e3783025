import Glibc
import BootImage
import Configuration
import IPC
import LinuxSystem

/// The files and names a VM's configuration refers to, checked as starting it checks
/// them, so that `vmd -n` passes only what can start: the owner resolves, the kernel
/// and initrd are regular files (the kernel an ELF or a bzImage), each disk opens as
/// its VM would use it and is a regular file or a block device of whole sectors, and
/// each `switch` is an interface of this host. Locks are not taken: a running daemon's
/// own VMs hold them.
struct VMPreflight {
    let vm: VMConfig
    /// What relative paths resolve against (the configuration file's directory).
    let directory: String

    struct Failure: Error, CustomStringConvertible {
        let location: ConfigLocation
        let message: String
        var description: String { "\(location): \(message)" }
    }

    func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }

    /// Every problem found, in file order of the options.
    func problems() -> [Error] {
        var found: [Error] = []
        do { _ = try ResolvedOwner.resolve(vm.owner, at: vm.location(of: "owner")) } catch { found.append(error) }
        if let boot = vm.boot {
            do { _ = try openKernel(boot) } catch { found.append(error) }
        }
        if vm.bootDevice != nil {
            do { _ = try openFirmware() } catch { found.append(error) }
        }
        if let initrd = vm.initrd {
            do { _ = try openBootFile(initrd, option: "initrd") } catch { found.append(error) }
        }
        for disk in vm.disks {
            do { _ = try DiskImage.open(disk, resolvedPath: resolve(disk.path), lock: false) } catch { found.append(error) }
        }
        for interface in vm.interfaces {
            do { try checkSwitch(of: interface) } catch { found.append(error) }
        }
        return found
    }

    /// The bridge an `interface` joins exists (before a tap is made for it).
    func checkSwitch(of interface: InterfaceConfig) throws {
        if let bridge = interface.switchName, if_nametoindex(bridge) == 0 {
            throw Failure(location: interface.location, message: "switch \(bridge): no such interface on this host")
        }
    }

    /// The kernel, checked to be a format the loader takes before any process starts.
    func openKernel(_ path: String) throws -> FileDescriptor {
        let fd = try openBootFile(path, option: "boot")
        let head = (try? fd.pread(count: BootImageFormat.bytesNeeded, offset: 0)) ?? []
        guard BootImageFormat.recognizes(head) else {
            throw Failure(location: vm.location(of: "boot"), message: "boot \(resolve(path)): the kernel image is not an ELF file or a bzImage")
        }
        return fd
    }

    /// The BIOS for `boot device`, checked to be a size vm can place.
    func openFirmware() throws -> FileDescriptor {
        let path = vm.firmware ?? FirmwareImageLayout.defaultPath
        let option = vm.firmware != nil ? "firmware" : "boot"
        let fd = try openBootFile(path, option: option)
        do {
            _ = try FirmwareImageLayout(size: Int(try fd.fileSize()))
        } catch {
            let hint = vm.firmware == nil ? " (the seabios package installs it)" : ""
            throw Failure(location: vm.location(of: option), message: "BIOS \(resolve(path)): \(error)\(hint)")
        }
        return fd
    }

    /// A regular file named by `option`, opened read-only without blocking.
    func openBootFile(_ path: String, option: String) throws -> FileDescriptor {
        do {
            return try RegularFile.open(resolve(path)).0
        } catch {
            throw Failure(location: vm.location(of: option), message: "\(option) \(resolve(path)): \(error)")
        }
    }
}

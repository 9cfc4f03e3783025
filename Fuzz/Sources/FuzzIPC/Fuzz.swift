// Fuzz target 4: the IPC decoder, `IPCFrame.decode` (Sources/Shared/IPC), for every
// ChannelMessage type, with 0 to 3 eventfds attached as a hostile peer would send them.
//
// Input: byte 0 picks the message type (low 3 bits), the number of descriptors
// (bits 3-4) and the path (bit 5: through a real socketpair with SCM_RIGHTS and
// Channel.receiveRaw, else straight to IPCFrame.decode); the rest is the frame.
// Bit 6 makes the frame header right (magic, descriptor count, payload length), so
// the fuzzer spends its time in the payload decoders.
//
// Oracles: no crash; a decoded message re-encodes to the same bytes with the same
// descriptors; and no descriptor leaks: after each input every eventfd we made is
// closed again (F_GETFD fails), and every 4096 inputs the process's fd count is
// compared with the count at the start.
import FuzzKit
import Glibc
@testable import IPC
@testable import LinuxSystem
@testable import MemorySlots

@_cdecl("FuzzIPC_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

private nonisolated(unsafe) var runs = 0
private nonisolated(unsafe) var baselineDescriptors: [String]?
private nonisolated(unsafe) var channels: (Channel, Channel)?

/// What is open in this process: "fd -> target" for each descriptor.
private func openDescriptors() -> [String] {
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    var result: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name != ".", name != ".." else { continue }
        var target = [CChar](repeating: 0, count: 256)
        let count = readlink("/proc/self/fd/" + name, &target, 255)
        result.append(name + " -> " + (count > 0 ? String(decoding: target.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"))
    }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if channels == nil {
        channels = try! Channel.pair()
        for channel in [channels!.0, channels!.1] { try! channel.socket.setNonBlocking(true) }
    }

    var input = FuzzInput(data, size)
    let control = input.byte()
    var frame = input.rest()
    let descriptorCount = Int(control >> 3) & 3
    if control & 0x40 != 0 && frame.count >= IPCFrame.headerSize {
        var header = WireWriter()
        header.write(IPCFrame.magic)
        header.write(UInt16(frame[4]) | UInt16(frame[5]) << 8)  // the input's tag
        header.write(UInt16(descriptorCount))
        header.write(UInt32(frame.count - IPCFrame.headerSize))
        frame.replaceSubrange(0..<IPCFrame.headerSize, with: header.bytes)
    }

    var raw: [Int32] = []
    do {
        var descriptors: [FileDescriptor] = []
        for _ in 0..<descriptorCount {
            let eventfd = try! FileDescriptor.eventFD()
            raw.append(eventfd.rawValue)
            descriptors.append(eventfd)
        }
        if control & 0x20 != 0 {
            let (sender, receiver) = channels!
            do {
                try sender.sendRaw(frame, descriptors: raw)
            } catch {
                // EMSGSIZE and the like: nothing was sent.
                descriptors = []
                decodeAll(control, frame, [])
                return finish(raw)
            }
            descriptors = []  // the kernel holds copies now; ours close here
            guard let (bytes, received) = try? receiver.receiveRaw() else { return finish(raw) }
            fuzzCheck(bytes == frame, "datagram changed in transit")
            received.forEach { raw.append($0.rawValue) }
            decodeAll(control, bytes, received)
        } else {
            decodeAll(control, frame, descriptors)
        }
    }
    return finish(raw)
}

/// Checks that every descriptor this input made is closed, and now and then that none leaked.
private func finish(_ raw: [Int32]) -> Int32 {
    for fd in raw {
        fuzzCheck(fcntl(fd, F_GETFD) == -1, "fd \(fd) still open after the input was handled: leaked")
    }
    runs += 1
    // The baseline is taken after the first 4096 inputs, once libFuzzer has opened what it keeps.
    // Only eventfds count: every descriptor an input sends is one (and so is every copy the
    // kernel hands back), while the sanitizer's symbolizer opens pipes whenever libFuzzer
    // prints a NEW_FUNC line, which is no leak of ours.
    if runs % 4096 == 0 {
        let now = openDescriptors().filter { $0.contains("[eventfd]") }
        if let baselineDescriptors {
            fuzzCheck(now.count <= baselineDescriptors.count,
                      "\(now.count) fds open, \(baselineDescriptors.count) after warm-up: now \(now), then \(baselineDescriptors)")
        } else {
            baselineDescriptors = now
        }
    }
    return 0
}

private func decodeAll(_ control: UInt8, _ bytes: [UInt8], _ descriptors: [FileDescriptor]) {
    switch control & 7 {
    case 0: decode(VMCommand.self, bytes, descriptors)
    case 1: decode(VMEvent.self, bytes, descriptors)
    case 2: decode(Numbered<TransportRequest>.self, bytes, descriptors)
    case 3: decode(Numbered<TransportReply>.self, bytes, descriptors)
    case 4: decode(DeviceEvent.self, bytes, descriptors)
    case 5: decode(DeviceSetupCommand.self, bytes, descriptors)
    case 6: decode(ControlRequest.self, bytes, descriptors)
    default: decode(ControlReply.self, bytes, descriptors)
    }
}

private func decode<Message: ChannelMessage>(_ type: Message.Type, _ bytes: [UInt8], _ descriptors: [FileDescriptor]) {
    let message: Message
    do {
        message = try IPCFrame.decode(type, bytes: bytes, descriptors: descriptors)
    } catch {
        _ = "\(error)"
        return
    }
    // Encoding is the inverse of decoding: same bytes, same descriptors in the same order.
    // A decoded frame fits in a frame, so it encodes again.
    guard let (encoded, encodedDescriptors) = try? IPCFrame.encode(message) else {
        fuzzCheck(false, "\(Message.self) \(message) decoded from a frame but does not encode into one")
        return
    }
    fuzzCheck(encoded == bytes, "\(Message.self) \(message) re-encodes to different bytes")
    fuzzCheck(encodedDescriptors.map(ObjectIdentifier.init) == descriptors.map(ObjectIdentifier.init),
              "\(Message.self) re-encodes with other descriptors")
}

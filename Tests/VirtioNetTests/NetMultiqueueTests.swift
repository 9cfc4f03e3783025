import Glibc
import IPC
import Logging
import NetDeviceShape
import XCTest
@testable import GuestRAM
@testable import LinuxSystem
@testable import MemorySlots
@testable import NetDevice
@testable import VirtioCore
@testable import VirtioTestSupport

/// A device of several queue pairs (VIRTIO_NET_F_MQ, virtio 1.2 §5.1.6.5.5) over fake tap
/// queues: the driver's queues, the control queue, and what the device did to each tap queue.
final class MultiqueueRig {
    static let ramSize: UInt64 = 8 << 20
    let memory: GuestMemory
    let backends: [FakeBackend]
    let device: NetVirtioDevice
    /// Per queue index (2N + 1 of them): the driver's side of its ring.
    var queues: [VirtqueueDriver]
    let calls: [FileDescriptor]
    let features: UInt64
    /// What the device asked of the tap side, in order: "attach 1", "detach 2", "resume 1", "stop 2".
    final class TapLog {
        var entries: [String] = []
        var failAttach = false
        /// Only this pair's attach fails (nil: every pair's, when `failAttach`).
        var failingPair: Int?
    }
    private let tapLogBox: TapLog
    var tapLog: [String] {
        get { tapLogBox.entries }
        set { tapLogBox.entries = newValue }
    }
    var failAttach: Bool {
        get { tapLogBox.failAttach }
        set { tapLogBox.failAttach = newValue }
    }
    var failingPair: Int? {
        get { tapLogBox.failingPair }
        set { tapLogBox.failingPair = newValue }
    }
    private var nextData: UInt64 = 0x10_0000

    init(pairs: Int, features extra: UInt64 = VirtioNetFeature.controlQueue | VirtioNetFeature.multiqueue,
         activate: Bool = true) throws {
        memory = try GuestMemory.anonymous([SlotDescriptor(guestBase: GuestAddress(0), size: Self.ramSize)])
        backends = (0..<pairs).map { _ in FakeBackend() }
        let models = try backends.map { try NetDeviceModel(mac: testMAC, offloads: .all, backend: $0) }
        let log = TapLog()
        device = NetVirtioDevice(pairs: models, guestLog: RateLimitedLog(logger: Logger(label: "test"))) { log.entries.append("resume \($0)") }
        tapLogBox = log
        features = VirtioFeature.version1 | VirtioFeature.eventIndex | extra
        let queueCount = Int(DeviceShape.network(queuePairs: pairs).queueCount)
        let ram = memory
        queues = try (0..<queueCount).map {
            try VirtqueueDriver(memory: ram, base: GuestAddress(0x1_0000 + UInt64($0) * 0x1_0000), size: 64)
        }
        calls = try (0..<queueCount).map { _ in try FileDescriptor.eventFD() }
        device.stopTap = { log.entries.append("stop \($0)") }
        device.setTapQueueAttached = { pair, attached in
            if log.failAttach && attached && (log.failingPair ?? pair) == pair { throw SystemError("TUNSETQUEUE(attach)", errno: EINVAL) }
            log.entries.append("\(attached ? "attach" : "detach") \(pair)")
        }
        if activate { try self.activate() }
    }

    func activate() throws {
        let rings = try queues.map { SplitVirtqueue(configuration: try $0.configuration(), memory: memory, features: features) }
        try device.activate(features: features, queues: ActiveQueues(memory: memory, features: features, queues: rings, calls: calls))
    }

    func place(_ bytes: [UInt8], extra: Int = 0) throws -> GuestAddress {
        let address = GuestAddress(nextData)
        try memory.fill(0xEE, at: address, count: UInt64(bytes.count + extra) + 64)
        try memory.writeBytes(bytes, at: address)
        nextData += (UInt64(bytes.count + extra) + 64 + 15) & ~15
        return address
    }

    var controlQueue: Int { queues.count - 1 }

    /// Sends one command on the control queue (its readable bytes, then a writable ack byte
    /// holding 0xEE) and returns the ack byte and the used length.
    func control(_ command: [UInt8], ackLength: UInt32 = 1) throws -> (ack: UInt8, length: UInt32) {
        var buffers = [VirtqueueDriver.Buffer]()
        if !command.isEmpty { buffers.append(.init(address: try place(command), length: UInt32(command.count), writable: false)) }
        let ack = try place([0xEE])
        if ackLength > 0 { buffers.append(.init(address: ack, length: ackLength, writable: true)) }
        try queues[controlQueue].add(buffers)
        try queues[controlQueue].publish()
        try device.queueNotified(controlQueue)
        let used = try XCTUnwrap(try queues[controlQueue].popUsed(), "the control chain is used")
        return (try memory.readBytes(at: ack, count: 1)[0], used.length)
    }

    static func setPairs(_ count: Int) -> [UInt8] { [4, 0, UInt8(count & 0xFF), UInt8(count >> 8)] }

    /// One transmit chain on queue `index`, kicked.
    func send(_ frame: [UInt8], onQueue index: Int) throws {
        let packet = VirtioNetHeader().bytes + frame
        try queues[index].add([.init(address: try place(packet), length: UInt32(packet.count), writable: false)])
        try queues[index].publish()
        try device.queueNotified(index)
    }

    /// `count` receive chains of 2048 bytes on receive queue `index`, kicked.
    func postReceive(_ count: Int, onQueue index: Int) throws {
        for _ in 0..<count {
            try queues[index].add([.init(address: try place([], extra: 2048), length: 2048, writable: true)])
        }
        try queues[index].publish()
        try device.queueNotified(index)
    }
}

final class NetMultiqueueTests: XCTestCase {
    private let mq = VirtioNetFeature.controlQueue | VirtioNetFeature.multiqueue

    /// §5.1.2: 2N + 1 queues, MQ and CTRL_VQ offered, max_virtqueue_pairs in the config.
    func testADeviceOfFourPairsDescribesItselfAsItsShape() throws {
        let rig = try MultiqueueRig(pairs: 4, activate: false)
        let description = rig.device.description
        XCTAssertTrue(DeviceShape.network(queuePairs: 4).matches(description), "\(description)")
        XCTAssertEqual(description.queueCount, 9)
        XCTAssertEqual(description.features & mq, mq)
        XCTAssertEqual(rig.device.readConfig(offset: 8, size: 2), [4, 0], "le16 max_virtqueue_pairs")
        let single = try MultiqueueRig(pairs: 1, features: 0, activate: false)
        XCTAssertEqual(single.device.description.queueCount, 3)
        XCTAssertEqual(single.device.description.features & mq, VirtioNetFeature.controlQueue,
                       "one pair: the control queue (for announcements), no MQ")
        XCTAssertNotEqual(single.device.description.features & VirtioNetFeature.guestAnnounce, 0)
    }

    /// One pair per vCPU, within 1...16, and the control queue after them.
    func testTheShapeFollowsTheVCPUs() {
        XCTAssertEqual(DeviceShape.network(queuePairs: 1).queueCount, 3)
        XCTAssertEqual(DeviceShape.network(queuePairs: 2).queueCount, 5)
        XCTAssertEqual(DeviceShape.network(queuePairs: 64).queueCount, UInt16(2 * DeviceShape.maximumNetQueuePairs + 1))
        XCTAssertEqual(DeviceShape.netQueuePairs(vcpus: 0), 1)
        XCTAssertEqual(DeviceShape.netQueuePairs(vcpus: 3), 3)
    }

    /// The control queue is at 2N with MQ negotiated, at 2 without (§5.1.2), and absent
    /// without CTRL_VQ.
    func testQueueRolesFollowTheNegotiatedFeatures() {
        let layout = NetQueueLayout(pairs: 4)
        XCTAssertEqual(layout.role(ofQueue: 8, features: mq), .control)
        XCTAssertEqual(layout.role(ofQueue: 7, features: mq), .transmit(pair: 3))
        XCTAssertEqual(layout.role(ofQueue: 6, features: mq), .receive(pair: 3))
        XCTAssertEqual(layout.role(ofQueue: 2, features: VirtioNetFeature.controlQueue), .control)
        XCTAssertEqual(layout.role(ofQueue: 3, features: VirtioNetFeature.controlQueue), .none)
        XCTAssertEqual(layout.role(ofQueue: 2, features: 0), .none)
        XCTAssertEqual(layout.role(ofQueue: 9, features: mq), .none)
        XCTAssertEqual(layout.role(ofQueue: -1, features: mq), .none)
        XCTAssertEqual(NetQueueLayout(pairs: 1).role(ofQueue: 2, features: VirtioNetFeature.controlQueue), .control)
        XCTAssertEqual(NetQueueLayout(pairs: 1).role(ofQueue: 2, features: 0), .none, "a driver without CTRL_VQ")
    }

    /// VQ_PAIRS_SET attaches the tap queues of the pairs put in use and detaches the rest,
    /// each detached queue unwatched first; the ack says OK.
    func testSettingPairsAttachesAndDetachesTapQueues() throws {
        let rig = try MultiqueueRig(pairs: 4)
        XCTAssertEqual(rig.tapLog, [], "activation keeps the first pair alone, as vmd left the tap")
        XCTAssertEqual(try rig.control(MultiqueueRig.setPairs(3)).ack, NetControlCommand.ok)
        XCTAssertEqual(rig.tapLog, ["attach 1", "resume 1", "attach 2", "resume 2"])
        XCTAssertEqual(rig.device.pairsInUse, 3)
        rig.tapLog = []
        let answer = try rig.control(MultiqueueRig.setPairs(1))
        XCTAssertEqual(answer.ack, NetControlCommand.ok)
        XCTAssertEqual(answer.length, 1, "the device wrote one byte, the ack")
        XCTAssertEqual(rig.tapLog, ["stop 1", "detach 1", "stop 2", "detach 2"])
        XCTAssertEqual(rig.device.attached, [true, false, false, false])
    }

    /// Out-of-range pairs, a class not offered, a bad length: ERR, and nothing changes.
    func testCommandsTheDeviceDoesNotTakeAreAnsweredWithAnError() throws {
        let rig = try MultiqueueRig(pairs: 4)
        for command in [MultiqueueRig.setPairs(0), MultiqueueRig.setPairs(5), MultiqueueRig.setPairs(0x8000),
                        [4, 0, 2], [4, 0, 2, 0, 0], [4, 1, 2, 0], [0, 0, 1], [1, 0, 0xAA], [4], Array(repeating: 4, count: 300)] {
            let answer = try rig.control(command)
            XCTAssertEqual(answer.ack, NetControlCommand.error, "\(command.prefix(8))")
            XCTAssertEqual(answer.length, 1)
        }
        XCTAssertEqual(rig.tapLog, [])
        XCTAssertEqual(rig.device.pairsInUse, 1)
    }

    /// A chain with no writable byte cannot be answered: used with length 0, the queue goes on.
    func testAControlChainWithoutAnAckByteIsUsedEmpty() throws {
        let rig = try MultiqueueRig(pairs: 2)
        let answer = try rig.control(MultiqueueRig.setPairs(2), ackLength: 0)
        XCTAssertEqual(answer.length, 0)
        XCTAssertEqual(answer.ack, 0xEE, "nothing written")
        XCTAssertEqual(rig.device.pairsInUse, 1)
        XCTAssertEqual(try rig.control(MultiqueueRig.setPairs(2)).ack, NetControlCommand.ok)
    }

    /// MQ and GUEST_ANNOUNCE are refused without CTRL_VQ (§5.1.3.1), and VQ_PAIRS_SET
    /// without MQ gets ERR.
    func testMultiqueueNeedsTheControlQueue() throws {
        let rig = try MultiqueueRig(pairs: 2, features: VirtioNetFeature.multiqueue, activate: false)
        XCTAssertThrowsError(try rig.activate())
        let announceAlone = try MultiqueueRig(pairs: 2, features: VirtioNetFeature.guestAnnounce, activate: false)
        XCTAssertThrowsError(try announceAlone.activate(), "GUEST_ANNOUNCE needs CTRL_VQ too")
        let noMQ = try MultiqueueRig(pairs: 2, features: VirtioNetFeature.controlQueue, activate: false)
        try noMQ.activate()
        // Without MQ the control queue is queue 2 (§5.1.2).
        try noMQ.queues[2].add([.init(address: try noMQ.place(MultiqueueRig.setPairs(2)), length: 4, writable: false),
                                .init(address: try noMQ.place([0xEE]), length: 1, writable: true)])
        try noMQ.queues[2].publish()
        try noMQ.device.queueNotified(2)
        let used = try XCTUnwrap(try noMQ.queues[2].popUsed())
        XCTAssertEqual(used.length, 1)
        XCTAssertEqual(noMQ.device.pairsInUse, 1)
        XCTAssertEqual(noMQ.tapLog, [], "no tap queue attached for a driver without MQ")
    }

    /// Each pair moves packets through its own tap queue; a pair out of use sends through
    /// the first pair's, since its own is detached.
    func testEachPairUsesItsOwnTapQueue() throws {
        let rig = try MultiqueueRig(pairs: 3)
        XCTAssertEqual(try rig.control(MultiqueueRig.setPairs(2)).ack, NetControlCommand.ok)
        try rig.send(ethernetFrame(60, seed: 1), onQueue: 1)
        try rig.send(ethernetFrame(60, seed: 2), onQueue: 3)
        try rig.send(ethernetFrame(60, seed: 3), onQueue: 5)  // pair 2 is not in use
        XCTAssertEqual(rig.backends[0].sent.map { Array($0.dropFirst(12)) }, [ethernetFrame(60, seed: 1), ethernetFrame(60, seed: 3)])
        XCTAssertEqual(rig.backends[1].sent.map { Array($0.dropFirst(12)) }, [ethernetFrame(60, seed: 2)])
        XCTAssertEqual(rig.backends[2].sent, [])

        rig.backends[1].incoming = [VirtioNetHeader().bytes + ethernetFrame(100, seed: 4)]
        try rig.postReceive(4, onQueue: 2)
        XCTAssertEqual(try rig.device.tapReadable(pair: 1), .tapDrained)
        XCTAssertNotNil(try rig.queues[2].popUsed(), "the packet of pair 1's tap queue went to receiveq2")
        XCTAssertNil(try rig.queues[0].popUsed())
        XCTAssertEqual(rig.device.counters.rxPackets, 1)
        XCTAssertEqual(rig.device.counters.txPackets, 3)
        // A pair out of use reads nothing from its (detached) tap queue.
        rig.backends[2].incoming = [VirtioNetHeader().bytes + ethernetFrame(100)]
        XCTAssertEqual(try rig.device.tapReadable(pair: 2), .outOfBuffers)
        XCTAssertEqual(rig.backends[2].readCalls, 0)
    }

    /// A reset goes back to the first pair alone (§5.1.6.5.5's default).
    func testAResetDetachesEveryPairButTheFirst() throws {
        let rig = try MultiqueueRig(pairs: 3)
        XCTAssertEqual(try rig.control(MultiqueueRig.setPairs(3)).ack, NetControlCommand.ok)
        rig.tapLog = []
        rig.device.reset()
        XCTAssertEqual(rig.tapLog, ["stop 1", "detach 1", "stop 2", "detach 2"])
        XCTAssertEqual(rig.device.pairsInUse, 1)
    }

    /// The pairs in use go into a snapshot and come back; a state the device cannot take is
    /// refused.
    func testThePairsInUseSurviveASnapshot() throws {
        let rig = try MultiqueueRig(pairs: 4)
        XCTAssertEqual(rig.device.savedState, [1, 0], "never empty: a restored device always hears of it")
        XCTAssertEqual(try rig.control(MultiqueueRig.setPairs(3)).ack, NetControlCommand.ok)
        let saved = rig.device.savedState
        XCTAssertEqual(saved, [3, 0])

        let restored = try MultiqueueRig(pairs: 4)
        try restored.device.restore(savedState: saved)
        XCTAssertEqual(restored.device.pairsInUse, 3)
        XCTAssertEqual(restored.device.attached, [true, true, true, false])
        for bad: [UInt8] in [[5, 0], [0, 0], [3], [3, 0, 0]] {
            XCTAssertThrowsError(try restored.device.restore(savedState: bad), "\(bad)")
        }
        let noMQ = try MultiqueueRig(pairs: 4, features: 0)
        XCTAssertThrowsError(try noMQ.device.restore(savedState: [2, 0]), "pairs without MQ negotiated")
        XCTAssertNoThrow(try noMQ.device.restore(savedState: [1, 0]))
    }

    /// A restored device whose driver took GUEST_ANNOUNCE raises VIRTIO_NET_S_ANNOUNCE with a
    /// config interrupt, and clears it on the driver's ANNOUNCE_ACK (§5.1.6.5.4).
    func testARestoredDeviceAsksTheDriverToAnnounceItself() throws {
        let announce = mq | VirtioNetFeature.guestAnnounce
        let rig = try MultiqueueRig(pairs: 2, features: announce)
        var configChanges = 0
        rig.device.configChanged = { configChanges += 1 }
        XCTAssertEqual(rig.device.readConfig(offset: 6, size: 2), [1, 0], "link up, nothing to announce")
        try rig.device.restore(savedState: [2, 0])
        XCTAssertEqual(configChanges, 1)
        XCTAssertEqual(rig.device.readConfig(offset: 6, size: 2), [3, 0], "LINK_UP | ANNOUNCE")
        XCTAssertEqual(try rig.control([3, 0, 1]).ack, NetControlCommand.error, "ANNOUNCE_ACK has no data")
        XCTAssertTrue(rig.device.announcing)
        XCTAssertEqual(try rig.control([3, 0]).ack, NetControlCommand.ok)
        XCTAssertEqual(rig.device.readConfig(offset: 6, size: 2), [1, 0])
        // A reset forgets a pending announcement.
        try rig.device.restore(savedState: [1, 0])
        rig.device.reset()
        XCTAssertFalse(rig.device.announcing)
    }

    /// Without GUEST_ANNOUNCE a restore asks nothing of the driver, and an ack is an error.
    func testNoAnnouncementWithoutGuestAnnounce() throws {
        let rig = try MultiqueueRig(pairs: 2)
        var configChanges = 0
        rig.device.configChanged = { configChanges += 1 }
        try rig.device.restore(savedState: [2, 0])
        XCTAssertEqual(configChanges, 0)
        XCTAssertEqual(rig.device.readConfig(offset: 6, size: 2), [1, 0])
        XCTAssertEqual(try rig.control([3, 0]).ack, NetControlCommand.error)
    }

    /// A tap queue that cannot be attached is an ERR for the driver, not a crash.
    func testAFailedAttachIsAnError() throws {
        let rig = try MultiqueueRig(pairs: 2)
        rig.failAttach = true
        XCTAssertEqual(try rig.control(MultiqueueRig.setPairs(2)).ack, NetControlCommand.error)
        XCTAssertEqual(rig.device.attached, [true, false])
        XCTAssertEqual(rig.device.pairsInUse, 1)

        // A refusal halfway: the queues attached before it are detached again.
        let four = try MultiqueueRig(pairs: 4)
        four.failAttach = true
        four.failingPair = 2
        XCTAssertEqual(try four.control(MultiqueueRig.setPairs(4)).ack, NetControlCommand.error)
        XCTAssertEqual(four.device.attached, [true, false, false, false])
        XCTAssertEqual(four.device.pairsInUse, 1)
        XCTAssertEqual(four.tapLog, ["attach 1", "resume 1", "stop 1", "detach 1"])
    }

    /// The parser, on its own.
    func testControlCommandParsing() {
        XCTAssertEqual(try NetControlCommand.parse([4, 0, 0x10, 0x00]).get(), .setQueuePairs(16))
        XCTAssertEqual(try NetControlCommand.parse([4, 0, 0x00, 0x80]).get(), .setQueuePairs(0x8000))
        XCTAssertEqual(try NetControlCommand.parse([0, 1, 1]).get(), .unsupported(class: 0, command: 1))
        XCTAssertEqual(NetControlCommand.parse([4]), .failure(.shorterThanHeader(1)))
        XCTAssertEqual(NetControlCommand.parse([4, 0, 1]), .failure(.badLength(command: "VQ_PAIRS_SET", length: 1)))
        XCTAssertEqual(try NetControlCommand.parse([3, 0]).get(), .acknowledgeAnnounce)
        XCTAssertEqual(try NetControlCommand.parse([3, 1]).get(), .unsupported(class: 3, command: 1))
    }
}

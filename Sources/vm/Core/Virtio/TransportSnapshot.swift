import IPC
import LinuxSystem
import Snapshot
import VirtioCore

/// Tags of a device section's fields: the transport's registers as the guest left them,
/// and where the device process stood in each queue.
enum TransportStateTag: UInt16 {
    case configSpace = 1, msix, queues, registers, deviceQueues
    /// What the device process keeps beyond its rings (`VirtioDeviceModel.savedState`); a
    /// snapshot without it is of a device that kept nothing.
    case deviceState
}

extension VirtioPCITransport {
    /// The transport and its device, for a snapshot: the VM is paused and the device
    /// quiesced, so no vCPU exit and no request races this.
    func captureState() throws -> StateFields {
        guard case .queueState(let indices, let deviceState) = try client.request(.queueState) else {
            throw SnapshotError.malformed("\(name): the device did not say where its queues stand")
        }
        return state.withLock { state in
            var fields = StateFields()
            fields.append(TransportStateTag.configSpace.rawValue, state.space.bytes)
            fields.append(TransportStateTag.msix.rawValue) { writer in
                writer.write(UInt32(state.msix.count))
                for (entry, pending) in zip(state.msix.entries, state.msix.pendingBits) {
                    writer.write(entry.address); writer.write(entry.data); writer.write(entry.masked); writer.write(pending)
                }
            }
            fields.append(TransportStateTag.queues.rawValue) { writer in
                writer.write(UInt32(state.queues.count))
                for queue in state.queues {
                    writer.write(queue.size); writer.write(queue.vector); writer.write(queue.enabled)
                    writer.write(queue.descriptorTable); writer.write(queue.availableRing); writer.write(queue.usedRing)
                }
            }
            fields.append(TransportStateTag.registers.rawValue) { writer in
                writer.write(state.deviceFeatureSelect); writer.write(state.driverFeatureSelect); writer.write(state.driverFeatures)
                writer.write(state.status); writer.write(state.configGeneration); writer.write(state.configVector)
                writer.write(state.queueSelect); writer.write(state.isr)
            }
            fields.append(TransportStateTag.deviceQueues.rawValue) { writer in
                writer.write(UInt32(indices.count))
                for queue in indices {
                    writer.write(queue != nil); writer.write(queue?.nextAvailable ?? 0); writer.write(queue?.nextUsed ?? 0)
                }
            }
            if !deviceState.isEmpty { fields.append(TransportStateTag.deviceState.rawValue, deviceState) }
            return fields
        }
    }

    /// A live device's activation, as the restored transport will send it (`activate(_:)`).
    struct PendingActivation {
        let features: UInt64
        let queues: [QueueActivation]
        let deviceState: [UInt8]
    }

    /// Puts a saved transport back on a new one of the same shape: the BAR where the guest
    /// put it and interrupts bound as its vectors say. Values are checked as a guest's would
    /// be. For a live device, returns the activation that takes the device process to where
    /// the old one stood: sent once guest RAM is in (the device reads its rings at once).
    func restoreState(_ fields: StateFields) throws -> PendingActivation? {
        let what = "\(name) transport"
        let space = fields.bytes(TransportStateTag.configSpace.rawValue) ?? []
        guard space.count == PCIConfigSpace.size else { throw SnapshotError.malformed("\(what): configuration space of \(space.count) bytes") }
        let vectorCount = state.withLock { $0.msix.count }
        let msix = try fields.read(TransportStateTag.msix.rawValue, "\(what) MSI-X table") { reader in
            guard try reader.read(UInt32.self) == vectorCount else { throw SnapshotError.malformed("\(what): MSI-X table of another size") }
            return try (0..<vectorCount).map { _ in
                (MSIXTable.Entry(address: try reader.read(UInt64.self), data: try reader.read(UInt32.self), masked: try reader.read(Bool.self)),
                 try reader.read(Bool.self))
            }
        }
        let queueCount = Int(description.queueCount), maximumSize = description.maximumQueueSize
        let queues = try fields.read(TransportStateTag.queues.rawValue, "\(what) queues") { reader in
            guard try reader.read(UInt32.self) == queueCount else { throw SnapshotError.malformed("\(what): another number of queues") }
            return try (0..<queueCount).map { index in
                var queue = TransportState.Queue(size: try reader.read(UInt16.self), maximumSize: maximumSize)
                guard queue.size > 0, queue.size <= maximumSize, queue.size & (queue.size - 1) == 0 else {
                    throw SnapshotError.malformed("\(what): queue \(index) of size \(queue.size)")
                }
                queue.vector = try reader.read(UInt16.self)
                queue.enabled = try reader.read(Bool.self)
                queue.descriptorTable = try reader.read(UInt64.self)
                queue.availableRing = try reader.read(UInt64.self)
                queue.usedRing = try reader.read(UInt64.self)
                return queue
            }
        }
        // Checked by the device, which alone knows what it means; only its size here.
        let deviceState = fields.bytes(TransportStateTag.deviceState.rawValue) ?? []
        guard deviceState.count <= TransportRequest.maximumDeviceState else {
            throw SnapshotError.malformed("\(what): \(deviceState.count) bytes of device state")
        }
        let indices = try fields.read(TransportStateTag.deviceQueues.rawValue, "\(what) device queues") { reader in
            try (0..<reader.readCount(limit: queueCount)).map { _ in
                let active = try reader.read(Bool.self)
                let queue = QueueIndices(nextAvailable: try reader.read(UInt16.self), nextUsed: try reader.read(UInt16.self))
                return active ? queue : nil
            }
        }
        return try fields.read(TransportStateTag.registers.rawValue, "\(what) registers") { reader in
            try state.withLock { state in
                state.deviceFeatureSelect = try reader.read(UInt32.self)
                state.driverFeatureSelect = try reader.read(UInt32.self)
                state.driverFeatures = try reader.read(UInt64.self)
                guard state.driverFeatures & ~description.features == 0 else {
                    throw SnapshotError.malformed("\(what): features 0x\(String(state.driverFeatures, radix: 16)) were not offered")
                }
                state.status = try reader.read(UInt8.self)
                state.configGeneration = try reader.read(UInt8.self)
                state.configVector = state.msix.validVector(try reader.read(UInt16.self))
                state.queueSelect = try reader.read(UInt16.self)
                state.isr = try reader.read(UInt8.self)
                state.space.restoreWritableBits(space)
                state.msix.restore(entries: msix.map(\.0), pending: msix.map(\.1))
                state.queues = queues.map { queue in
                    var queue = queue
                    queue.vector = state.msix.validVector(queue.vector)
                    return queue
                }
                updateBARMapping(&state)
                refreshAllInterrupts(&state)
                let live = state.status & VirtioStatus.driverOK != 0 && state.status & VirtioStatus.deviceNeedsReset == 0
                guard live else { return nil }
                return PendingActivation(features: state.driverFeatures, queues: state.queues.enumerated().filter(\.element.enabled).map { index, queue in
                    QueueActivation(index: UInt16(index), size: queue.size, descriptorTable: queue.descriptorTable,
                                    availableRing: queue.availableRing, usedRing: queue.usedRing,
                                    resumeAt: index < indices.count ? indices[index] ?? QueueIndices() : QueueIndices())
                }, deviceState: deviceState)
            }
        }
    }

    func activate(_ activation: PendingActivation) throws {
        let what = "\(name) transport"
        switch try client.request(.activate(features: activation.features, queues: activation.queues,
                                            deviceState: activation.deviceState)) {
        case .done: break
        case .refused(let reason): throw SnapshotError.malformed("\(what): the device refused its restored queues: \(reason)")
        default: throw SnapshotError.malformed("\(what): the device answered its activation oddly")
        }
    }

    /// Asks the device process to log the guest pages it writes into `bitmap` (nil: stop).
    func logWrites(_ bitmap: FileDescriptor?) throws {
        guard case .done = try client.request(.logWrites(bitmap)) else {
            throw SnapshotError.malformed("\(name): the device cannot log the pages it writes")
        }
    }
}

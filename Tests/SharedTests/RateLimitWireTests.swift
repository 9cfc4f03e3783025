import XCTest
@testable import IPC
import LinuxSystem

/// A disk's and a NIC's rate limit on the way from vmd to their device processes.
final class RateLimitWireTests: XCTestCase {
    private func roundTrip(_ command: DeviceSetupCommand) throws -> DeviceSetupCommand {
        let (bytes, descriptors) = try IPCFrame.encode(command)
        return try IPCFrame.decode(DeviceSetupCommand.self, bytes: bytes, descriptors: descriptors)
    }

    private func wiring() throws -> DeviceWiring {
        DeviceWiring(transport: try .eventFD(), events: try .eventFD(), kicks: [try .eventFD()], calls: [try .eventFD()])
    }

    func testBlockAndNetworkSetupsCarryTheirLimits() throws {
        let limit = RateLimit(bytes: .init(rate: 50 << 20, burst: 1 << 20), operations: .init(rate: 2000, burst: 3))
        let block = BlockDeviceSetup(name: "disk0", readOnly: false, serial: "s", formats: [.qcow2, .raw], rateLimit: limit)
        guard case .block(let decoded, let images, _) = try roundTrip(.block(block, images: [try .eventFD(), try .eventFD()],
                                                                             wiring: try wiring())) else {
            return XCTFail("not a block setup")
        }
        XCTAssertEqual(decoded, block)
        XCTAssertEqual(images.count, 2)

        let onlyPackets = RateLimit(bytes: nil, operations: .init(rate: 20000, burst: 2000))
        let network = NetworkDeviceSetup(name: "net0", mac: [2, 0, 0, 0, 0, 1], localGuestAddress: nil, localHostAddress: nil,
                                         tapOffloads: 0, rateLimit: onlyPackets)
        guard case .network(let decodedNetwork, let taps, _) = try roundTrip(.network(network, taps: [try .eventFD(), try .eventFD()],
                                                                                      wiring: try wiring())) else {
            return XCTFail("not a network setup")
        }
        XCTAssertEqual(decodedNetwork, network)
        XCTAssertEqual(taps.count, 2, "one descriptor per queue pair")
        XCTAssertNil(decodedNetwork.rateLimit.bytes)
        // No limit is no bucket, not a bucket of zero.
        var writer = WireWriter()
        writer.writeRateLimit(RateLimit())
        var reader = WireReader(bytes: writer.bytes)
        XCTAssertTrue(try reader.readRateLimit().isUnlimited)
    }

    func testAZeroOrAbsurdBucketIsRefused() {
        for bucket in [RateLimit.Bucket(rate: 0, burst: 5), .init(rate: 5, burst: 0), .init(rate: .max, burst: 1),
                       .init(rate: 1, burst: RateLimit.Bucket.maximum + 1)] {
            for limit in [RateLimit(bytes: bucket), RateLimit(operations: bucket)] {
                var writer = WireWriter()
                writer.writeRateLimit(limit)
                var reader = WireReader(bytes: writer.bytes)
                XCTAssertThrowsError(try reader.readRateLimit(), "\(bucket)") { error in
                    XCTAssertTrue("\(error)".contains("limit of"), "\(error)")
                }
            }
        }
    }
}

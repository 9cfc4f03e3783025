import CLinux
import Glibc
import IPC
import LinuxSystem
import NetDeviceShape
import Logging
import VirtioCore

/// The virtio-net process: one per NIC, started by vmd with its control channel
/// as fd 3. It receives guest memory (SHAREMEM), its tap queues (one per queue pair,
/// created and configured by vmd), its eventfds and its channel to the vm process, and
/// moves packets between the tap and the queues straight from guest memory (design §4).
/// Not meant to be run by hand.
package enum NetProcessMain {
    package static func run() -> Never {
        DeviceProcessStart.run(identity: "virtio-net") { logger in
            let start = try DeviceProcessStart()
            let (control, memory) = (start.control, start.memory)
            guard case .network(let setup, let taps, let wiring) = start.setup else {
                throw IPCError.malformed("expected the network device setup")
            }
            logger[metadataKey: "nic"] = "\(setup.name)"
            guard let mac = MACAddress(setup.mac) else { throw IPCError.malformed("MAC address") }
            guard taps.count <= DeviceShape.maximumNetQueuePairs,
                  wiring.kicks.count == NetQueueLayout(pairs: taps.count).queueCount else {
                throw IPCError.malformed("\(taps.count) tap queues for \(wiring.kicks.count) virtqueues")
            }
            var dhcp: DHCPResponder?
            if let guest = setup.localGuestAddress, let host = setup.localHostAddress {
                dhcp = try DHCPResponder(clientMAC: mac, clientAddress: IPv4Address(guest), serverAddress: IPv4Address(host),
                                         prefixLength: 31, leaseSeconds: 86400, dnsServers: [],
                                         serverMAC: DHCPResponder.defaultServerMAC)
            }
            let models = try taps.map { tap in
                try NetDeviceModel(mac: mac, offloads: NetOffloads(acceptedTunFlags: setup.tapOffloads),
                                   backend: try TapBackend(tap: tap), dhcp: dhcp)
            }
            let pumps = taps.enumerated().map { TapPump(tap: $1, pair: $0) }
            let device = NetVirtioDevice(pairs: models, guestLog: RateLimitedLog(logger: logger)) { pumps[$0].resume() }
            device.stopTap = { pumps[$0].stop() }
            device.setTapQueueAttached = { pair, attached in try TapQueue.setAttached(taps[pair], attached) }
            device.counterPage = start.counters
            device.setTapOffloads = { flags in
                try retryingInterrupts("TUNSETOFFLOAD") { vmd_ioctl_int(taps[0].rawValue, VMD_TUNSETOFFLOAD, UInt(flags)) }
            }
            let runner = try VirtioDeviceRunner(model: device, memory: memory, wiring: wiring, control: control, logger: logger)
            device.configChanged = { [unowned runner] in runner.notifyConfigChanged() }
            // Each direction has buckets of its own, of the sizes the interface's block gives,
            // which every queue pair shares.
            if let transmit = RateLimiter(setup.rateLimit), let receive = RateLimiter(setup.rateLimit) {
                device.transmitLimiter = transmit
                models.forEach { $0.receiveLimiter = receive }
                device.serveAgain = { [unowned runner] queue, seconds in runner.serveAgain(queue, after: seconds) }
                logger.info("rate limit, each direction: \(setup.rateLimit)")
            }
            for pump in pumps {
                pump.device = device
                pump.runner = runner
            }
            if taps.count > 1 { logger.info("\(taps.count) queue pairs (VIRTIO_NET_F_MQ), one tap queue each") }
            ProcessRole.current = "virtio-net"
            try Sandbox.enter(.network, logger: logger)
            pumps[0].resume()
            try runner.run()
            let counters = device.counters
            logger.info("tx \(counters.txPackets) packets, rx \(counters.rxPackets), tx dropped \(counters.txDropped.total)")
        }
    }
}

import CLinux
import Glibc
import IPC
import LinuxSystem
import Logging
import VirtioCore

/// The virtio-net process: one per NIC, started by vmd with its control channel
/// as fd 3. It receives guest memory (SHAREMEM), its tap fd (created and
/// configured by vmd), its eventfds and its channel to the vm process, and moves
/// packets between the tap and the queues straight from guest memory (design §4).
/// Not meant to be run by hand.
package enum NetProcessMain {
    package static func run() -> Never {
        DeviceProcessStart.run(identity: "virtio-net") { logger in
            let start = try DeviceProcessStart()
            let (control, memory) = (start.control, start.memory)
            guard case .network(let setup, let tap, let wiring) = start.setup else {
                throw IPCError.malformed("expected the network device setup")
            }
            logger[metadataKey: "nic"] = "\(setup.name)"
            guard let mac = MACAddress(setup.mac) else { throw IPCError.malformed("MAC address") }
            var dhcp: DHCPResponder?
            if let guest = setup.localGuestAddress, let host = setup.localHostAddress {
                dhcp = try DHCPResponder(clientMAC: mac, clientAddress: IPv4Address(guest), serverAddress: IPv4Address(host),
                                         prefixLength: 31, leaseSeconds: 86400, dnsServers: [],
                                         serverMAC: DHCPResponder.defaultServerMAC)
            }
            let model = try NetDeviceModel(mac: mac, offloads: NetOffloads(acceptedTunFlags: setup.tapOffloads),
                                           backend: try TapBackend(tap: tap), dhcp: dhcp)
            let pump = TapPump(tap: tap)
            let device = NetVirtioDevice(model: model, guestLog: RateLimitedLog(logger: logger)) { pump.resume() }
            device.counterPage = start.counters
            device.setTapOffloads = { flags in
                try retryingInterrupts("TUNSETOFFLOAD") { vmd_ioctl_int(tap.rawValue, VMD_TUNSETOFFLOAD, UInt(flags)) }
            }
            let runner = try VirtioDeviceRunner(model: device, memory: memory, wiring: wiring, control: control, logger: logger)
            // Each direction has buckets of its own, of the sizes the interface's block gives.
            if let transmit = RateLimiter(setup.rateLimit), let receive = RateLimiter(setup.rateLimit) {
                device.transmitLimiter = transmit
                model.receiveLimiter = receive
                device.serveAgain = { [unowned runner] queue, seconds in runner.serveAgain(queue, after: seconds) }
                logger.info("rate limit, each direction: \(setup.rateLimit)")
            }
            pump.device = device
            pump.runner = runner
            ProcessRole.current = "virtio-net"
            try Sandbox.enter(.network, logger: logger)
            pump.resume()
            try runner.run()
            logger.info("tx \(model.counters.txPackets) packets, rx \(model.counters.rxPackets), tx dropped \(model.counters.txDropped.total)")
        }
    }
}

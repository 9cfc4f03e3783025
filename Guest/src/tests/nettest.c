/* nettest.c - test=net (bring the interface up, then serve ARP, ICMP
 * echo and UDP echo on port 7) and bench=net (dir=tx: UDP flood to
 * peer=IP:PORT; dir=rx: count UDP datagrams arriving on port=). */
#include "kit.h"
#include "net.h"

#define ECHO_PORT     7
#define BENCH_SPORT   9001
#define DEFAULT_IP    0x0a00020fu /* 10.0.2.15 */
#define MAX_BENCH_LEN 65507

struct serve {
	uint64_t echoed, echo_fail;
	int quit;
	/* bench dir=rx */
	uint16_t bench_port;
	uint64_t count, bytes, t_first, t_last;
};

static struct netdev *dev;
static struct netif *nif;
static struct serve *sv;

static const char *st(int ok)
{
	return ok ? "pass" : "fail";
}

static unsigned int prefix_len(uint32_t mask)
{
	unsigned int n = 0;
	while (n < 32 && (mask & (0x80000000u >> n)))
		n++;
	return n;
}

/* Port 7 echo (and QUIT), plus the rx bench counter. */
static void udp_rx(struct netif *n, uint32_t src_ip, uint16_t src_port, uint16_t dst_port, const uint8_t *src_mac,
		   const uint8_t *p, uint32_t len)
{
	if (dst_port == ECHO_PORT) {
		if (udp_send(n, src_mac, n->ip, src_ip, ECHO_PORT, src_port, p, len) == 0)
			sv->echoed++;
		else
			sv->echo_fail++;
		if (len == 4 && memcmp(p, "QUIT", 4) == 0)
			sv->quit = 1;
		return;
	}
	if (sv->bench_port && dst_port == sv->bench_port) {
		uint64_t now = rdtsc();
		if (!sv->count)
			sv->t_first = now;
		sv->t_last = now;
		sv->count++;
		sv->bytes += len;
	}
}

/* dev, nif and sv from the DMA pool. 0 or -1. */
static int net_alloc(void)
{
	dev = dma_alloc(sizeof(*dev), 64);
	nif = dma_alloc(sizeof(*nif), 64);
	sv = dma_alloc(sizeof(*sv), 64);
	return dev && nif && sv ? 0 : -1;
}

/* "<prefix> pci=.. features=.. rxq=.. ..." for the device netdev_init set up. */
static void net_info(const char *prefix)
{
	struct pci_func *f = dev->vd.pci;
	kit_printf("%s pci=%02x:%02x.%x features=0x%lx/0x%lx rxq=%u txq=%u msix-entries=%u mrg_rxbuf=%d "
		   "event_idx=%d link=%s mac-from=%s\n",
		   prefix, f->bus, f->dev, f->fn, dev->vd.features, dev->vd.dev_features, dev->rxq.size, dev->txq.size,
		   dev->vd.msix_table_size, dev->mrg_rxbuf, dev->event_idx,
		   dev->link_status == 0xffff ? "unknown" : (dev->link_status & 1) ? "up" : "down",
		   dev->mac_from_device ? "device" : "driver");
}

/* nif's address: DHCP with dhcp=1 (l filled), else static from ip=A.B.C.D[/P]
 * (default 10.0.2.15/24) and gw=. *method = "dhcp" or "static". 0, or -1
 * with *why. */
static int net_addr(const char **method, const char **why, struct dhcp_lease *l)
{
	memset(l, 0, sizeof(*l));
	if (cmdline_get_u64("dhcp", 0)) {
		*method = "dhcp";
		return dhcp_run(nif, l, (unsigned int)cmdline_get_u64("dhcp_tries", 5), cmdline_get_u64("dhcp_timeout", 2),
				why);
	}
	*method = "static";
	const char *s = cmdline_get("ip"), *end;
	uint32_t ip = DEFAULT_IP, pl = 24, gw = 0;
	if (s) {
		uint64_t v;
		if (parse_ip(s, &ip, &end) < 0 || (*end && *end != '/')) {
			*why = "bad-ip";
			return -1;
		}
		if (*end == '/' && (parse_u64(end + 1, &v) < 0 || v < 1 || v > 30)) {
			*why = "bad-prefix";
			return -1;
		}
		if (*end == '/')
			pl = (uint32_t)v;
	}
	s = cmdline_get("gw");
	if (s && parse_ip(s, &gw, NULL) < 0) {
		*why = "bad-gw";
		return -1;
	}
	nif->ip = ip;
	nif->mask = 0xffffffffu << (32 - pl);
	nif->gw = gw;
	return 0;
}

/* Device, then address (static or DHCP); prints RESULT name=net-up.
 * 0 or an exit code. */
static int net_up(void)
{
	char b1[16], b2[16], b3[18];
	if (net_alloc() < 0) {
		RESULT("net-up", "fail", " reason=out-of-dma-memory");
		return EXIT_FAIL;
	}
	if (netdev_init(dev) < 0) {
		RESULT("net-up", "fail", " reason=%s", dev->error);
		return EXIT_FAIL;
	}
	kit_printf("info tsc-mhz=%lu\n", dev->tsc_hz / 1000000);
	net_info("info net");
	netif_init(nif, dev);
	nif->udp_handler = udp_rx;
	const char *method, *why;
	struct dhcp_lease l;
	if (net_addr(&method, &why, &l) < 0) {
		if (method[0] == 'd')
			RESULT("net-up", "fail", " method=dhcp reason=%s attempts=%u mac=%s", why, l.attempts,
			       mac_str(dev->mac, b3));
		else
			RESULT("net-up", "fail", " method=static reason=%s", why);
		return EXIT_FAIL;
	}
	if (method[0] == 'd')
		kit_printf("info dhcp server=%s lease=%u attempts=%u\n", ip_str(l.server, b1), l.lease_s, l.attempts);
	RESULT("net-up", "pass", " mac=%s ip=%s method=%s prefix=%u gw=%s", mac_str(dev->mac, b3), ip_str(nif->ip, b1),
	       method, prefix_len(nif->mask), ip_str(nif->gw, b2));
	return 0;
}

int migrate_net_up(struct netif **out, const char **why)
{
	char b1[16], b2[16], b3[18];
	if (net_alloc() < 0) {
		*why = "out-of-dma-memory";
		return -2;
	}
	if (netdev_init(dev) < 0) {
		*why = dev->error;
		return strcmp(dev->error, "no-virtio-net") ? -2 : -1;
	}
	net_info("info migrate net");
	netif_init(nif, dev);
	const char *method;
	struct dhcp_lease l;
	if (net_addr(&method, why, &l) < 0)
		return -2;
	if (method[0] == 'd')
		kit_printf("info migrate net dhcp server=%s lease=%u attempts=%u\n", ip_str(l.server, b1), l.lease_s,
			   l.attempts);
	kit_printf("info migrate net mac=%s ip=%s method=%s prefix=%u gw=%s\n", mac_str(dev->mac, b3), ip_str(nif->ip, b1),
		   method, prefix_len(nif->mask), ip_str(nif->gw, b2));
	dev->nowait = 1;
	*out = nif;
	return 0;
}

/* test=net: serve until seconds=N (default 30) or a UDP "QUIT" on port 7. */
int test_net(const char *name)
{
	char b[16];
	int rc = net_up();
	if (rc)
		return rc;
	uint64_t secs = cmdline_get_u64("seconds", 30);
	kit_printf("READY-NET ip=%s\n", ip_str(nif->ip, b));
	uint64_t t0 = rdtsc(), limit = secs * dev->tsc_hz;
	while (!sv->quit && dev->ok && rdtsc() - t0 < limit)
		if (!netif_poll(nif, 64))
			cpu_relax();
	netdev_tx_flush(dev);
	int ok = dev->ok;
	RESULT(name, st(ok), " rx=%lu tx=%lu echoed=%lu icmp=%lu interrupts=%lu arp=%lu dropped=%lu quit=%d%s%s",
	       nif->rx, nif->tx, sv->echoed, nif->icmp_echo, kit_virtio_irqs, nif->arp_replies, nif->dropped, sv->quit,
	       ok ? "" : " reason=", ok ? "" : dev->error);
	return ok ? (int)(cmdline_get_u64("exit", 0) & 0xff) : EXIT_FAIL;
}

/* peer=a.b.c.d:port */
static int parse_peer(uint32_t *ip, uint16_t *port)
{
	const char *s = cmdline_get("peer"), *end;
	uint64_t p;
	if (!s || parse_ip(s, ip, &end) < 0 || *end != ':' || parse_u64(end + 1, &p) < 0 || !p || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

static int bench_tx(const char *name)
{
	char b[16];
	uint32_t peer;
	uint16_t pport;
	uint64_t size = cmdline_get_u64("size", 64), n = cmdline_get_u64("n", 100000);
	uint64_t batch = cmdline_get_u64("batch", 16);
	/* seg=: each send is size bytes as seg-byte datagrams (one USO frame with uso=1 where
	 * the device offers it); 0: one datagram of size bytes, fragmented if it must be. */
	uint64_t seg = cmdline_get_u64("seg", 0);
	if (parse_peer(&peer, &pport) < 0) {
		RESULT(name, "fail", " dir=tx reason=bad-peer");
		return EXIT_FAIL;
	}
	if (!size || size > MAX_BENCH_LEN) {
		RESULT(name, "fail", " dir=tx reason=bad-size max=%u", MAX_BENCH_LEN);
		return EXIT_FAIL;
	}
	if (seg > ETH_MTU - 28 || (seg && size > seg * UDP_USO_MAX_SEGS)) {
		RESULT(name, "fail", " dir=tx reason=bad-seg max=%u segments=%u", ETH_MTU - 28, UDP_USO_MAX_SEGS);
		return EXIT_FAIL;
	}
	uint64_t per_send = seg ? (size + seg - 1) / seg : 1;
	if (!batch)
		batch = 1;
	uint8_t *payload = dma_alloc(size, 64), mac[6];
	if (!payload) {
		RESULT(name, "fail", " dir=tx reason=out-of-dma-memory");
		return EXIT_FAIL;
	}
	for (uint64_t i = 0; i < size; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	if (arp_resolve(nif, peer, mac, cmdline_get_u64("arp_timeout", 5)) < 0) {
		RESULT(name, "fail", " dir=tx reason=arp-timeout peer=%s", ip_str(peer, b));
		return EXIT_FAIL;
	}
	uint64_t irq0 = kit_virtio_irqs, nq0 = dev->txq.notifies, f0 = dev->tx_frames;
	uint64_t sent = 0, t0 = rdtsc();
	while (sent < n) {
		int r = seg ? udp_send_segments(nif, mac, nif->ip, peer, BENCH_SPORT, pport, payload, (uint32_t)size,
						(uint32_t)seg)
			    : udp_send(nif, mac, nif->ip, peer, BENCH_SPORT, pport, payload, (uint32_t)size);
		if (r < 0)
			break;
		if (++sent % batch == 0)
			netdev_tx_flush(dev);
		if (sent % 1024 == 0)
			netif_poll(nif, 16); /* ARP requests etc. */
	}
	netdev_tx_flush(dev);
	/* Done when the device has consumed every frame. */
	uint64_t tw = rdtsc();
	while (dev->ok && netdev_tx_reclaim(dev) < dev->txq.size) {
		if (rdtsc() - tw > dev->timeout) {
			dev->ok = 0;
			dev->error = "tx-timeout";
		}
		cpu_relax();
	}
	uint64_t t1 = rdtsc();
	if (!dev->ok || sent < n) {
		RESULT(name, "fail", " dir=tx size=%lu n=%lu sent=%lu reason=%s", size, n, sent,
		       dev->error ? dev->error : "send-failed");
		return EXIT_FAIL;
	}
	uint64_t usec = (t1 - t0) * 1000000 / dev->tsc_hz;
	if (!usec)
		usec = 1;
	/* pps counts datagrams (n x per_send), mbps the payload. */
	uint64_t pps = n * per_send * 1000000 / usec, mbps_x100 = n * size * 8 * 100 / usec;
	RESULT(name, "pass", " dir=tx size=%lu n=%lu pps=%lu mbps=%lu.%02lu usec=%lu frames=%lu notifies=%lu "
	       "full_waits=%lu interrupts=%lu batch=%lu seg=%lu datagrams=%lu uso=%d peer=%s:%u",
	       size, n, pps, mbps_x100 / 100, mbps_x100 % 100, usec, dev->tx_frames - f0, dev->txq.notifies - nq0,
	       dev->tx_full_waits, kit_virtio_irqs - irq0, batch, seg, n * per_send, dev->uso, ip_str(peer, b), pport);
	return (int)(cmdline_get_u64("exit", 0) & 0xff);
}

static int bench_rx(const char *name)
{
	char b[16];
	uint64_t n = cmdline_get_u64("n", 100000), secs = cmdline_get_u64("seconds", 30);
	uint64_t idle = cmdline_get_u64("idle", 2);
	uint64_t port = cmdline_get_u64("port", 9000);
	if (!port || port > 65535 || port == ECHO_PORT) {
		RESULT(name, "fail", " dir=rx reason=bad-port");
		return EXIT_FAIL;
	}
	sv->bench_port = (uint16_t)port;
	if (cmdline_get_u64("poll", 0))
		netdev_set_rx_poll(dev, 1);
	uint64_t irq0 = kit_virtio_irqs, nq0 = dev->rxq.notifies;
	kit_printf("READY-NET ip=%s\n", ip_str(nif->ip, b));
	uint64_t t0 = rdtsc(), limit = secs * dev->tsc_hz, idle_t = idle * dev->tsc_hz;
	while (sv->count < n && !sv->quit && dev->ok) {
		if (!netif_poll(nif, 64)) {
			uint64_t now = rdtsc();
			if (now - t0 > limit || (idle && sv->count && now - sv->t_last > idle_t))
				break;
			cpu_relax();
		}
	}
	netdev_tx_flush(dev);
	if (!dev->ok || !sv->count) {
		RESULT(name, "fail", " dir=rx n=%lu wanted=%lu reason=%s", sv->count, n,
		       dev->ok ? "no-packets" : dev->error);
		return EXIT_FAIL;
	}
	uint64_t usec = (sv->t_last - sv->t_first) * 1000000 / dev->tsc_hz;
	if (!usec)
		usec = 1;
	/* n packets span n-1 gaps between the first and the last. */
	uint64_t gaps = sv->count > 1 ? sv->count - 1 : 1;
	uint64_t pps = gaps * 1000000 / usec, mbps_x100 = sv->bytes * gaps / sv->count * 8 * 100 / usec;
	RESULT(name, "pass", " dir=rx size=%lu n=%lu pps=%lu mbps=%lu.%02lu usec=%lu wanted=%lu port=%lu "
	       "interrupts=%lu notifies=%lu rx_frames=%lu dropped=%lu poll=%lu",
	       sv->bytes / sv->count, sv->count, pps, mbps_x100 / 100, mbps_x100 % 100, usec, n, port,
	       kit_virtio_irqs - irq0, dev->rxq.notifies - nq0, dev->rx_frames, nif->dropped + dev->rx_errors,
	       cmdline_get_u64("poll", 0));
	return (int)(cmdline_get_u64("exit", 0) & 0xff);
}

/* bench=net dir=tx|rx */
int bench_net(const char *name)
{
	const char *dir = cmdline_get("dir");
	if (!dir)
		dir = "tx";
	if (strcmp(dir, "tx") != 0 && strcmp(dir, "rx") != 0) {
		RESULT(name, "fail", " reason=bad-dir");
		return EXIT_FAIL;
	}
	int rc = net_up();
	if (rc)
		return rc;
	return dir[0] == 't' ? bench_tx(name) : bench_rx(name);
}

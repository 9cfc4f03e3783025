/* netmq.c - test=net-mq: virtio-net with one queue pair per vCPU
 * (VIRTIO_NET_F_MQ, virtio 1.2 §5.1.6.5.5), against a host peer that
 * echoes UDP datagrams and answers "QUEUES" with the number of queues
 * its tap has attached (Guest/tools/mq-peer.py).
 *
 * 1. The control queue: VQ_PAIRS_SET of 0 and of max + 1, a class the
 *    device does not offer, and a command shorter than its header must
 *    get VIRTIO_NET_ERR; a chain with no ack byte must come back used
 *    with length 0; VQ_PAIRS_SET of max must get VIRTIO_NET_OK.
 * 2. Every pair k sends count= datagrams from UDP port 20000 + k; the
 *    tap steers each flow's echoes to the queue that sent it, so each
 *    must come back on pair k's receive queue.
 * 3. VQ_PAIRS_SET 1: every port's datagrams go out through the first
 *    pair, and every echo must come back on it (the device must not use
 *    the other receive queues, and detached their tap queues).
 * The peer's QUEUES answers after 2 and 3 are reported as tap_queues_wide
 * and tap_queues_narrow. ip=A.B.C.D (the guest's), peer=IP:PORT.
 * hold=1: between 2 and 3, wait for a "GO" datagram to port 20000 (the
 * host saves and restores the VM meanwhile), then exchange as in 2 again
 * (own_after_hold, other_after_hold, tap_queues_after_hold); the restored
 * device must have asked for announcements (VIRTIO_NET_S_ANNOUNCE and a
 * config interrupt), which the kit answers with a gratuitous ARP and
 * ANNOUNCE_ACK, after which the bit must be clear. */
#include "kit.h"
#include "net.h"

#define MQ_SPORT 20000
#define CTRL_OK  0
#define CTRL_ERR 1

static struct netdev *pairs;
static struct netif *nifs;
static struct virtq *ctrl;
static uint8_t *ctrl_buf;      /* command at 0, ack at 64 */
static unsigned int npairs;
static uint64_t tsc_hz;

/* Echoes seen: got[on which pair][for which pair's port]. */
static uint64_t got[NET_MQ_MAX][NET_MQ_MAX];
static int queues_answer = -1;
static int go; /* hold=1: "GO" arrived on port 20000 */

static void mq_rx(struct netif *nif, uint32_t src_ip, uint16_t src_port, uint16_t dst_port, const uint8_t *src_mac,
		  const uint8_t *p, uint32_t len)
{
	(void)src_ip, (void)src_port, (void)src_mac;
	unsigned int on = (unsigned int)(nif - nifs);
	if (len > 7 && memcmp(p, "QUEUES ", 7) == 0) {
		uint64_t v;
		char text[8] = { 0 };
		memcpy(text, p + 7, len - 7 < 7 ? len - 7 : 7);
		queues_answer = parse_u64(text, &v) == 0 ? (int)v : -2;
		return;
	}
	if (len == 2 && memcmp(p, "GO", 2) == 0 && dst_port == MQ_SPORT) {
		go = 1;
		return;
	}
	if (dst_port >= MQ_SPORT && dst_port < MQ_SPORT + npairs && on < npairs)
		got[on][dst_port - MQ_SPORT]++;
}

/* One control command: `len` readable bytes (0: none), then the ack byte
 * (without_ack: none). Returns the ack (0xee if untouched), -1 if the
 * device did not use the chain within 2 s; *used gets the used length. */
static int ctrl_cmd(const uint8_t *cmd, uint32_t len, int without_ack, uint32_t *used)
{
	uint16_t d = 0;
	uint8_t *ack = ctrl_buf + 64;
	memcpy(ctrl_buf, cmd, len);
	*ack = 0xee;
	if (len)
		ctrl->desc[d++] = (struct virtq_desc){ (uint64_t)(uintptr_t)ctrl_buf, len, 0, 0 };
	if (!without_ack)
		ctrl->desc[d++] = (struct virtq_desc){ (uint64_t)(uintptr_t)ack, 1, VIRTQ_DESC_F_WRITE, 0 };
	if (d == 2) {
		ctrl->desc[0].flags |= VIRTQ_DESC_F_NEXT;
		ctrl->desc[0].next = 1;
	}
	vq_add(ctrl, 0);
	vq_kick(ctrl);
	uint64_t t0 = rdtsc();
	uint32_t id;
	while (!vq_get_used(ctrl, &id, used)) {
		if (rdtsc() - t0 > 2 * tsc_hz)
			return -1;
		cpu_relax();
	}
	return *ack;
}

static int set_pairs(unsigned int count)
{
	uint8_t cmd[4] = { 4, 0, (uint8_t)count, (uint8_t)(count >> 8) }; /* VIRTIO_NET_CTRL_MQ, VQ_PAIRS_SET, le16 */
	uint32_t used;
	return ctrl_cmd(cmd, sizeof(cmd), 0, &used);
}

static void poll_all(void)
{
	for (unsigned int k = 0; k < npairs; k++)
		netif_poll(&nifs[k], 64);
}

/* The peer's MAC, asked through the first pair, the answer taken from any. */
static int resolve(uint32_t peer, uint8_t mac[6])
{
	uint64_t t0 = rdtsc(), last = 0;
	while (rdtsc() - t0 < 5 * tsc_hz) {
		for (unsigned int k = 0; k < npairs; k++)
			if (arp_lookup(&nifs[k], peer, mac) == 0) {
				for (unsigned int j = 0; j < npairs; j++)
					arp_add(&nifs[j], peer, mac);
				return 0;
			}
		if (!last || rdtsc() - last > tsc_hz / 5) {
			arp_request(&nifs[0], peer);
			last = rdtsc();
		}
		poll_all();
		cpu_relax();
	}
	return -1;
}

/* Sends `count` datagrams from each pair's port, through pair k itself
 * (own) or through the first pair; waits up to 3 s for every echo. */
static void exchange(const uint8_t mac[6], uint32_t peer, uint16_t pport, uint64_t count, int own)
{
	memset(got, 0, sizeof(got));
	for (unsigned int k = 0; k < npairs; k++) {
		struct netif *out = own ? &nifs[k] : &nifs[0];
		for (uint64_t i = 0; i < count; i++) {
			uint8_t payload[16] = { 'M', 'Q', (uint8_t)k, (uint8_t)i };
			udp_send(out, mac, out->ip, peer, (uint16_t)(MQ_SPORT + k), pport, payload, sizeof(payload));
		}
		netdev_tx_flush(out->dev);
	}
	uint64_t t0 = rdtsc();
	for (;;) {
		uint64_t total = 0;
		for (unsigned int a = 0; a < npairs; a++)
			for (unsigned int b = 0; b < npairs; b++)
				total += got[a][b];
		if (total >= count * npairs || rdtsc() - t0 > 3 * tsc_hz)
			break;
		poll_all();
	}
}

/* Asks the peer how many queues its tap has attached. */
static int tap_queues(const uint8_t mac[6], uint32_t peer, uint16_t pport)
{
	queues_answer = -1;
	udp_send(&nifs[0], mac, nifs[0].ip, peer, MQ_SPORT, pport, (const uint8_t *)"QUEUES", 6);
	netdev_tx_flush(&pairs[0]);
	uint64_t t0 = rdtsc();
	while (queues_answer == -1 && rdtsc() - t0 < 3 * tsc_hz)
		poll_all();
	return queues_answer;
}

int test_net_mq(const char *name)
{
	char b[16];
	pairs = dma_alloc(sizeof(*pairs) * NET_MQ_MAX, 64);
	nifs = dma_alloc(sizeof(*nifs) * NET_MQ_MAX, 64);
	ctrl = dma_alloc(sizeof(*ctrl), 64);
	ctrl_buf = dma_alloc(128, 64);
	if (!pairs || !nifs || !ctrl || !ctrl_buf) {
		RESULT(name, "fail", " reason=out-of-dma-memory");
		return EXIT_FAIL;
	}
	if (netdev_init_mq(pairs, &npairs, ctrl) < 0) {
		RESULT(name, "fail", " reason=%s", pairs[0].error);
		return EXIT_FAIL;
	}
	tsc_hz = pairs[0].tsc_hz;
	kit_printf("info net-mq max_pairs=%u features=0x%lx\n", npairs, pairs[0].vd.features);

	/* 1. The control queue. */
	uint32_t used, noack_len = 0;
	int zero = set_pairs(0), over = set_pairs(npairs + 1);
	static const uint8_t unknown[3] = { 99, 1, 0 }, lone[1] = { 4 };
	int unknown_ack = ctrl_cmd(unknown, sizeof(unknown), 0, &used);
	int short_ack = ctrl_cmd(lone, sizeof(lone), 0, &used);
	int noack = ctrl_cmd((const uint8_t[]){ 4, 0, 1, 0 }, 4, 1, &noack_len);
	int set = set_pairs(npairs);
	int ctrl_ok = zero == CTRL_ERR && over == CTRL_ERR && unknown_ack == CTRL_ERR && short_ack == CTRL_ERR &&
		      noack == 0xee && noack_len == 0 && set == CTRL_OK;
	RESULT("net-mq-ctrl", ctrl_ok ? "pass" : "fail", " zero=%d over=%d unknown=%d short=%d noack=%d noack_len=%u set=%d",
	       zero, over, unknown_ack, short_ack, noack, noack_len, set);

	/* 2. Each pair its own flows. */
	uint32_t ip, peer;
	uint16_t pport;
	const char *s = cmdline_get("ip"), *end;
	uint64_t p, count = cmdline_get_u64("count", 16);
	if (!s || parse_ip(s, &ip, NULL) < 0 || !(s = cmdline_get("peer")) || parse_ip(s, &peer, &end) < 0 || *end != ':' ||
	    parse_u64(end + 1, &p) < 0 || !p || p > 65535 || !count || count > 200) {
		RESULT(name, "fail", " reason=bad-ip-peer-or-count");
		return EXIT_FAIL;
	}
	pport = (uint16_t)p;
	for (unsigned int k = 0; k < npairs; k++) {
		netif_init(&nifs[k], &pairs[k]);
		nifs[k].ip = ip;
		nifs[k].mask = 0xfffffffeu;
		nifs[k].udp_handler = mq_rx;
		netdev_set_rx_poll(&pairs[k], 1);
	}
	uint8_t mac[6];
	if (resolve(peer, mac) < 0) {
		RESULT(name, "fail", " reason=arp-timeout peer=%s", ip_str(peer, b));
		return EXIT_FAIL;
	}
	exchange(mac, peer, pport, count, 1);
	uint64_t own = 0, other = 0;
	for (unsigned int a = 0; a < npairs; a++)
		for (unsigned int k = 0; k < npairs; k++)
			*(a == k ? &own : &other) += got[a][k];
	int wide = tap_queues(mac, peer, pport);

	/* hold=1: wait (up to 120 s) for a "GO" to port 20000 while the host
	 * snapshots and restores the VM, then the same exchange again: the
	 * restored device must have put the same pairs back in use. */
	uint64_t own_after = own, other_after = other, config_irqs = 0;
	int wide_after = wide, hold = (int)cmdline_get_u64("hold", 0);
	int announce_seen = 0, announce_ack = -1, announce_cleared = 0;
	if (hold) {
		kit_printf("info net-mq holding pairs=%u own_queue=%lu tap_queues=%d\n", npairs, own, wide);
		uint64_t t0 = rdtsc(), irqs0 = kit_virtio_config_irqs;
		while (!go && rdtsc() - t0 < 120 * tsc_hz)
			poll_all();
		kit_printf("info net-mq go=%d\n", go);
		/* A restored device asks for announcements (GUEST_ANNOUNCE,
		 * §5.1.6.5.4): VIRTIO_NET_S_ANNOUNCE with a config interrupt.
		 * The driver sends a gratuitous ARP, then acks. */
		config_irqs = kit_virtio_config_irqs - irqs0;
		announce_seen = (virtio_cfg16(&pairs[0].vd, 6) & 2) != 0;
		if (announce_seen) {
			arp_request(&nifs[0], nifs[0].ip);
			netdev_tx_flush(&pairs[0]);
			static const uint8_t ack[2] = { 3, 0 }; /* VIRTIO_NET_CTRL_ANNOUNCE, ANNOUNCE_ACK */
			announce_ack = ctrl_cmd(ack, sizeof(ack), 0, &used);
			announce_cleared = (virtio_cfg16(&pairs[0].vd, 6) & 2) == 0;
		}
		exchange(mac, peer, pport, count, 1);
		own_after = other_after = 0;
		for (unsigned int a = 0; a < npairs; a++)
			for (unsigned int k = 0; k < npairs; k++)
				*(a == k ? &own_after : &other_after) += got[a][k];
		wide_after = tap_queues(mac, peer, pport);
	}

	/* 3. Back to the first pair alone. */
	int narrow_set = set_pairs(1);
	exchange(mac, peer, pport, count, 0);
	uint64_t first = 0, elsewhere = 0;
	for (unsigned int a = 0; a < npairs; a++)
		for (unsigned int k = 0; k < npairs; k++)
			*(a == 0 ? &first : &elsewhere) += got[a][k];
	int narrow = tap_queues(mac, peer, pport);

	uint64_t want = count * npairs;
	int ok = ctrl_ok && own == want && other == 0 && narrow_set == CTRL_OK && first == want && elsewhere == 0 &&
		 wide == (int)npairs && narrow == 1 && own_after == want && other_after == 0 && wide_after == (int)npairs &&
		 (!hold || (announce_seen && announce_ack == CTRL_OK && announce_cleared && config_irqs >= 1));
	for (unsigned int k = 0; k < npairs; k++)
		ok = ok && pairs[k].ok;
	RESULT(name, ok ? "pass" : "fail",
	       " pairs=%u sent=%lu own_queue=%lu other_queue=%lu narrow_set=%d narrow_first=%lu narrow_elsewhere=%lu "
	       "tap_queues_wide=%d tap_queues_narrow=%d own_after_hold=%lu other_after_hold=%lu tap_queues_after_hold=%d "
	       "announce_seen=%d announce_ack=%d announce_cleared=%d config_irqs=%lu",
	       npairs, want, own, other, narrow_set, first, elsewhere, wide, narrow, own_after, other_after, wide_after,
	       announce_seen, announce_ack, announce_cleared, config_irqs);
	return ok ? 0 : EXIT_FAIL;
}

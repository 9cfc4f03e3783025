/* net.c - virtio-net driver (virtio 1.2 §5.1), ring 3, on the transport
 * of virtio.c. Queue 0 receives, queue 1 transmits; with netdev_init_mq,
 * each queue pair k (queues 2k, 2k+1) is a struct netdev of its own over
 * one device, and the control queue is the caller's. Every buffer is one NET_BUF_LEN (2048-byte)
 * descriptor holding the 12-byte virtio_net_hdr and then the frame:
 * descriptor i of a queue always points at buffer i of that queue, so a
 * used id names its buffer directly. Both queues use MSI-X table entry 0;
 * transmit interrupts are suppressed (the driver reclaims by polling), so
 * what arrives on vector 0x40 is the receive queue's. */
#include "kit.h"
#include "net.h"

#define MAX_QSIZE 256
#define TIMEOUT_S 5

static int flag_on(const char *key)
{
	return cmdline_get_u64(key, 1) != 0;
}

static int fail(struct netdev *n, const char *why)
{
	n->error = why;
	n->ok = 0;
	return -1;
}

/* struct virtio_net_config (§5.1.4): mac[6] @0, status @6 (u16). Read
 * with the fields' widths inside a generation loop (§4.1.3.1). */
static void read_config(struct netdev *n)
{
	struct virtio_dev *v = &n->vd;
	uint8_t gen;
	do {
		gen = virtio_config_generation(v);
		if (virtio_has(v, NET_F_MAC))
			for (int i = 0; i < 6; i++)
				n->mac[i] = virtio_cfg8(v, (uint32_t)i);
		n->link_status = virtio_has(v, NET_F_STATUS) ? virtio_cfg16(v, 6) : 0xffff;
	} while (gen != virtio_config_generation(v));
	n->mac_from_device = virtio_has(v, NET_F_MAC);
	if (!n->mac_from_device) {
		/* §5.1.5: without VIRTIO_NET_F_MAC the driver picks one
		 * (locally administered, unicast). */
		static const uint8_t fallback[6] = { 0x52, 0x54, 0x00, 0x6b, 0x69, 0x74 };
		memcpy(n->mac, fallback, 6);
	}
}

/* Give receive buffer `id` to the device (not yet published). The
 * descriptor never changes; only the ring entry is written. */
static void rx_give(struct netdev *n, uint16_t id)
{
	vq_add(&n->rxq, id);
}

/* The first virtio-net function (1af4:1041), or NULL. */
static struct pci_func *net_find(void)
{
	struct pci_func *f;
	int nf = pci_scan(&f);
	for (int i = 0; i < nf; i++)
		if (f[i].vendor == VIRTIO_PCI_VENDOR && f[i].device == VIRTIO_NET_PCI_DEVICE)
			return &f[i];
	return NULL;
}

/* The features the command line asks for (besides MQ). */
static uint64_t net_wanted(void)
{
	uint64_t want = 1ull << NET_F_MAC | 1ull << NET_F_STATUS;
	if (flag_on("mrg_rxbuf"))
		want |= 1ull << NET_F_MRG_RXBUF;
	if (flag_on("event_idx"))
		want |= 1ull << VIRTIO_F_EVENT_IDX;
	if (cmdline_get_u64("uso", 0))
		want |= 1ull << NET_F_CSUM | 1ull << NET_F_HOST_USO;
	return want;
}

static void net_clocks(struct netdev *n)
{
	n->tsc_hz = kit_tsc_hz();
	if (!n->tsc_hz)
		n->tsc_hz = 4000000000ull; /* no timer: assume the fastest TSC for timeouts */
	n->timeout = TIMEOUT_S * n->tsc_hz;
}

/* Queue pair `pair` of n->vd (negotiated, before DRIVER_OK): its receive and
 * transmit queues (2 pair, 2 pair + 1, §5.1.2), their buffers and descriptors. */
static int pair_setup(struct netdev *n, uint16_t pair)
{
	uint16_t qmax = (uint16_t)cmdline_get_u64("qsize", MAX_QSIZE);
	if (virtio_setup_queue(&n->vd, &n->rxq, (uint16_t)(2 * pair), qmax) < 0 ||
	    virtio_setup_queue(&n->vd, &n->txq, (uint16_t)(2 * pair + 1), qmax) < 0)
		return fail(n, n->vd.error);
	n->mrg_rxbuf = virtio_has(&n->vd, NET_F_MRG_RXBUF);
	n->event_idx = virtio_has(&n->vd, VIRTIO_F_EVENT_IDX);
	/* §5.1.3.1: HOST_USO needs CSUM; a device offering one without the other gets neither used. */
	n->uso = virtio_has(&n->vd, NET_F_CSUM) && virtio_has(&n->vd, NET_F_HOST_USO);
	read_config(n);

	uint16_t rs = n->rxq.size, ts = n->txq.size;
	n->rxbufs = dma_alloc((uint64_t)rs * NET_BUF_LEN, 4096);
	n->txbufs = dma_alloc((uint64_t)ts * NET_BUF_LEN, 4096);
	n->tx_free = dma_alloc(2ull * ts, 64);
	n->tx_busy = dma_alloc(ts, 64);
	n->tx_tail = dma_alloc(2ull * ts, 64);
	n->rx_asm = dma_alloc(NET_RX_ASM, 64);
	if (!n->rxbufs || !n->txbufs || !n->tx_free || !n->tx_busy || !n->tx_tail || !n->rx_asm) {
		virtio_fail(&n->vd);
		return fail(n, "out-of-dma-memory");
	}
	/* §5.1.6.3: NET_BUF_LEN (2048) covers both cases: with MRG_RXBUF each
	 * buffer must hold at least the header; without it (and without
	 * GUEST_TSO/UFO) at least 1526 bytes (header + 1514-byte frame). */
	for (uint16_t i = 0; i < rs; i++)
		n->rxq.desc[i] = (struct virtq_desc){ (uint64_t)(uintptr_t)(n->rxbufs + (uint64_t)i * NET_BUF_LEN),
						      NET_BUF_LEN, VIRTQ_DESC_F_WRITE, 0 };
	for (uint16_t i = 0; i < ts; i++) {
		n->txq.desc[i] = (struct virtq_desc){ (uint64_t)(uintptr_t)(n->txbufs + (uint64_t)i * NET_BUF_LEN), 0, 0,
						      0 };
		n->tx_free[i] = (uint16_t)(ts - 1 - i);
		n->tx_tail[i] = NET_NO_TAIL;
	}
	n->tx_nfree = ts;
	vq_set_poll(&n->txq, 1);
	return 0;
}

/* After DRIVER_OK: fill the receive queue (notifications only after
 * DRIVER_OK, §3.1.1). */
static void pair_start(struct netdev *n)
{
	for (uint16_t i = 0; i < n->rxq.size; i++)
		rx_give(n, i);
	vq_kick(&n->rxq);
	n->ok = 1;
}

int netdev_init(struct netdev *n)
{
	memset(n, 0, sizeof(*n));
	net_clocks(n);
	struct pci_func *f = net_find();
	if (!f)
		return fail(n, "no-virtio-net");
	if (virtio_init(&n->vd, f, net_wanted()) < 0 || pair_setup(n, 0) < 0)
		return fail(n, n->vd.error ? n->vd.error : n->error);
	if (virtio_driver_ok(&n->vd) < 0)
		return fail(n, n->vd.error);
	pair_start(n);
	return 0;
}

int netdev_init_mq(struct netdev *pairs, unsigned int *count, struct virtq *ctrl)
{
	struct netdev *first = &pairs[0];
	memset(pairs, 0, sizeof(*pairs) * NET_MQ_MAX);
	*count = 0;
	net_clocks(first);
	struct pci_func *f = net_find();
	if (!f)
		return fail(first, "no-virtio-net");
	if (virtio_init(&first->vd, f,
			net_wanted() | 1ull << NET_F_CTRL_VQ | 1ull << NET_F_MQ | 1ull << NET_F_GUEST_ANNOUNCE) < 0)
		return fail(first, first->vd.error);
	if (!virtio_has(&first->vd, NET_F_CTRL_VQ) || !virtio_has(&first->vd, NET_F_MQ)) {
		virtio_fail(&first->vd);
		return fail(first, "no-mq");
	}
	/* §5.1.4: max_virtqueue_pairs at 8, 1...0x8000. */
	uint16_t max = virtio_cfg16(&first->vd, 8);
	if (max < 1 || max > NET_MQ_MAX) {
		virtio_fail(&first->vd);
		return fail(first, max < 1 ? "bad-max-pairs" : "too-many-pairs");
	}
	for (uint16_t k = 0; k < max; k++) {
		if (k) {
			pairs[k].vd = first->vd;
			net_clocks(&pairs[k]);
		}
		if (pair_setup(&pairs[k], k) < 0)
			return fail(first, pairs[k].error);
	}
	/* §5.1.2: the control queue follows the max_virtqueue_pairs pairs. */
	if (virtio_setup_queue(&first->vd, ctrl, (uint16_t)(2 * max), 16) < 0)
		return fail(first, first->vd.error);
	vq_set_poll(ctrl, 1);
	if (virtio_driver_ok(&first->vd) < 0)
		return fail(first, first->vd.error);
	for (uint16_t k = 0; k < max; k++)
		pair_start(&pairs[k]);
	*count = max;
	return 0;
}

void netdev_set_rx_poll(struct netdev *n, int poll)
{
	vq_set_poll(&n->rxq, poll);
}

/* ---- transmit ---- */

unsigned int netdev_tx_reclaim(struct netdev *n)
{
	uint32_t id, len;
	while (vq_get_used(&n->txq, &id, &len)) {
		if (id >= n->txq.size || !n->tx_busy[id]) {
			fail(n, "tx-bad-used-id");
			break;
		}
		n->tx_busy[id] = 0;
		n->tx_free[n->tx_nfree++] = (uint16_t)id;
		uint16_t tail = n->tx_tail[id];
		if (tail != NET_NO_TAIL) {
			/* A USO chain: its payload descriptor goes back to its own buffer. */
			n->tx_tail[id] = NET_NO_TAIL;
			n->txq.desc[id].flags = 0;
			n->txq.desc[tail].addr = (uint64_t)(uintptr_t)(n->txbufs + (uint64_t)tail * NET_BUF_LEN);
			n->tx_busy[tail] = 0;
			n->tx_free[n->tx_nfree++] = tail;
		}
	}
	return n->tx_nfree;
}

/* A free transmit descriptor, waiting for one as netdev_tx_buf says; -1 if none. */
static int tx_take(struct netdev *n)
{
	if (!n->ok)
		return -1;
	if (!n->tx_nfree && !netdev_tx_reclaim(n)) {
		/* Everything is in flight: make sure the device knows, then wait. */
		vq_kick(&n->txq);
		if (n->nowait) {
			n->tx_drops++;
			return -1;
		}
		n->tx_full_waits++;
		uint64_t t0 = rdtsc();
		while (!netdev_tx_reclaim(n)) {
			if (!n->ok)
				return -1;
			if (rdtsc() - t0 > n->timeout) {
				fail(n, (virtio_status(&n->vd) & VIRTIO_S_NEEDS_RESET) ? "device-needs-reset"
											: "tx-timeout");
				return -1;
			}
			cpu_relax();
		}
	}
	return n->tx_free[--n->tx_nfree];
}

uint8_t *netdev_tx_buf(struct netdev *n)
{
	int taken = tx_take(n);
	if (taken < 0)
		return NULL;
	uint16_t id = (uint16_t)taken;
	uint8_t *b = n->txbufs + (uint64_t)id * NET_BUF_LEN;
	memset(b, 0, NET_HDR_LEN); /* no offloads: flags 0, GSO_NONE; num_buffers 0 on transmit */
	return b + NET_HDR_LEN;
}

static uint16_t tx_id(struct netdev *n, uint8_t *frame)
{
	return (uint16_t)((uint64_t)(frame - NET_HDR_LEN - n->txbufs) / NET_BUF_LEN);
}

void netdev_tx_commit(struct netdev *n, uint8_t *frame, uint32_t len)
{
	uint16_t id = tx_id(n, frame);
	n->txq.desc[id].len = NET_HDR_LEN + len;
	n->tx_busy[id] = 1;
	vq_add(&n->txq, id);
	n->tx_frames++;
	n->tx_bytes += len;
}

int netdev_tx_commit_uso(struct netdev *n, uint8_t *frame, uint32_t hdr_len, const uint8_t *payload,
			 uint32_t payload_len, uint16_t seg)
{
	uint16_t id = tx_id(n, frame);
	int tail = tx_take(n);
	if (tail < 0) {
		netdev_tx_abort(n, frame);
		return -1;
	}
	/* §5.1.6.2: NEEDS_CSUM with the UDP checksum field at csum_start +
	 * csum_offset (the caller stored the pseudo-header sum there), and
	 * GSO_UDP_L4 cut into seg-byte payloads after hdr_len header bytes. */
	struct virtio_net_hdr *h = (struct virtio_net_hdr *)(frame - NET_HDR_LEN);
	h->flags = NET_HDR_F_NEEDS_CSUM;
	h->gso_type = NET_HDR_GSO_UDP_L4;
	h->hdr_len = (uint16_t)hdr_len;
	h->gso_size = seg;
	h->csum_start = (uint16_t)(hdr_len - 8); /* the UDP header ends the headers */
	h->csum_offset = 6;
	n->txq.desc[id].len = NET_HDR_LEN + hdr_len;
	n->txq.desc[id].flags = VIRTQ_DESC_F_NEXT;
	n->txq.desc[id].next = (uint16_t)tail;
	n->txq.desc[tail] = (struct virtq_desc){ (uint64_t)(uintptr_t)payload, payload_len, 0, 0 };
	n->tx_tail[id] = (uint16_t)tail;
	n->tx_busy[id] = 1;
	n->tx_busy[tail] = 1;
	vq_add(&n->txq, id);
	n->tx_frames++;
	n->tx_bytes += hdr_len + payload_len;
	return 0;
}

void netdev_tx_abort(struct netdev *n, uint8_t *frame)
{
	n->tx_free[n->tx_nfree++] = tx_id(n, frame);
}

void netdev_tx_flush(struct netdev *n)
{
	vq_kick(&n->txq);
}

/* ---- receive ---- */

/* The next used receive element, waiting up to the timeout if wait. */
static int rx_next(struct netdev *n, uint32_t *id, uint32_t *len, int wait)
{
	uint64_t t0 = wait ? rdtsc() : 0;
	while (!vq_get_used(&n->rxq, id, len)) {
		if (!wait || rdtsc() - t0 > n->timeout)
			return 0;
		cpu_relax();
	}
	if (*id >= n->rxq.size || *len > NET_BUF_LEN) {
		fail(n, "rx-bad-used-element");
		return 0;
	}
	return 1;
}

/* nowait: is the frame at the head of the used ring complete, i.e. are
 * all its num_buffers elements used? Only looks. A head that the checks
 * will reject anyway counts as complete (so it is taken and dropped). */
static int rx_head_complete(struct netdev *n)
{
	struct virtq *q = &n->rxq;
	uint16_t ready = (uint16_t)(q->used->idx - q->last_used);
	if (!ready)
		return 0;
	if (!n->mrg_rxbuf)
		return 1;
	barrier(); /* idx before the element */
	volatile struct virtq_used_elem *e = &q->used->ring[q->last_used % q->size];
	uint32_t id = e->id, len = e->len;
	if (id >= q->size || len > NET_BUF_LEN || len < NET_HDR_LEN)
		return 1;
	uint16_t nbuf = ((const volatile struct virtio_net_hdr *)(n->rxbufs + (uint64_t)id * NET_BUF_LEN))->num_buffers;
	return nbuf <= ready || nbuf > q->size;
}

unsigned int netdev_rx_poll(struct netdev *n, netdev_rx_fn cb, void *ctx, unsigned int budget)
{
	unsigned int done = 0;
	uint32_t id, len;
	while (n->ok && done < budget && (!n->nowait || rx_head_complete(n)) && rx_next(n, &id, &len, 0)) {
		uint8_t *b = n->rxbufs + (uint64_t)id * NET_BUF_LEN;
		const struct virtio_net_hdr *h = (const struct virtio_net_hdr *)b;
		uint16_t nbuf = n->mrg_rxbuf ? h->num_buffers : 1;
		if (len < NET_HDR_LEN || nbuf == 0) {
			n->rx_errors++;
			rx_give(n, (uint16_t)id);
			continue;
		}
		if (nbuf == 1) {
			cb(ctx, b + NET_HDR_LEN, len - NET_HDR_LEN);
			rx_give(n, (uint16_t)id);
		} else {
			/* §5.1.6.4: the frame continues in the next nbuf-1 used
			 * buffers (no header in those). Gather, then hand up. */
			uint32_t have = len - NET_HDR_LEN;
			int ok = have <= NET_RX_ASM;
			if (ok)
				memcpy(n->rx_asm, b + NET_HDR_LEN, have);
			rx_give(n, (uint16_t)id);
			for (uint16_t k = 1; k < nbuf; k++) {
				if (!rx_next(n, &id, &len, !n->nowait)) {
					n->rx_errors++;
					ok = 0;
					break;
				}
				uint8_t *c = n->rxbufs + (uint64_t)id * NET_BUF_LEN;
				if (ok && len <= NET_RX_ASM - have) {
					memcpy(n->rx_asm + have, c, len);
					have += len;
				} else {
					ok = 0;
				}
				rx_give(n, (uint16_t)id);
			}
			if (!ok) {
				n->rx_errors++;
				continue;
			}
			n->rx_merged++;
			cb(ctx, n->rx_asm, have);
			len = have + NET_HDR_LEN;
		}
		n->rx_frames++;
		n->rx_bytes += len - NET_HDR_LEN;
		done++;
	}
	vq_kick(&n->rxq); /* no-op if nothing was given back */
	return done;
}

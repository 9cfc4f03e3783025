/* hostile.c - the hostile guest (design.md §4, §6): test=hostile-blk,
 * test=hostile-net (and test=hostile for both) send malformed queues to
 * the device, one scenario after another, each followed by a recovery:
 * device reset (status 0, wait until it reads 0), full re-initialisation
 * and one normal request (blk: a 4 KiB write and read-back with pattern
 * check; net: a frame transmitted and, with dhcp=1 on a `local interface`,
 * the device's DHCP OFFER received). hostile=NAME runs one scenario
 * (NAME as printed, with or without the "hostile-" and "blk-"/"net-"
 * prefixes).
 *
 * A scenario passes when its outcome is one the scenario allows:
 *   error        the device failed that request (blk status IOERR/UNSUPP
 *                or used length 0 without a status; net: the chain came
 *                back and, where checkable, the frame was not sent), or a
 *                setting was refused (FEATURES_OK not kept)
 *   needs-reset  DEVICE_NEEDS_RESET (status bit 0x40) within the timeout
 *   ignored      harmless nonsense had no effect and the device works on
 *                (or, where a scenario allows it, a strange but legal
 *                request was served correctly)
 * and the recovery afterwards succeeds. Anything else (accepted, hang,
 * bad-used, late-used, setup-failed) fails the scenario. Every wait is
 * bounded by the TSC. Output per scenario:
 *   RESULT name=hostile-<scenario> status=pass|fail outcome=.. recovered=0|1 ...
 * and finally
 *   RESULT name=hostile status=pass|fail scenarios=N passed=M device=blk|net|all
 */
#include "kit.h"
#include "virtio.h"
#include "blk.h"
#include "net.h"

#define QSIZE      64          /* entries per queue in normal set-ups */
#define QMAX       256         /* ring memory is sized for this */
#define WAIT_MS    1500        /* per scenario request */
#define RESET_MS   2000
#define NRX        16          /* receive buffers given in normal set-ups */
#define BUF        2048        /* net buffer */
#define FAR_AWAY   (64ull << 30) /* 64 GiB: no RAM there */
#define IOAPIC     0xfec00000ull
#define BAR_WINDOW 0xc0000000ull

enum outcome { O_ERROR, O_RESET, O_IGNORED, O_ACCEPTED, O_HANG, O_BADUSED, O_LATE, O_SETUP, O_N };
static const char *const outcome_name[O_N] = { "error", "needs-reset", "ignored", "accepted",
					       "hang", "bad-used", "late-used", "setup-failed" };
#define A_ERR (1u << O_ERROR)
#define A_RST (1u << O_RESET)
#define A_IGN (1u << O_IGNORED)
#define A_BAD (A_ERR | A_RST)

/* Init options: the normal set-up with one thing wrong. */
struct hopt {
	uint64_t feat_clear;     /* features not to negotiate */
	int bad_q;               /* queue whose settings below apply (-1: none) */
	uint64_t desc, avail, used; /* ring addresses to program instead (0: the real ones) */
	int set_size;            /* program this queue size instead */
	uint32_t size;
	uint16_t qsize;          /* entries wanted (0: QSIZE) */
};

struct hctx {
	int net;
	struct pci_func *pci;
	struct virtio_dev vd;
	struct virtq q[2];
	uint16_t nq;
	uint8_t *ring[2][3];     /* desc, avail, used memory, one page each (QMAX entries) */
	uint64_t want;
	uint64_t hz;
	uint64_t ram_top;        /* end of the RAM below 4 GiB */
	/* blk */
	struct blk_hdr *hdr;
	volatile uint8_t *status;
	struct virtq_desc *ind, *ind2;
	uint8_t *data;           /* 64 KiB */
	uint64_t capacity;
	/* net */
	uint8_t mac[6];
	uint8_t *rxb, *txb;      /* QMAX x BUF each */
	int dhcp;
	uint32_t xid;
};

struct hres {
	int used_len, status_byte;
	volatile uint8_t *status_at; /* where this request's status byte is, if not c->status */
	const char *why;
	char extra[80];
};

static uint64_t ms(struct hctx *c, uint64_t n)
{
	return c->hz / 1000 * n;
}

static uint8_t h_status(struct hctx *c)
{
	return mmio_read8(c->vd.common + CC_STATUS);
}

static void h_set_status(struct hctx *c, uint8_t bits)
{
	mmio_write8(c->vd.common + CC_STATUS, h_status(c) | bits);
}

/* Device reset (§2.4, §4.1.4.3.2): write 0, wait until it reads 0. */
static int h_reset(struct hctx *c)
{
	if (!c->vd.common)
		return -1;
	mmio_write8(c->vd.common + CC_STATUS, 0);
	uint64_t t0 = rdtsc();
	while (h_status(c) != 0) {
		if (rdtsc() - t0 > ms(c, RESET_MS))
			return -1;
		cpu_relax();
	}
	return 0;
}

static void q_clear(struct hctx *c, int qi)
{
	memset(c->ring[qi][0], 0, 4096);
	memset(c->ring[qi][1], 0, 4096);
	memset(c->ring[qi][2], 0, 4096);
}

/* Program queue qi on fixed ring memory (cleared), with o's faults if o->bad_q == qi. */
static int h_setup_queue(struct hctx *c, int qi, const struct hopt *o)
{
	volatile uint8_t *cc = c->vd.common;
	struct virtq *q = &c->q[qi];
	memset(q, 0, sizeof(*q));
	mmio_write16(cc + CC_Q_SELECT, (uint16_t)qi);
	uint16_t dev_size = mmio_read16(cc + CC_Q_SIZE), want = o->qsize ? o->qsize : QSIZE, size = 1;
	if (!dev_size)
		return -1;
	while ((uint32_t)size * 2 <= dev_size && (uint32_t)size * 2 <= want)
		size *= 2;
	q_clear(c, qi);
	q->size = size;
	q->index = (uint16_t)qi;
	q->desc = (struct virtq_desc *)c->ring[qi][0];
	q->avail = (volatile struct virtq_avail *)c->ring[qi][1];
	q->used = (volatile struct virtq_used *)c->ring[qi][2];
	q->used_event = &q->avail->ring[size];
	q->avail_event = (volatile uint16_t *)&q->used->ring[size];
	int bad = o->bad_q == qi;
	uint64_t d = (uint64_t)(uintptr_t)q->desc, a = (uint64_t)(uintptr_t)q->avail, u = (uint64_t)(uintptr_t)q->used;
	if (bad && o->desc)
		d = o->desc;
	if (bad && o->avail)
		a = o->avail;
	if (bad && o->used)
		u = o->used;
	mmio_write16(cc + CC_Q_SIZE, bad && o->set_size ? (uint16_t)o->size : size);
	mmio_write32(cc + CC_Q_DESCLO, (uint32_t)d);
	mmio_write32(cc + CC_Q_DESCHI, (uint32_t)(d >> 32));
	mmio_write32(cc + CC_Q_AVAILLO, (uint32_t)a);
	mmio_write32(cc + CC_Q_AVAILHI, (uint32_t)(a >> 32));
	mmio_write32(cc + CC_Q_USEDLO, (uint32_t)u);
	mmio_write32(cc + CC_Q_USEDHI, (uint32_t)(u >> 32));
	mmio_write16(cc + CC_Q_MSIX, 0);
	uint64_t at = (uint64_t)mmio_read16(cc + CC_Q_NOFF) * c->vd.notify_mult;
	if (at + 2 > c->vd.notify_len)
		return -1;
	q->notify = (volatile uint16_t *)(c->vd.notify_base + at);
	mmio_write16(cc + CC_Q_ENABLE, 1);
	return 0;
}

/* Reset + negotiate + queues + DRIVER_OK. 0: live; 1: DRIVER_OK refused
 * (NEEDS_RESET or FAILED, or DRIVER_OK not kept); -1: set-up failed. */
static int h_init(struct hctx *c, const struct hopt *o)
{
	if (virtio_init(&c->vd, c->pci, c->want & ~o->feat_clear) < 0)
		return -1;
	for (int qi = 0; qi < c->nq; qi++)
		if (h_setup_queue(c, qi, o) < 0)
			return -1;
	h_set_status(c, VIRTIO_S_DRIVER_OK);
	uint64_t t0 = rdtsc();
	do {
		uint8_t s = h_status(c);
		if (s & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED) || !(s & VIRTIO_S_DRIVER_OK))
			return 1;
	} while (rdtsc() - t0 < ms(c, 20));
	return 0;
}

static const struct hopt normal = { .bad_q = -1 };

static void D(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	q->desc[i] = (struct virtq_desc){ addr, len, flags, next };
}

static uint64_t P(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* Put head in the avail ring, publish, notify (always). */
static void h_submit(struct virtq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx % q->size] = head;
	q->avail_idx++;
	barrier();
	q->avail->idx = q->avail_idx;
	mb();
	*q->notify = q->index;
}

enum { W_TIMEOUT, W_USED, W_RESET };

/* The next used element of q, NEEDS_RESET, or a timeout. */
static int h_wait(struct hctx *c, struct virtq *q, uint32_t *id, uint32_t *len, uint64_t tmo_ms)
{
	uint64_t t0 = rdtsc();
	for (;;) {
		if (q->used->idx != q->last_used) {
			barrier();
			volatile struct virtq_used_elem *e = &q->used->ring[q->last_used % q->size];
			*id = e->id;
			*len = e->len;
			q->last_used++;
			return W_USED;
		}
		if (h_status(c) & VIRTIO_S_NEEDS_RESET)
			return W_RESET;
		if (rdtsc() - t0 > ms(c, tmo_ms))
			return W_TIMEOUT;
		cpu_relax();
	}
}

/* Writes into the rings after a reset completed are a device bug: clear the
 * used rings, give the device a moment, and look. */
static int late_used(struct hctx *c)
{
	for (int qi = 0; qi < c->nq; qi++)
		memset(c->ring[qi][2], 0, 4096);
	mb();
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < ms(c, 100))
		cpu_relax();
	for (int qi = 0; qi < c->nq; qi++) {
		const volatile uint8_t *u = c->ring[qi][2];
		for (int i = 0; i < 4096; i++)
			if (u[i])
				return 1;
	}
	return 0;
}

/* ======================= virtio-blk ======================= */

#define BLK_WANT (1ull << 1 | 1ull << 2 | 1ull << 5 | 1ull << 6 | 1ull << 9 | 1ull << 13 | 1ull << 14 | \
		  1ull << VIRTIO_F_INDIRECT_DESC)

static void bhdr(struct hctx *c, uint32_t type, uint64_t sector)
{
	c->hdr->type = type;
	c->hdr->reserved = 0;
	c->hdr->sector = sector;
	*c->status = 0xff;
}

/* Publish head, wait, classify the completion of a request that should fail. */
static int blk_outcome(struct hctx *c, uint16_t head, struct hres *r)
{
	struct virtq *q = &c->q[0];
	uint32_t id = 0, len = 0;
	h_submit(q, head);
	int w = h_wait(c, q, &id, &len, WAIT_MS);
	if (w == W_RESET)
		return O_RESET;
	if (w == W_TIMEOUT)
		return O_HANG;
	volatile uint8_t *sp = r->status_at ? r->status_at : c->status;
	r->used_len = (int)len;
	r->status_byte = *sp;
	if (id != head) {
		r->why = "used-id-not-head";
		return O_BADUSED;
	}
	if (*sp == 0)
		return O_ACCEPTED; /* served as if it were fine */
	if (*sp == 1 || *sp == 2)
		return O_ERROR;
	if (*sp == 0xff && len == 0)
		return O_ERROR; /* no status written, nothing used: dropped */
	r->why = "no-status-but-used-len";
	return O_BADUSED;
}

/* A plain request on descriptors 0..2; returns the status byte or -1. */
static int blk_rw(struct hctx *c, uint32_t type, uint64_t sector, uint8_t *buf, uint32_t len)
{
	struct virtq *q = &c->q[0];
	bhdr(c, type, sector);
	D(q, 0, P(c->hdr), 16, VIRTQ_DESC_F_NEXT, 1);
	D(q, 1, P(buf), len, (uint16_t)((type == BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT), 2);
	D(q, 2, P(c->status), 1, VIRTQ_DESC_F_WRITE, 0);
	h_submit(q, 0);
	uint32_t id, l;
	if (h_wait(c, q, &id, &l, WAIT_MS) != W_USED || id != 0)
		return -1;
	return *c->status;
}

static int blk_std(struct hctx *c)
{
	if (h_init(c, &normal) != 0)
		return -1;
	c->capacity = virtio_cfg64(&c->vd, 0);
	return 0;
}

/* Recovery: reset, init, write 4 KiB of pattern, read it back. */
static int blk_recover(struct hctx *c, unsigned int n, const char **why)
{
	if (h_reset(c) < 0) {
		*why = "reset-timeout";
		return 0;
	}
	if (blk_std(c) < 0 || c->capacity < 64) {
		*why = "reinit-failed";
		return 0;
	}
	uint64_t sector = 32 + (n * 8) % (c->capacity - 40), k = 0x9E3779B97F4A7C15ull * (n + 1);
	uint64_t *w = (uint64_t *)c->data;
	for (int i = 0; i < 512; i++)
		w[i] = (sector * 512 + 8ull * i) ^ k;
	if (blk_rw(c, BLK_T_OUT, sector, c->data, 4096) != 0) {
		*why = "write-failed";
		return 0;
	}
	memset(c->data, 0, 4096);
	if (blk_rw(c, BLK_T_IN, sector, c->data, 4096) != 0) {
		*why = "read-failed";
		return 0;
	}
	for (int i = 0; i < 512; i++)
		if (w[i] != ((sector * 512 + 8ull * i) ^ k)) {
			*why = "pattern-mismatch";
			return 0;
		}
	return 1;
}

#define Q0 (&c->q[0])
#define NX VIRTQ_DESC_F_NEXT
#define WR VIRTQ_DESC_F_WRITE
#define IND VIRTQ_DESC_F_INDIRECT

/* header, one data descriptor (addr, len, flags), status: an IN unless flags lack WRITE */
static int blk_one_data(struct hctx *c, struct hres *r, uint32_t type, uint64_t sector, uint64_t addr, uint32_t len,
			uint16_t dflags)
{
	bhdr(c, type, sector);
	D(Q0, 0, P(c->hdr), 16, NX, 1);
	D(Q0, 1, addr, len, (uint16_t)(dflags | NX), 2);
	D(Q0, 2, P(c->status), 1, WR, 0);
	return blk_outcome(c, 0, r);
}

#define STD()                             \
	do {                              \
		if (blk_std(c) < 0)       \
			return O_SETUP;   \
	} while (0)

static int b_avail_jump(struct hctx *c, struct hres *r)
{
	STD();
	(void)r;
	Q0->avail->idx = (uint16_t)(Q0->size + 5); /* more than size past last_avail */
	mb();
	*Q0->notify = 0;
	uint32_t id, len;
	int w = h_wait(c, Q0, &id, &len, WAIT_MS);
	return w == W_RESET ? O_RESET : w == W_USED ? O_ACCEPTED : O_HANG;
}

static int b_head_oob(struct hctx *c, struct hres *r)
{
	STD();
	bhdr(c, BLK_T_IN, 0);
	return blk_outcome(c, (uint16_t)(Q0->size + 5), r);
}

static int b_head_ffff(struct hctx *c, struct hres *r)
{
	STD();
	bhdr(c, BLK_T_IN, 0);
	return blk_outcome(c, 0xffff, r);
}

/* 0 -> 1 -> ... -> size-1 -> 1: more descriptors than the queue has */
static int b_chain_too_long(struct hctx *c, struct hres *r)
{
	STD();
	bhdr(c, BLK_T_IN, 0);
	uint16_t n = Q0->size;
	D(Q0, 0, P(c->hdr), 16, NX, 1);
	for (uint16_t i = 1; i < n; i++)
		D(Q0, i, P(c->data) + 512ull * (i % 64), 512, WR | NX, (uint16_t)(i + 1 < n ? i + 1 : 1));
	return blk_outcome(c, 0, r);
}

/* A valid 3-entry indirect table: header, 512 bytes in, status. */
static void ind3(struct hctx *c, struct virtq_desc *t)
{
	t[0] = (struct virtq_desc){ P(c->hdr), 16, NX, 1 };
	t[1] = (struct virtq_desc){ P(c->data), 512, WR | NX, 2 };
	t[2] = (struct virtq_desc){ P(c->status), 1, WR, 0 };
}

static int b_indirect_not_negotiated(struct hctx *c, struct hres *r)
{
	struct hopt o = normal;
	o.feat_clear = 1ull << VIRTIO_F_INDIRECT_DESC;
	if (h_init(c, &o) != 0)
		return O_SETUP;
	if (virtio_has(&c->vd, VIRTIO_F_INDIRECT_DESC))
		return O_SETUP;
	bhdr(c, BLK_T_IN, 0);
	ind3(c, c->ind);
	D(Q0, 0, P(c->ind), 48, IND, 0);
	return blk_outcome(c, 0, r);
}

/* Queue of 16, indirect table of 32 entries (a chain longer than the queue,
 * §2.7.5.3.1). A device may refuse it or serve it correctly. */
static int b_indirect_longer_than_queue(struct hctx *c, struct hres *r)
{
	struct hopt o = normal;
	o.qsize = 16;
	if (h_init(c, &o) != 0)
		return O_SETUP;
	bhdr(c, BLK_T_IN, 0);
	memset(c->data, 0x5a, 30 * 512);
	c->ind[0] = (struct virtq_desc){ P(c->hdr), 16, NX, 1 };
	for (uint16_t i = 1; i <= 30; i++)
		c->ind[i] = (struct virtq_desc){ P(c->data) + 512ull * (i - 1), 512, WR | NX, (uint16_t)(i + 1) };
	c->ind[31] = (struct virtq_desc){ P(c->status), 1, WR, 0 };
	D(Q0, 0, P(c->ind), 32 * 16, IND, 0);
	int o2 = blk_outcome(c, 0, r);
	if (o2 == O_ACCEPTED) {
		/* Served: it must have been served right (disk sectors 0..29 hold zeros or
		 * the recovery pattern, never our 0x5a fill). */
		for (int i = 0; i < 30 * 512; i++)
			if (c->data[i] == 0x5a && c->data[i ^ 1] == 0x5a && c->data[i ^ 2] == 0x5a && c->data[i ^ 3] == 0x5a) {
				r->why = "data-not-written";
				return O_BADUSED;
			}
		return O_IGNORED;
	}
	return o2;
}

/* The status descriptor has length 0: the last writable byte is the data's last. */
static int b_zero_len_status(struct hctx *c, struct hres *r)
{
	STD();
	bhdr(c, BLK_T_IN, 0);
	c->data[511] = 0xff;
	D(Q0, 0, P(c->hdr), 16, NX, 1);
	D(Q0, 1, P(c->data), 512, WR | NX, 2);
	D(Q0, 2, P(c->status), 0, WR, 0);
	r->status_at = &c->data[511];
	return blk_outcome(c, 0, r);
}

static int b_straddle_ram_end(struct hctx *c, struct hres *r)
{
	STD();
	if (!c->ram_top)
		return O_SETUP;
	return blk_one_data(c, r, BLK_T_IN, 0, c->ram_top - 2048, 4096, WR);
}

static int b_sector_beyond(struct hctx *c, struct hres *r)
{
	STD();
	return blk_one_data(c, r, BLK_T_IN, c->capacity + 8, P(c->data), 512, WR);
}

static int b_write_past_end(struct hctx *c, struct hres *r)
{
	STD();
	return blk_one_data(c, r, BLK_T_OUT, c->capacity - 1, P(c->data), 4096, 0);
}

/* DISCARD of 200 segments (the device allows max_discard_seg, 32 here). */
static int b_discard_many(struct hctx *c, struct hres *r)
{
	STD();
	uint64_t *s = (uint64_t *)c->data;
	for (int i = 0; i < 200; i++) {
		s[2 * i] = 32 + 8ull * (i % 8);
		s[2 * i + 1] = 8;
	}
	return blk_one_data(c, r, BLK_T_DISCARD, 0, P(c->data), 200 * 16, 0);
}

static int b_discard_huge(struct hctx *c, struct hres *r)
{
	STD();
	uint64_t *s = (uint64_t *)c->data;
	s[0] = 0xfffffffffffffff8ull;
	s[1] = 0xffffffffu;
	return blk_one_data(c, r, BLK_T_DISCARD, 0, P(c->data), 16, 0);
}

static int b_discard_odd(struct hctx *c, struct hres *r)
{
	STD();
	memset(c->data, 0, 64);
	return blk_one_data(c, r, BLK_T_DISCARD, 0, P(c->data), 20, 0);
}

/* An indirect table of 2048 entries: header, 2046 x 512 bytes in, status (1 MiB,
 * more pieces than one preadv takes). Serving it correctly or failing it are both fine. */
static int b_indirect_2046_segments(struct hctx *c, struct hres *r)
{
	STD();
	struct virtq_desc *t = dma_alloc(2048 * 16, 4096);
	if (!t)
		return O_SETUP;
	bhdr(c, BLK_T_IN, 0);
	t[0] = (struct virtq_desc){ P(c->hdr), 16, NX, 1 };
	for (uint16_t i = 1; i <= 2046; i++)
		t[i] = (struct virtq_desc){ P(c->data) + 512ull * (i % 128), 512, WR | NX, (uint16_t)(i + 1) };
	t[2047] = (struct virtq_desc){ P(c->status), 1, WR, 0 };
	D(Q0, 0, P(t), 2048 * 16, IND, 0);
	int o = blk_outcome(c, 0, r);
	return o == O_ACCEPTED ? O_IGNORED : o;
}

/* An indirect table of 0xfffffff0 bytes (268 million entries). */
static int b_indirect_table_huge(struct hctx *c, struct hres *r)
{
	STD();
	bhdr(c, BLK_T_IN, 0);
	ind3(c, c->ind);
	D(Q0, 0, P(c->ind), 0xfffffff0u, IND, 0);
	return blk_outcome(c, 0, r);
}

/* A 4 KiB write made of 4096 one-byte readable pieces (indirect). */
static int b_write_one_byte_pieces(struct hctx *c, struct hres *r)
{
	STD();
	struct virtq_desc *t = dma_alloc(4098 * 16, 4096);
	if (!t)
		return O_SETUP;
	bhdr(c, BLK_T_OUT, 96);
	t[0] = (struct virtq_desc){ P(c->hdr), 16, NX, 1 };
	for (uint16_t i = 1; i <= 4096; i++)
		t[i] = (struct virtq_desc){ P(c->data) + (i - 1), 1, NX, (uint16_t)(i + 1) };
	t[4097] = (struct virtq_desc){ P(c->status), 1, WR, 0 };
	D(Q0, 0, P(t), 4098 * 16, IND, 0);
	int o = blk_outcome(c, 0, r);
	return o == O_ACCEPTED ? O_IGNORED : o;
}

/* ---- set-up faults, shared with net ---- */

static int ring_fault(struct hctx *c, int qi, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct hopt o = normal;
	o.bad_q = qi;
	o.desc = desc;
	o.avail = avail;
	o.used = used;
	int rc = h_init(c, &o);
	if (rc < 0)
		return O_SETUP;
	return rc == 1 && (h_status(c) & VIRTIO_S_NEEDS_RESET) ? O_RESET : rc == 1 ? O_ERROR : O_ACCEPTED;
}

static int size_fault(struct hctx *c, int qi, uint32_t size)
{
	struct hopt o = normal;
	o.bad_q = qi;
	o.set_size = 1;
	o.size = size;
	int rc = h_init(c, &o);
	if (rc < 0)
		return O_SETUP;
	return rc == 1 && (h_status(c) & VIRTIO_S_NEEDS_RESET) ? O_RESET : rc == 1 ? O_ERROR : O_ACCEPTED;
}

static uint64_t ring_addr(struct hctx *c, int qi, int which)
{
	return P(c->ring[qi][which]);
}

static int s_ring_outside_ram(struct hctx *c, struct hres *r)
{
	(void)r;
	return ring_fault(c, c->nq - 1, FAR_AWAY, 0, 0);
}

static int s_ring_straddle_ram_end(struct hctx *c, struct hres *r)
{
	(void)r;
	if (!c->ram_top)
		return O_SETUP;
	return ring_fault(c, c->nq - 1, 0, 0, c->ram_top - 512);
}

static int s_ring_mmio_hole(struct hctx *c, struct hres *r)
{
	(void)r;
	return ring_fault(c, c->nq - 1, 0, IOAPIC, 0);
}

static int s_ring_overflow(struct hctx *c, struct hres *r)
{
	(void)r;
	return ring_fault(c, c->nq - 1, 0, 0, 0xfffffffffffff800ull);
}

static int s_desc_misaligned(struct hctx *c, struct hres *r)
{
	(void)r;
	return ring_fault(c, c->nq - 1, ring_addr(c, c->nq - 1, 0) + 8, 0, 0);
}

static int s_used_misaligned(struct hctx *c, struct hres *r)
{
	(void)r;
	return ring_fault(c, c->nq - 1, 0, 0, ring_addr(c, c->nq - 1, 2) + 2);
}

static int s_avail_misaligned(struct hctx *c, struct hres *r)
{
	(void)r;
	return ring_fault(c, c->nq - 1, 0, ring_addr(c, c->nq - 1, 1) + 1, 0);
}

static int s_size_npot(struct hctx *c, struct hres *r)
{
	(void)r;
	return size_fault(c, c->nq - 1, 48);
}

static int s_size_too_big(struct hctx *c, struct hres *r)
{
	(void)r;
	return size_fault(c, c->nq - 1, 1024);
}

static int s_size_zero(struct hctx *c, struct hres *r)
{
	(void)r;
	int o = size_fault(c, c->nq - 1, 0);
	return o == O_ACCEPTED ? O_IGNORED : o; /* a queue of 0 entries can be taken as off */
}

/* FEATURES_OK with bits the device never offered: FEATURES_OK must not stick (§3.1.1). */
static int s_features_not_offered(struct hctx *c, struct hres *r)
{
	if (virtio_init(&c->vd, c->pci, c->want) < 0) /* finds the caps, learns dev_features */
		return O_SETUP;
	if (h_reset(c) < 0)
		return O_SETUP;
	volatile uint8_t *cc = c->vd.common;
	h_set_status(c, VIRTIO_S_ACKNOWLEDGE);
	h_set_status(c, VIRTIO_S_DRIVER);
	uint64_t extra = ~c->vd.dev_features & 0xfff0000000000000ull; /* bits 52..63: reserved, never offered */
	uint64_t f = (c->vd.dev_features & (c->want | 1ull << VIRTIO_F_VERSION_1)) | extra;
	mmio_write32(cc + CC_GFSELECT, 0);
	mmio_write32(cc + CC_GF, (uint32_t)f);
	mmio_write32(cc + CC_GFSELECT, 1);
	mmio_write32(cc + CC_GF, (uint32_t)(f >> 32));
	h_set_status(c, VIRTIO_S_FEATURES_OK);
	uint8_t s = h_status(c);
	kit_printf("info hostile features-not-offered wrote=0x%lx offered=0x%lx status=0x%x\n", f, c->vd.dev_features, s);
	r->status_byte = s;
	if (!extra)
		return O_SETUP;
	return (s & VIRTIO_S_FEATURES_OK) ? O_ACCEPTED : O_ERROR;
}

/* DRIVER_OK without FEATURES_OK (§3.1.1 order broken). */
static int s_driver_ok_early(struct hctx *c, struct hres *r)
{
	if (virtio_init(&c->vd, c->pci, c->want) < 0)
		return O_SETUP;
	if (h_reset(c) < 0)
		return O_SETUP;
	h_set_status(c, VIRTIO_S_ACKNOWLEDGE);
	h_set_status(c, VIRTIO_S_DRIVER);
	for (int qi = 0; qi < c->nq; qi++)
		if (h_setup_queue(c, qi, &normal) < 0)
			return O_SETUP;
	h_set_status(c, VIRTIO_S_DRIVER_OK);
	uint8_t s = h_status(c);
	r->status_byte = s;
	if (s & VIRTIO_S_NEEDS_RESET)
		return O_RESET;
	return (s & VIRTIO_S_DRIVER_OK) ? O_ACCEPTED : O_ERROR;
}

/* The request of a working device after some nonsense: 1 if it still works. */
static int still_works(struct hctx *c);
static int net_std(struct hctx *c);
static void net_fill_rx(struct hctx *c, uint16_t n);

/* The normal set-up of either device (net: MAC read, receive queue filled). */
static int any_std(struct hctx *c)
{
	return c->net ? net_std(c) : blk_std(c);
}

/* Queue fields of a queue that does not exist (queue_select >= num_queues). */
static int s_queue_select_nonexistent(struct hctx *c, struct hres *r)
{
	if (virtio_init(&c->vd, c->pci, c->want) < 0)
		return O_SETUP;
	volatile uint8_t *cc = c->vd.common;
	uint16_t nq = mmio_read16(cc + CC_NUMQ);
	mmio_write16(cc + CC_Q_SELECT, (uint16_t)(nq + 3));
	mmio_write16(cc + CC_Q_SIZE, 16);
	mmio_write32(cc + CC_Q_DESCLO, 0x1000);
	mmio_write16(cc + CC_Q_ENABLE, 1);
	uint16_t size = mmio_read16(cc + CC_Q_SIZE), en = mmio_read16(cc + CC_Q_ENABLE);
	kit_printf("info hostile queue-select-nonexistent queue=%u size=%u enable=%u\n", nq + 3, size, en);
	if (size || en) {
		r->why = "nonexistent-queue-took-settings";
		return O_ACCEPTED;
	}
	if (h_reset(c) < 0 || any_std(c) != 0)
		return O_ERROR;
	return still_works(c) ? O_IGNORED : O_ERROR;
}

/* queue_msix_vector beyond the MSI-X table: must read back NO_VECTOR (§4.1.5.1.2.1). */
static int s_msix_vector_out_of_range(struct hctx *c, struct hres *r)
{
	if (virtio_init(&c->vd, c->pci, c->want) < 0)
		return O_SETUP;
	volatile uint8_t *cc = c->vd.common;
	mmio_write16(cc + CC_Q_SELECT, 0);
	mmio_write16(cc + CC_Q_MSIX, (uint16_t)(c->vd.msix_table_size + 5));
	uint16_t v = mmio_read16(cc + CC_Q_MSIX);
	mmio_write16(cc + 0x10, (uint16_t)(c->vd.msix_table_size + 9)); /* config_msix_vector */
	uint16_t cv = mmio_read16(cc + 0x10);
	r->status_byte = v;
	kit_printf("info hostile msix-vector-out-of-range entries=%u queue-read-back=0x%x config-read-back=0x%x\n",
		   c->vd.msix_table_size, v, cv);
	return v == VIRTIO_MSI_NO_VECTOR && cv == VIRTIO_MSI_NO_VECTOR ? O_ERROR : O_ACCEPTED;
}

/* Driver features written after FEATURES_OK: must not change what was agreed. */
static int s_features_after_features_ok(struct hctx *c, struct hres *r)
{
	if (virtio_init(&c->vd, c->pci, c->want) < 0)
		return O_SETUP;
	volatile uint8_t *cc = c->vd.common;
	mmio_write32(cc + CC_GFSELECT, 0);
	mmio_write32(cc + CC_GF, 0xffffffffu);
	mmio_write32(cc + CC_GFSELECT, 1);
	mmio_write32(cc + CC_GF, 0xffffffffu);
	mmio_write32(cc + CC_GFSELECT, 0);
	uint64_t lo = mmio_read32(cc + CC_GF);
	mmio_write32(cc + CC_GFSELECT, 1);
	uint64_t f = lo | (uint64_t)mmio_read32(cc + CC_GF) << 32;
	kit_printf("info hostile features-after-features-ok agreed=0x%lx read-back=0x%lx\n", c->vd.features, f);
	if (f != c->vd.features) {
		r->why = "driver-features-changed";
		return O_ACCEPTED;
	}
	for (int qi = 0; qi < c->nq; qi++)
		if (h_setup_queue(c, qi, &normal) < 0)
			return O_SETUP;
	h_set_status(c, VIRTIO_S_DRIVER_OK);
	if (h_status(c) & VIRTIO_S_NEEDS_RESET)
		return O_RESET;
	if (c->net) {
		for (int i = 0; i < 6; i++)
			c->mac[i] = virtio_cfg8(&c->vd, (uint32_t)i);
		net_fill_rx(c, NRX);
	}
	return still_works(c) ? O_IGNORED : O_ERROR;
}

static int s_size_after_driver_ok(struct hctx *c, struct hres *r)
{
	if (any_std(c) != 0)
		return O_SETUP;
	volatile uint8_t *cc = c->vd.common;
	uint16_t qi = (uint16_t)(c->nq - 1);
	mmio_write16(cc + CC_Q_SELECT, qi);
	uint16_t before = mmio_read16(cc + CC_Q_SIZE);
	mmio_write16(cc + CC_Q_SIZE, (uint16_t)(before / 4));
	uint16_t after = mmio_read16(cc + CC_Q_SIZE);
	mmio_write32(cc + CC_Q_DESCLO, 0x1000); /* and a ring move, also frozen */
	kit_printf("info hostile queue-size-after-driver-ok queue=%u before=%u wrote=%u read-back=%u\n", qi, before,
		   before / 4, after);
	if (after != before) {
		r->why = "queue-size-changed";
		return O_ACCEPTED;
	}
	if (h_status(c) & VIRTIO_S_NEEDS_RESET)
		return O_RESET;
	return still_works(c) ? O_IGNORED : O_ERROR;
}

/* Notifies for queues that do not exist, and a wrong value on a real one. */
static int s_notify_bad_queue(struct hctx *c, struct hres *r)
{
	(void)r;
	if (any_std(c) != 0)
		return O_SETUP;
	uint16_t nq = mmio_read16(c->vd.common + CC_NUMQ);
	uint32_t m = c->vd.notify_mult ? c->vd.notify_mult : 4;
	uint32_t idx[3] = { nq, nq + 7u, c->vd.notify_len / m - 1 };
	for (int i = 0; i < 3; i++) {
		uint64_t at = (uint64_t)idx[i] * m;
		if (at + 2 <= c->vd.notify_len)
			mmio_write16(c->vd.notify_base + at, (uint16_t)idx[i]);
	}
	*c->q[0].notify = 0x7fff; /* queue 0's address, another queue's number */
	if (h_status(c) & VIRTIO_S_NEEDS_RESET)
		return O_RESET;
	return still_works(c) ? O_IGNORED : O_ERROR;
}

/* Writes to read-only device configuration (blk capacity, net MAC). */
static int s_config_write(struct hctx *c, struct hres *r)
{
	if (any_std(c) != 0)
		return O_SETUP;
	uint8_t before[8], after[8];
	for (int i = 0; i < 8; i++)
		before[i] = virtio_cfg8(&c->vd, (uint32_t)i);
	if (!c->vd.devcfg || c->vd.devcfg_len < 8)
		return O_SETUP;
	mmio_write32(c->vd.devcfg + 0, 0x12345678u);
	mmio_write32(c->vd.devcfg + 4, 0x9abcdef0u);
	mmio_write8(c->vd.devcfg + 1, 0x55);
	for (int i = 0; i < 8; i++)
		after[i] = virtio_cfg8(&c->vd, (uint32_t)i);
	if (memcmp(before, after, 8) != 0) {
		r->why = "config-changed";
		return O_ACCEPTED;
	}
	return still_works(c) ? O_IGNORED : O_ERROR;
}

/* ---- reset in the middle of I/O ---- */

static int b_reset_mid_io(struct hctx *c, struct hres *r)
{
	STD();
	/* 8 writes of 8 KiB (descriptors 3i..3i+2), then reset before they complete. */
	for (uint16_t i = 0; i < 8; i++) {
		struct blk_hdr *h = (struct blk_hdr *)((uint8_t *)c->ind2 + 32 * i);
		*h = (struct blk_hdr){ BLK_T_OUT, 0, 256 + 16ull * i };
		c->data[32768 + i] = 0xff;
		D(Q0, (uint16_t)(3 * i), P(h), 16, NX, (uint16_t)(3 * i + 1));
		D(Q0, (uint16_t)(3 * i + 1), P(c->data) + 4096ull * i, 8192, NX, (uint16_t)(3 * i + 2));
		D(Q0, (uint16_t)(3 * i + 2), P(&c->data[32768 + i]), 1, WR, 0);
		Q0->avail->ring[i] = (uint16_t)(3 * i);
	}
	barrier();
	Q0->avail->idx = 8;
	mb();
	*Q0->notify = 0;
	if (h_reset(c) < 0)
		return O_HANG;
	if (late_used(c)) {
		r->why = "used-ring-written-after-reset";
		return O_LATE;
	}
	return O_IGNORED;
}

static int blk_still_works(struct hctx *c)
{
	memset(c->data, 0, 512);
	return blk_rw(c, BLK_T_IN, 0, c->data, 512) == 0;
}

/* ======================= virtio-net ======================= */

#define NET_WANT (1ull << NET_F_MAC | 1ull << NET_F_STATUS | 1ull << VIRTIO_F_INDIRECT_DESC)
#define RXQ (&c->q[0])
#define TXQ (&c->q[1])

/* DHCP DISCOVER (what the device's responder answers on a local interface). */
static uint32_t build_discover(struct hctx *c, uint8_t *f, uint32_t xid)
{
	memset(f, 0, 342);
	memset(f, 0xff, 6);
	memcpy(f + 6, c->mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *udp = ip + 20, *m = udp + 8;
	ip[0] = 0x45;
	put16(ip + 2, 20 + 8 + 300);
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 16, 0xffffffffu);
	put16(ip + 10, inet_fold(inet_sum(ip, 20, 0)));
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, 8 + 300);
	m[0] = 1;
	m[1] = 1;
	m[2] = 6;
	put32(m + 4, xid);
	put16(m + 10, 0x8000);
	memcpy(m + 28, c->mac, 6);
	put32(m + 236, 0x63825363u);
	uint8_t *o = m + 240;
	*o++ = 53, *o++ = 1, *o++ = 1; /* DISCOVER */
	*o++ = 61, *o++ = 7, *o++ = 1;
	memcpy(o, c->mac, 6);
	o += 6;
	*o = 255;
	return 342;
}

/* ARP request (who-has 100.64.0.0), 60 bytes. */
static uint32_t build_arp(struct hctx *c, uint8_t *f)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, c->mac, 6);
	put16(f + 12, 0x0806);
	uint8_t *a = f + 14;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);
	memcpy(a + 8, c->mac, 6);
	put32(a + 24, 0x64400000u);
	return 60;
}

static void net_fill_rx(struct hctx *c, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		D(RXQ, i, P(c->rxb) + (uint64_t)i * BUF, BUF, WR, 0);
		RXQ->avail->ring[RXQ->avail_idx++ % RXQ->size] = i;
	}
	barrier();
	RXQ->avail->idx = RXQ->avail_idx;
	mb();
	*RXQ->notify = 0;
}

static int net_std(struct hctx *c)
{
	if (h_init(c, &normal) != 0)
		return -1;
	if (virtio_has(&c->vd, NET_F_MAC))
		for (int i = 0; i < 6; i++)
			c->mac[i] = virtio_cfg8(&c->vd, (uint32_t)i);
	net_fill_rx(c, NRX);
	return 0;
}

/* A frame in tx buffer i (header zeroed), descriptor i. Returns the frame area. */
static uint8_t *txbuf(struct hctx *c, uint16_t i)
{
	uint8_t *b = c->txb + (uint64_t)i * BUF;
	memset(b, 0, NET_HDR_LEN);
	return b + NET_HDR_LEN;
}

/* Is there an OFFER for xid on the receive queue within tmo_ms? Frames that are
 * not it are taken and ignored. -1: NEEDS_RESET. */
static int wait_offer(struct hctx *c, uint32_t xid, uint64_t tmo_ms)
{
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < ms(c, tmo_ms)) {
		uint32_t id, len;
		int w = h_wait(c, RXQ, &id, &len, 50);
		if (w == W_RESET)
			return -1;
		if (w != W_USED || id >= NRX)
			continue;
		const uint8_t *f = c->rxb + (uint64_t)id * BUF + NET_HDR_LEN;
		const uint8_t *ip = f + 14, *udp = ip + (ip[0] & 15) * 4;
		int hit = len >= NET_HDR_LEN + 14 + 20 + 8 + 8 && len <= BUF && get16(f + 12) == 0x0800 && ip[9] == 17 &&
			  get16(udp) == 67 && get32(udp + 8 + 4) == xid;
		/* Give the buffer back (other frames, e.g. ARP replies from the host, keep coming). */
		h_submit(RXQ, (uint16_t)id);
		if (hit)
			return 1;
	}
	return 0;
}

/* Publish tx chain `head` that should be dropped; wait for it to come back and,
 * with the device's DHCP (dhcp=1) and a DISCOVER inside, check no OFFER comes. */
static int tx_outcome(struct hctx *c, uint16_t head, uint32_t xid, struct hres *r)
{
	uint32_t id = 0, len = 0;
	h_submit(TXQ, head);
	int w = h_wait(c, TXQ, &id, &len, WAIT_MS);
	if (w == W_RESET)
		return O_RESET;
	if (w == W_TIMEOUT)
		return O_HANG;
	r->used_len = (int)len;
	if (id != head) {
		r->why = "used-id-not-head";
		return O_BADUSED;
	}
	if (len != 0) {
		r->why = "tx-used-len-not-0";
		return O_BADUSED;
	}
	if (c->dhcp && xid) {
		int off = wait_offer(c, xid, 300);
		if (off < 0)
			return O_RESET;
		if (off) {
			r->why = "frame-was-sent";
			return O_ACCEPTED;
		}
	}
	return O_ERROR;
}

#define NSTD()                            \
	do {                              \
		if (net_std(c) < 0)       \
			return O_SETUP;   \
	} while (0)

static int n_tx_too_long(struct hctx *c, struct hres *r)
{
	NSTD();
	uint32_t xid = ++c->xid;
	uint8_t *f = txbuf(c, 0);
	build_discover(c, f, xid);
	/* 40 x 2048 = 81920 bytes > 12 + 65550 */
	for (uint16_t i = 0; i < 40; i++)
		D(TXQ, i, P(f) - NET_HDR_LEN, BUF, (uint16_t)(i < 39 ? NX : 0), (uint16_t)(i + 1));
	return tx_outcome(c, 0, xid, r);
}

/* A frame in 2000 one-byte pieces (indirect): more than writev takes. */
static int n_tx_many_segments(struct hctx *c, struct hres *r)
{
	NSTD();
	uint32_t xid = ++c->xid;
	uint8_t *f = txbuf(c, 0);
	build_discover(c, f, xid);
	struct virtq_desc *t = (struct virtq_desc *)(c->txb + 32 * BUF); /* 2001 x 16 bytes, in buffers 32..47 */
	t[0] = (struct virtq_desc){ P(f) - NET_HDR_LEN, NET_HDR_LEN, NX, 1 };
	for (uint16_t i = 1; i <= 2000; i++)
		t[i] = (struct virtq_desc){ P(f) + (i - 1) % 342, 1, (uint16_t)(i < 2000 ? NX : 0), (uint16_t)(i + 1) };
	D(TXQ, 0, P(t), 2001 * 16, IND, 0);
	return tx_outcome(c, 0, 0, r);
}

static int n_tx_head_oob(struct hctx *c, struct hres *r)
{
	NSTD();
	return tx_outcome(c, (uint16_t)(TXQ->size + 2), 0, r);
}

static int n_tx_avail_jump(struct hctx *c, struct hres *r)
{
	(void)r;
	NSTD();
	TXQ->avail->idx = (uint16_t)(TXQ->size * 3 + 1);
	mb();
	*TXQ->notify = 1;
	uint32_t id, len;
	int w = h_wait(c, TXQ, &id, &len, WAIT_MS);
	return w == W_RESET ? O_RESET : w == W_USED ? O_ACCEPTED : O_HANG;
}

/* Receive buffers that cannot take a frame; then give the device something to
 * receive (a DISCOVER for its DHCP responder, dhcp=1). Every such buffer must
 * come back with length 0, or the device needs a reset; without a frame to
 * deliver the device may just hold them (ignored). */
static int rx_bad(struct hctx *c, struct hres *r, uint64_t addr, uint32_t len, uint16_t flags)
{
	if (h_init(c, &normal) != 0)
		return O_SETUP;
	for (int i = 0; i < 6; i++)
		c->mac[i] = virtio_cfg8(&c->vd, (uint32_t)i);
	for (uint16_t i = 0; i < 4; i++) {
		D(RXQ, i, addr ? addr : P(c->rxb) + (uint64_t)i * BUF, len, flags, 0);
		RXQ->avail->ring[i] = i;
	}
	RXQ->avail_idx = 4;
	barrier();
	RXQ->avail->idx = 4;
	mb();
	*RXQ->notify = 0;
	uint32_t xid = ++c->xid, id, l;
	uint8_t *f = txbuf(c, 0);
	D(TXQ, 0, P(f) - NET_HDR_LEN, NET_HDR_LEN + build_discover(c, f, xid), 0, 0);
	h_submit(TXQ, 0);
	int w = h_wait(c, TXQ, &id, &l, WAIT_MS);
	if (w == W_RESET)
		return O_RESET;
	if (w != W_USED)
		return O_HANG;
	int zero = 0;
	for (;;) {
		w = h_wait(c, RXQ, &id, &l, c->dhcp ? 1000 : 200);
		if (w == W_RESET)
			return O_RESET;
		if (w == W_TIMEOUT)
			break;
		r->used_len = (int)l;
		if (id >= 4) {
			r->why = "used-id-never-given";
			return O_BADUSED;
		}
		if (l != 0) {
			r->why = "frame-in-bad-buffer";
			return O_ACCEPTED;
		}
		zero++;
	}
	return zero ? O_ERROR : O_IGNORED;
}

static int n_rx_zero_len(struct hctx *c, struct hres *r)
{
	return rx_bad(c, r, 0, 0, WR);
}

static int n_rx_outside_ram(struct hctx *c, struct hres *r)
{
	return rx_bad(c, r, FAR_AWAY, BUF, WR);
}

static int n_rx_bar_window(struct hctx *c, struct hres *r)
{
	return rx_bad(c, r, BAR_WINDOW, BUF, WR);
}

static int n_rx_readable(struct hctx *c, struct hres *r)
{
	return rx_bad(c, r, 0, BUF, 0);
}

static int n_rx_avail_jump(struct hctx *c, struct hres *r)
{
	(void)r;
	if (h_init(c, &normal) != 0)
		return O_SETUP;
	RXQ->avail->idx = (uint16_t)(RXQ->size + 9);
	mb();
	*RXQ->notify = 0;
	uint32_t xid = ++c->xid;
	uint8_t *f = txbuf(c, 0);
	D(TXQ, 0, P(f) - NET_HDR_LEN, NET_HDR_LEN + build_discover(c, f, xid), 0, 0);
	h_submit(TXQ, 0);
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < ms(c, WAIT_MS)) {
		if (h_status(c) & VIRTIO_S_NEEDS_RESET)
			return O_RESET;
		if (RXQ->used->idx != 0)
			return O_ACCEPTED;
		cpu_relax();
	}
	return O_IGNORED; /* nothing was taken from the broken ring (no frame to deliver) */
}

static int n_reset_mid_io(struct hctx *c, struct hres *r)
{
	NSTD();
	for (uint16_t i = 0; i < 32; i++) {
		uint8_t *f = txbuf(c, i);
		D(TXQ, i, P(f) - NET_HDR_LEN, NET_HDR_LEN + build_arp(c, f), 0, 0);
		TXQ->avail->ring[i] = i;
	}
	barrier();
	TXQ->avail->idx = 32;
	mb();
	*TXQ->notify = 1;
	if (h_reset(c) < 0)
		return O_HANG;
	if (late_used(c)) {
		r->why = "used-ring-written-after-reset";
		return O_LATE;
	}
	return O_IGNORED;
}

/* One frame out (ARP, or a DISCOVER with dhcp=1 whose OFFER must come back). */
static int net_exchange(struct hctx *c, const char **why)
{
	uint32_t xid = ++c->xid, id, l;
	uint8_t *f = txbuf(c, 0);
	uint32_t len = c->dhcp ? build_discover(c, f, xid) : build_arp(c, f);
	D(TXQ, 0, P(f) - NET_HDR_LEN, NET_HDR_LEN + len, 0, 0);
	h_submit(TXQ, 0);
	if (h_wait(c, TXQ, &id, &l, WAIT_MS) != W_USED || id != 0) {
		*why = "tx-not-completed";
		return 0;
	}
	if (c->dhcp && wait_offer(c, xid, 2000) != 1) {
		*why = "no-dhcp-offer";
		return 0;
	}
	return 1;
}

static int net_recover(struct hctx *c, unsigned int n, const char **why)
{
	(void)n;
	if (h_reset(c) < 0) {
		*why = "reset-timeout";
		return 0;
	}
	if (net_std(c) < 0) {
		*why = "reinit-failed";
		return 0;
	}
	return net_exchange(c, why);
}

static int still_works(struct hctx *c)
{
	const char *why;
	return c->net ? net_exchange(c, &why) : blk_still_works(c);
}

/* ======================= runner ======================= */

/* ======================= requests as table rows ======================= */

/* Most scenarios are one malformed request: a chain of descriptors in the ring
 * and perhaps in indirect tables. Those are rows of the scenario tables (a
 * `struct chain`), built by run_chain over the normal set-up; the rest are
 * functions. */
enum at {
	AT_END,     /* no descriptor: the list ends */
	AT_HDR,     /* blk: the request header */
	AT_DATA,    /* blk: the 64 KiB data buffer */
	AT_STATUS,  /* blk: the status byte */
	AT_IND,     /* the first indirect table */
	AT_IND2,    /* a second one, for nesting */
	AT_ABS,     /* the address itself (outside RAM, MMIO, overflowing) */
	AT_TXHDR,   /* net: transmit buffer 0, at its virtio-net header */
	AT_FRAME,   /* net: the frame after that header */
};
#define NEXT_OOB  0xfffe            /* next = the queue's size + 3: names no descriptor */
#define LEN_FRAME ((uint32_t)-2)    /* net: the DISCOVER's length */
#define LEN_WHOLE ((uint32_t)-3)    /* net: header + DISCOVER */

struct seg {
	uint8_t at;
	uint64_t addr;                  /* offset from `at`; the address itself for AT_ABS */
	uint32_t len;
	uint16_t flags, next;
};

struct chain {
	uint32_t type;                  /* blk: the request */
	uint64_t sector;
	int frame;                      /* net: a DISCOVER, which must not go out */
	struct seg ring[4], ind[3], ind2[2];
	int served_is_ignored;          /* strange but legal: served correctly is "ignored" */
};

/* blk: header, one data descriptor, status. */
#define ONE(at_, addr_, len_, flags_) \
	.ring = { { AT_HDR, 0, 16, NX, 1 }, { at_, addr_, len_, (uint16_t)((flags_) | NX), 2 }, { AT_STATUS, 0, 1, WR, 0 } }
/* blk: the valid 3-entry indirect table (header, 512 bytes in, status), as ind3(). */
#define IND3_HDR  { AT_HDR, 0, 16, NX, 1 }
#define IND3_DATA { AT_DATA, 0, 512, WR | NX, 2 }
#define IND3_STAT { AT_STATUS, 0, 1, WR, 0 }

static struct virtq_desc *ind_table(struct hctx *c, int second)
{
	if (c->net) {
		struct virtq_desc *t = (struct virtq_desc *)(c->txb + 60 * BUF);
		return second ? t + 16 : t;
	}
	return second ? c->ind2 : c->ind;
}

static struct virtq_desc seg_desc(struct hctx *c, struct virtq *q, const struct seg *g, uint8_t *f, uint32_t l)
{
	uint64_t base = 0;
	switch (g->at) {
	case AT_HDR: base = P(c->hdr); break;
	case AT_DATA: base = P(c->data); break;
	case AT_STATUS: base = P(c->status); break;
	case AT_IND: base = P(ind_table(c, 0)); break;
	case AT_IND2: base = P(ind_table(c, 1)); break;
	case AT_TXHDR: base = P(f) - NET_HDR_LEN; break;
	case AT_FRAME: base = P(f); break;
	default: break;
	}
	uint32_t len = g->len == LEN_FRAME ? l : g->len == LEN_WHOLE ? NET_HDR_LEN + l : g->len;
	uint16_t next = g->next == NEXT_OOB ? (uint16_t)(q->size + 3) : g->next;
	return (struct virtq_desc){ base + g->addr, len, g->flags, next };
}

static int run_chain(struct hctx *c, struct hres *r, const struct chain *ch)
{
	if ((c->net ? net_std(c) : blk_std(c)) < 0)
		return O_SETUP;
	struct virtq *q = c->net ? TXQ : Q0;
	uint8_t *f = c->net ? txbuf(c, 0) : NULL;
	uint32_t xid = 0, l = 0;
	if (c->net && ch->frame) {
		xid = ++c->xid;
		l = build_discover(c, f, xid);
	}
	if (!c->net)
		bhdr(c, ch->type, ch->sector);
	for (int i = 0; i < 4 && ch->ring[i].at; i++)
		q->desc[i] = seg_desc(c, q, &ch->ring[i], f, l);
	for (int i = 0; i < 3 && ch->ind[i].at; i++)
		ind_table(c, 0)[i] = seg_desc(c, q, &ch->ind[i], f, l);
	for (int i = 0; i < 2 && ch->ind2[i].at; i++)
		ind_table(c, 1)[i] = seg_desc(c, q, &ch->ind2[i], f, l);
	int o = c->net ? tx_outcome(c, 0, xid, r) : blk_outcome(c, 0, r);
	return ch->served_is_ignored && o == O_ACCEPTED ? O_IGNORED : o;
}

#define ROW(...) NULL, &(const struct chain){ __VA_ARGS__ }

struct scenario {
	const char *name;
	int (*run)(struct hctx *c, struct hres *r);  /* or, for a row: */
	const struct chain *chain;
	unsigned int allowed;
};

static const struct scenario blk_scenarios[] = {
	{ "blk-avail-jump", b_avail_jump, NULL, A_BAD },
	{ "blk-head-out-of-range", b_head_oob, NULL, A_BAD },
	{ "blk-head-ffff", b_head_ffff, NULL, A_BAD },
	{ "blk-desc-loop", ROW(.type = BLK_T_OUT, .sector = 64, /* all readable: only the loop is wrong */
	      .ring = { { AT_HDR, 0, 16, NX, 1 }, { AT_DATA, 0, 512, NX, 0 } }), A_BAD },
	{ "blk-chain-longer-than-queue", b_chain_too_long, NULL, A_BAD },
	{ "blk-next-out-of-range", ROW(.type = BLK_T_IN, .ring = { { AT_HDR, 0, 16, NX, NEXT_OOB } }), A_BAD },
	{ "blk-nested-indirect", ROW(.type = BLK_T_IN, .ring = { { AT_IND, 0, 32, IND, 0 } },
	      .ind = { IND3_HDR, { AT_IND2, 0, 32, IND, 0 } }, .ind2 = { { AT_DATA, 0, 512, WR | NX, 1 }, IND3_STAT }), A_BAD },
	{ "blk-indirect-with-next", ROW(.type = BLK_T_IN, /* the table's status continues in the ring */
	      .ring = { { AT_IND, 0, 48, IND | NX, 1 }, { AT_STATUS, 0, 1, WR, 0 } },
	      .ind = { IND3_HDR, IND3_DATA, { AT_STATUS, 0, 1, WR | NX, 3 } }), A_BAD },
	{ "blk-indirect-len-0", ROW(.type = BLK_T_IN, .ring = { { AT_IND, 0, 0, IND, 0 } }, .ind = { IND3_HDR, IND3_DATA, IND3_STAT }), A_BAD },
	{ "blk-indirect-len-not-16n", ROW(.type = BLK_T_IN, .ring = { { AT_IND, 0, 40, IND, 0 } }, .ind = { IND3_HDR, IND3_DATA, IND3_STAT }), A_BAD },
	{ "blk-indirect-not-negotiated", b_indirect_not_negotiated, NULL, A_BAD },
	{ "blk-indirect-loop", ROW(.type = BLK_T_IN, .ring = { { AT_IND, 0, 48, IND, 0 } },
	      .ind = { IND3_HDR, IND3_DATA, { AT_DATA, 512, 512, WR | NX, 1 } }), A_BAD },
	{ "blk-indirect-next-out-of-range", ROW(.type = BLK_T_IN, .ring = { { AT_IND, 0, 48, IND, 0 } }, /* the table has 3 entries */
	      .ind = { IND3_HDR, { AT_DATA, 0, 512, WR | NX, 7 }, IND3_STAT }), A_BAD },
	{ "blk-indirect-table-outside-ram", ROW(.type = BLK_T_IN, .ring = { { AT_ABS, FAR_AWAY, 48, IND, 0 } }), A_BAD },
	{ "blk-indirect-longer-than-queue", b_indirect_longer_than_queue, NULL, A_BAD | A_IGN },
	{ "blk-indirect-2046-segments", b_indirect_2046_segments, NULL, A_BAD | A_IGN },
	{ "blk-indirect-table-huge", b_indirect_table_huge, NULL, A_BAD },
	{ "blk-write-one-byte-pieces", b_write_one_byte_pieces, NULL, A_BAD | A_IGN },
	{ "blk-zero-len-data", ROW(.type = BLK_T_IN, .served_is_ignored = 1, /* a zero-length buffer names no byte: legal to serve */
	      .ring = { { AT_HDR, 0, 16, NX, 1 }, { AT_DATA, 0, 0, WR | NX, 2 }, { AT_DATA, 0, 512, WR | NX, 3 }, { AT_STATUS, 0, 1, WR, 0 } }), A_BAD | A_IGN },
	{ "blk-zero-len-status", b_zero_len_status, NULL, A_BAD },
	{ "blk-huge-len", ROW(.type = BLK_T_IN, ONE(AT_DATA, 0, 0xffffffffu, WR)), A_BAD },
	{ "blk-addr-len-overflow", ROW(.type = BLK_T_IN, ONE(AT_ABS, 0xfffffffffffff000ull, 0x2000, WR)), A_BAD },
	{ "blk-buffer-outside-ram", ROW(.type = BLK_T_IN, ONE(AT_ABS, FAR_AWAY, 4096, WR)), A_BAD },
	{ "blk-buffer-straddles-ram-end", b_straddle_ram_end, NULL, A_BAD },
	{ "blk-buffer-ioapic", ROW(.type = BLK_T_IN, ONE(AT_ABS, IOAPIC, 4096, WR)) /* the device must not write MMIO */, A_BAD },
	{ "blk-buffer-bar-window", ROW(.type = BLK_T_OUT, .sector = 64, ONE(AT_ABS, BAR_WINDOW, 4096, 0)) /* nor read it */, A_BAD },
	{ "blk-writable-before-readable", ROW(.type = BLK_T_OUT, .sector = 64,
	      .ring = { { AT_STATUS, 0, 1, WR | NX, 1 }, { AT_HDR, 0, 16, NX, 2 }, { AT_DATA, 0, 512, NX, 3 }, { AT_STATUS, 0, 1, WR, 0 } }), A_BAD },
	{ "blk-in-into-readable", ROW(.type = BLK_T_IN, ONE(AT_DATA, 0, 512, 0)), A_BAD },
	{ "blk-out-from-writable", ROW(.type = BLK_T_OUT, .sector = 64, ONE(AT_DATA, 0, 512, WR)), A_BAD },
	{ "blk-header-short", ROW(.type = BLK_T_IN, .ring = { { AT_HDR, 0, 8, NX, 1 }, { AT_DATA, 0, 512, WR | NX, 2 }, { AT_STATUS, 0, 1, WR, 0 } }), A_BAD },
	{ "blk-status-missing", ROW(.type = BLK_T_OUT, .sector = 64, .ring = { { AT_HDR, 0, 16, NX, 1 }, { AT_DATA, 0, 512, 0, 0 } }), A_BAD },
	{ "blk-sector-beyond-capacity", b_sector_beyond, NULL, A_BAD },
	{ "blk-write-past-end", b_write_past_end, NULL, A_BAD },
	{ "blk-sector-overflow", ROW(.type = BLK_T_IN, .sector = 0xfffffffffffffff0ull, ONE(AT_DATA, 0, 4096, WR)), A_BAD },
	{ "blk-len-not-sector-multiple", ROW(.type = BLK_T_IN, ONE(AT_DATA, 0, 500, WR)), A_BAD },
	{ "blk-discard-200-segments", b_discard_many, NULL, A_BAD },
	{ "blk-discard-huge-segment", b_discard_huge, NULL, A_BAD },
	{ "blk-discard-partial-segment", b_discard_odd, NULL, A_BAD },
	{ "blk-get-id-short", ROW(.type = BLK_T_GET_ID, ONE(AT_DATA, 0, 8, WR)), A_BAD },
	{ "blk-unknown-type", ROW(.type = 0x7777, ONE(AT_DATA, 0, 512, WR)), A_BAD },
	{ "blk-ring-outside-ram", s_ring_outside_ram, NULL, A_RST },
	{ "blk-ring-straddles-ram-end", s_ring_straddle_ram_end, NULL, A_RST },
	{ "blk-ring-mmio-hole", s_ring_mmio_hole, NULL, A_RST },
	{ "blk-ring-overflow", s_ring_overflow, NULL, A_RST },
	{ "blk-desc-misaligned", s_desc_misaligned, NULL, A_RST },
	{ "blk-avail-misaligned", s_avail_misaligned, NULL, A_RST },
	{ "blk-used-misaligned", s_used_misaligned, NULL, A_RST },
	{ "blk-queue-size-npot", s_size_npot, NULL, A_RST },
	{ "blk-queue-size-too-big", s_size_too_big, NULL, A_RST },
	{ "blk-queue-size-zero", s_size_zero, NULL, A_RST | A_IGN },
	{ "blk-queue-size-after-driver-ok", s_size_after_driver_ok, NULL, A_IGN },
	{ "blk-notify-bad-queue", s_notify_bad_queue, NULL, A_IGN },
	{ "blk-queue-select-nonexistent", s_queue_select_nonexistent, NULL, A_IGN },
	{ "blk-msix-vector-out-of-range", s_msix_vector_out_of_range, NULL, A_ERR },
	{ "blk-features-after-features-ok", s_features_after_features_ok, NULL, A_IGN },
	{ "blk-features-not-offered", s_features_not_offered, NULL, A_ERR },
	{ "blk-driver-ok-without-features-ok", s_driver_ok_early, NULL, A_RST | A_ERR },
	{ "blk-config-write-capacity", s_config_write, NULL, A_IGN },
	{ "blk-reset-mid-io", b_reset_mid_io, NULL, A_IGN },
};

static const struct scenario net_scenarios[] = {
	{ "net-tx-shorter-than-header", ROW(.ring = { { AT_TXHDR, 0, 8, 0, 0 } }), A_BAD },
	{ "net-tx-too-long", n_tx_too_long, NULL, A_BAD },
	{ "net-tx-writable", ROW(.frame = 1, .ring = { { AT_TXHDR, 0, LEN_WHOLE, WR, 0 } }), A_BAD },
	{ "net-tx-frame-writable", ROW(.frame = 1, /* header readable, frame writable: it must not go out either */
	      .ring = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_FRAME, 0, LEN_FRAME, WR, 0 } }), A_BAD },
	{ "net-tx-desc-loop", ROW(.frame = 1, .ring = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_FRAME, 0, LEN_FRAME, NX, 0 } }), A_BAD },
	{ "net-tx-next-out-of-range", ROW(.frame = 1, .ring = { { AT_TXHDR, 0, LEN_WHOLE, NX, NEXT_OOB } }), A_BAD },
	{ "net-tx-nested-indirect", ROW(.frame = 1, .ring = { { AT_IND, 0, 32, IND, 0 } },
	      .ind = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_IND2, 0, 16, IND, 0 } }, .ind2 = { { AT_FRAME, 0, LEN_FRAME, 0, 0 } }), A_BAD },
	{ "net-tx-indirect-with-next", ROW(.frame = 1, .ring = { { AT_IND, 0, 16, IND | NX, 1 }, { AT_FRAME, 0, 4, 0, 0 } },
	      .ind = { { AT_TXHDR, 0, LEN_WHOLE, 0, 0 } }), A_BAD },
	{ "net-tx-indirect-len-not-16n", ROW(.frame = 1, .ring = { { AT_IND, 0, 24, IND, 0 } }, .ind = { { AT_TXHDR, 0, LEN_WHOLE, 0, 0 } }), A_BAD },
	{ "net-tx-huge-len", ROW(.ring = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_TXHDR, 0, 0xffffffffu, 0, 0 } }), A_BAD },
	{ "net-tx-buffer-outside-ram", ROW(.ring = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_ABS, FAR_AWAY, 1500, 0, 0 } }), A_BAD },
	{ "net-tx-buffer-ioapic", ROW(.ring = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_ABS, IOAPIC, 1500, 0, 0 } }), A_BAD },
	{ "net-tx-addr-len-overflow", ROW(.ring = { { AT_TXHDR, 0, NET_HDR_LEN, NX, 1 }, { AT_ABS, 0xfffffffffffffc00ull, 0x800, 0, 0 } }), A_BAD },
	{ "net-tx-2000-segments", n_tx_many_segments, NULL, A_BAD },
	{ "net-tx-head-out-of-range", n_tx_head_oob, NULL, A_BAD },
	{ "net-tx-avail-jump", n_tx_avail_jump, NULL, A_BAD },
	{ "net-rx-zero-len", n_rx_zero_len, NULL, A_BAD | A_IGN },
	{ "net-rx-outside-ram", n_rx_outside_ram, NULL, A_BAD | A_IGN },
	{ "net-rx-bar-window", n_rx_bar_window, NULL, A_BAD | A_IGN },
	{ "net-rx-readable", n_rx_readable, NULL, A_BAD | A_IGN },
	{ "net-rx-avail-jump", n_rx_avail_jump, NULL, A_BAD | A_IGN },
	{ "net-ring-outside-ram", s_ring_outside_ram, NULL, A_RST },
	{ "net-ring-mmio-hole", s_ring_mmio_hole, NULL, A_RST },
	{ "net-used-misaligned", s_used_misaligned, NULL, A_RST },
	{ "net-queue-size-npot", s_size_npot, NULL, A_RST },
	{ "net-queue-size-after-driver-ok", s_size_after_driver_ok, NULL, A_IGN },
	{ "net-notify-bad-queue", s_notify_bad_queue, NULL, A_IGN },
	{ "net-queue-select-nonexistent", s_queue_select_nonexistent, NULL, A_IGN },
	{ "net-features-after-features-ok", s_features_after_features_ok, NULL, A_IGN },
	{ "net-features-not-offered", s_features_not_offered, NULL, A_ERR },
	{ "net-config-write-mac", s_config_write, NULL, A_IGN },
	{ "net-reset-mid-io", n_reset_mid_io, NULL, A_IGN },
};

static int name_matches(const char *want, const char *name)
{
	if (!want || !*want)
		return 1;
	if (!strcmp(want, name))
		return 1;
	size_t n = strlen("hostile-");
	if (!memcmp(want, "hostile-", n) && !strcmp(want + n, name))
		return 1;
	return !strcmp(want, name + 4); /* without "blk-"/"net-" */
}

static uint64_t ram_top_below_4g(void)
{
	uint64_t top = 0;
	for (uint32_t i = 0; i < kit_boot.memmap_entries; i++) {
		const struct hvm_memmap_entry *e = &kit_boot.memmap[i];
		uint64_t end = e->addr + e->size;
		if (e->type == 1 && end <= (1ull << 32) && end > top)
			top = end;
	}
	return top;
}

static struct hctx *ctx_alloc(void)
{
	struct hctx *c = dma_alloc(sizeof(*c), 64);
	if (!c)
		return NULL;
	for (int qi = 0; qi < 2; qi++)
		for (int k = 0; k < 3; k++)
			if (!(c->ring[qi][k] = dma_alloc(4096, 4096)))
				return NULL;
	c->hz = kit_tsc_hz();
	kit_printf("info tsc-mhz=%lu\n", c->hz / 1000000);
	if (!c->hz)
		c->hz = 4000000000ull;
	c->ram_top = ram_top_below_4g();
	uint8_t *ctl = dma_alloc(3 * 4096, 4096);
	c->data = dma_alloc(65536, 4096);
	if (!ctl || !c->data)
		return NULL;
	c->hdr = (struct blk_hdr *)ctl;
	c->status = ctl + 64;
	c->ind = (struct virtq_desc *)(ctl + 4096);
	c->ind2 = (struct virtq_desc *)(ctl + 8192);
	return c;
}

/* Runs the scenarios of one device; adds to *total / *passed. 0 if no device. */
static int run_device(int net, const char *only, unsigned int *total, unsigned int *passed)
{
	struct pci_func *f;
	int nf = pci_scan(&f);
	uint16_t devid = net ? VIRTIO_NET_PCI_DEVICE : VIRTIO_BLK_PCI_DEVICE;
	struct pci_func *pf = NULL;
	for (int i = 0; i < nf && !pf; i++)
		if (f[i].vendor == VIRTIO_PCI_VENDOR && f[i].device == devid)
			pf = &f[i];
	if (!pf)
		return 0;
	struct hctx *c = ctx_alloc();
	if (!c)
		return -1;
	c->net = net;
	c->pci = pf;
	c->nq = net ? 2 : 1;
	c->want = net ? NET_WANT : BLK_WANT;
	c->dhcp = net && cmdline_get_u64("dhcp", 0) != 0;
	c->xid = 0x686b0000u;
	if (net) {
		c->rxb = dma_alloc((uint64_t)QMAX * BUF / 4, 4096); /* 64 buffers */
		c->txb = dma_alloc((uint64_t)QMAX * BUF / 4, 4096);
		if (!c->rxb || !c->txb)
			return -1;
	}
	const struct scenario *sc = net ? net_scenarios : blk_scenarios;
	unsigned int n = net ? sizeof(net_scenarios) / sizeof(net_scenarios[0])
			     : sizeof(blk_scenarios) / sizeof(blk_scenarios[0]);
	int ran = 0;
	for (unsigned int i = 0; i < n; i++) {
		if (!name_matches(only, sc[i].name))
			continue;
		ran++;
		struct hres r;
		memset(&r, 0, sizeof(r));
		r.used_len = -1;
		r.status_byte = -1;
		/* Every scenario starts from a reset device. */
		int o = h_reset(c) < 0 && c->vd.common ? O_HANG : (sc[i].chain ? run_chain(c, &r, sc[i].chain) : sc[i].run(c, &r));
		uint8_t ds = c->vd.common ? h_status(c) : 0;
		const char *why = NULL;
		uint64_t t0 = rdtsc();
		int rec = net ? net_recover(c, i, &why) : blk_recover(c, i, &why);
		uint64_t rec_us = (rdtsc() - t0) * 1000000 / c->hz;
		int ok = (sc[i].allowed >> o & 1) && rec;
		(*total)++;
		*passed += (unsigned int)ok;
		kit_printf("RESULT name=hostile-%s status=%s outcome=%s recovered=%d used_len=%d status_byte=%d"
			   " dev_status=0x%02x recovery_us=%lu%s%s%s%s\n",
			   sc[i].name, ok ? "pass" : "fail", outcome_name[o], rec, r.used_len, r.status_byte, ds, rec_us,
			   r.why ? " why=" : "", r.why ? r.why : "", why ? " recovery_failed=" : "", why ? why : "");
	}
	/* Leave the device reset. */
	h_reset(c);
	return ran ? 1 : 2;
}

int test_hostile(const char *name)
{
	const char *only = cmdline_get("hostile");
	int blk = !strcmp(name, "hostile-blk") || !strcmp(name, "hostile");
	int net = !strcmp(name, "hostile-net") || !strcmp(name, "hostile");
	unsigned int total = 0, passed = 0;
	const char *dev = blk && net ? "all" : blk ? "blk" : "net";
	int found = 0;
	if (blk) {
		int rc = run_device(0, only, &total, &passed);
		if (rc < 0) {
			RESULT("hostile", "fail", " reason=out-of-dma-memory device=blk");
			return EXIT_FAIL;
		}
		found += rc > 0;
		if (rc == 0 && !net) {
			RESULT("hostile", "fail", " reason=no-virtio-blk device=blk scenarios=0 passed=0");
			return EXIT_FAIL;
		}
	}
	if (net) {
		int rc = run_device(1, only, &total, &passed);
		if (rc < 0) {
			RESULT("hostile", "fail", " reason=out-of-dma-memory device=net");
			return EXIT_FAIL;
		}
		found += rc > 0;
		if (rc == 0 && !blk) {
			RESULT("hostile", "fail", " reason=no-virtio-net device=net scenarios=0 passed=0");
			return EXIT_FAIL;
		}
	}
	int ok = found && total > 0 && passed == total;
	RESULT("hostile", ok ? "pass" : "fail", " scenarios=%u passed=%u device=%s dhcp=%lu%s", total, passed, dev,
	       cmdline_get_u64("dhcp", 0), total ? "" : " reason=no-such-scenario");
	return ok ? (int)(cmdline_get_u64("exit", 0) & 0xff) : EXIT_FAIL;
}

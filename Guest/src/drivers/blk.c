/* blk.c - virtio-blk driver (virtio 1.2 §5.2), test=blk and bench=blk.
 * Everything runs in ring 3. Requests are submitted from "slots": slot i
 * owns descriptors [i*D, i*D+D) of the ring, its header/status/indirect
 * table and one data buffer, so no descriptor free list is needed. A
 * multi-segment request goes through an indirect table when
 * VIRTIO_F_INDIRECT_DESC is negotiated, single-segment ones are direct.
 * With VIRTIO_BLK_F_MQ every request queue the device offers (up to
 * BLK_MAX_QUEUES, or queues=N) is set up, each with its own MSI-X entry; an
 * engine drives one queue. */
#include "kit.h"
#include "virtio.h"
#include "blk.h"
#include "net.h"

#define MAX_DISKS 4
#define MAX_QSIZE 256
#define BLK_MAX_QUEUES 16
#define PATTERN_K 0x9E3779B97F4A7C15ull
#define TIMEOUT_S 5


struct blk_dwz { /* discard / write zeroes segment */
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct disk {
	struct virtio_dev vd;
	struct virtq vq[BLK_MAX_QUEUES];
	unsigned int nq;   /* request queues set up */
	int index;
	int ok;          /* initialised and not timed out */
	const char *error;
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max, seg_max, blk_size;
	uint32_t max_discard, max_discard_seg, discard_align, max_wz, max_wz_seg;
	uint8_t phys_block_exp;
	int ro, indirect;
	char serial[BLK_ID_BYTES + 1];
};

struct slot {
	struct blk_hdr *hdr;
	volatile uint8_t *status;
	struct virtq_desc *ind;
	uint8_t *buf;
	uint64_t off;  /* byte offset on disk (pattern) */
	uint32_t len;
	uint32_t type;
	uint64_t t0;
	uint8_t busy;
};

struct engine {
	struct disk *d;
	struct virtq *q;  /* the request queue it submits on */
	struct slot *slots;
	unsigned int nslots, D, maxseg;
	uint32_t seg_bytes, buf_bytes;
	unsigned int inflight;
	uint64_t timeout;
	uint64_t lat_sum;
	const char *error;
};

static struct disk *disks; /* DMA pool: .bss is cleared in slow ring 0 */
static int ndisks;
static uint64_t tsc_hz;

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

static uint64_t pattern_key(void)
{
	return cmdline_get_u64("seed", 1) * PATTERN_K;
}

static int flag_on(const char *key)
{
	return cmdline_get_u64(key, 1) != 0;
}

/* ---- device bring-up ---- */

static void read_config(struct disk *d)
{
	struct virtio_dev *v = &d->vd;
	uint8_t gen;
	do {
		gen = virtio_config_generation(v);
		d->capacity = virtio_cfg64(v, CFG_CAPACITY);
		d->size_max = virtio_has(v, BLK_F_SIZE_MAX) ? virtio_cfg32(v, CFG_SIZE_MAX) : 0;
		d->seg_max = virtio_has(v, BLK_F_SEG_MAX) ? virtio_cfg32(v, CFG_SEG_MAX) : 0;
		d->blk_size = virtio_has(v, BLK_F_BLK_SIZE) ? virtio_cfg32(v, CFG_BLK_SIZE) : 512;
		d->phys_block_exp = virtio_has(v, BLK_F_TOPOLOGY) ? virtio_cfg8(v, CFG_PHYS_BLOCK_EXP) : 0;
		if (virtio_has(v, BLK_F_DISCARD)) {
			d->max_discard = virtio_cfg32(v, CFG_MAX_DISCARD);
			d->max_discard_seg = virtio_cfg32(v, CFG_MAX_DISCARD_SEG);
			d->discard_align = virtio_cfg32(v, CFG_DISCARD_ALIGN);
		}
		if (virtio_has(v, BLK_F_WRITE_ZEROES)) {
			d->max_wz = virtio_cfg32(v, CFG_MAX_WZ);
			d->max_wz_seg = virtio_cfg32(v, CFG_MAX_WZ_SEG);
		}
	} while (gen != virtio_config_generation(v));
	d->ro = virtio_has(v, BLK_F_RO);
}

static int disk_init(struct disk *d, struct pci_func *f)
{
	uint64_t want = 1ull << BLK_F_SIZE_MAX | 1ull << BLK_F_SEG_MAX | 1ull << BLK_F_RO |
			1ull << BLK_F_BLK_SIZE | 1ull << BLK_F_FLUSH | 1ull << BLK_F_TOPOLOGY |
			1ull << BLK_F_DISCARD | 1ull << BLK_F_WRITE_ZEROES;
	if (flag_on("event_idx"))
		want |= 1ull << VIRTIO_F_EVENT_IDX;
	if (flag_on("indirect"))
		want |= 1ull << VIRTIO_F_INDIRECT_DESC;
	if (flag_on("mq"))
		want |= 1ull << BLK_F_MQ;
	uint16_t qsize = (uint16_t)cmdline_get_u64("qsize", MAX_QSIZE);
	if (virtio_init(&d->vd, f, want) < 0)
		goto failed;
	d->nq = 1;
	if (virtio_has(&d->vd, BLK_F_MQ)) {
		/* Entry 1 is the configuration vector: queue i > 0 takes entry i + 1. */
		uint64_t n = virtio_cfg16(&d->vd, CFG_NUM_QUEUES), asked = cmdline_get_u64("queues", BLK_MAX_QUEUES);
		if (n > asked)
			n = asked;
		if (n > BLK_MAX_QUEUES)
			n = BLK_MAX_QUEUES;
		if (d->vd.msix_table_size && n > d->vd.msix_table_size - 1u)
			n = d->vd.msix_table_size - 1u;
		d->nq = n ? (unsigned int)n : 1;
	}
	for (unsigned int i = 0; i < d->nq; i++)
		if (virtio_setup_queue_entry(&d->vd, &d->vq[i], (uint16_t)i, qsize, (uint16_t)(i ? i + 1 : 0)) < 0)
			goto failed;
	if (virtio_driver_ok(&d->vd) < 0)
		goto failed;
	d->indirect = virtio_has(&d->vd, VIRTIO_F_INDIRECT_DESC);
	read_config(d);
	d->ok = 1;
	return 0;
failed:
	d->error = d->vd.error;
	return -1;
}

/* Find and initialise every virtio-blk function (modern id 0x1042). */
static int disks_init(void)
{
	struct pci_func *f;
	int n = pci_scan(&f);
	tsc_hz = kit_tsc_hz();
	kit_printf("info tsc-mhz=%lu\n", tsc_hz / 1000000);
	if (!tsc_hz)
		tsc_hz = 4000000000ull; /* no timer: assume the fastest TSC for timeouts */
	ndisks = 0;
	if (!disks)
		disks = dma_alloc(sizeof(*disks) * MAX_DISKS, 64);
	if (!disks)
		return 0;
	for (int i = 0; i < n && ndisks < MAX_DISKS; i++) {
		if (f[i].vendor != VIRTIO_PCI_VENDOR || f[i].device != VIRTIO_BLK_PCI_DEVICE)
			continue;
		struct disk *d = &disks[ndisks];
		memset(d, 0, sizeof(*d));
		d->index = ndisks++;
		if (disk_init(d, &f[i]) < 0)
			kit_printf("info blk disk=%d pci=%02x:%02x.%x init-failed reason=%s\n", d->index, f[i].bus,
				   f[i].dev, f[i].fn, d->error);
		else
			kit_printf("info blk disk=%d pci=%02x:%02x.%x features=0x%lx/0x%lx qsize=%u queues=%u msix-entries=%u\n",
				   d->index, f[i].bus, f[i].dev, f[i].fn, d->vd.features, d->vd.dev_features,
				   d->vq[0].size, d->nq, d->vd.msix_table_size);
	}
	return ndisks;
}

/* ---- request engine ---- */

/* Slots on request queue `queue` for requests of up to buf_bytes of data, at
 * most qd of them. Memory comes from the DMA pool; the caller releases it with
 * dma_mark. */
static int engine_init(struct engine *e, struct disk *d, unsigned int queue, unsigned int qd, uint32_t buf_bytes)
{
	memset(e, 0, sizeof(*e));
	e->d = d;
	e->q = &d->vq[queue < d->nq ? queue : 0];
	e->timeout = TIMEOUT_S * tsc_hz;
	uint32_t seg = 4096;
	if (d->size_max && d->size_max < seg)
		seg = d->size_max & ~511u;
	if (!seg)
		seg = 512;
	uint32_t maxseg = e->q->size - 2u;
	if (d->seg_max && d->seg_max < maxseg)
		maxseg = d->seg_max;
	if (div_up(buf_bytes, seg) > maxseg) { /* bigger segments: the buffer is contiguous */
		seg = (uint32_t)div_up(div_up(buf_bytes, maxseg), 512) * 512;
		if (d->size_max && seg > d->size_max) {
			e->error = "request-too-large";
			return -1;
		}
	}
	e->seg_bytes = seg;
	e->buf_bytes = buf_bytes;
	e->maxseg = buf_bytes ? (unsigned int)div_up(buf_bytes, seg) : 1;
	if (e->maxseg < 1)
		e->maxseg = 1;
	e->D = d->indirect ? 3 : 2 + e->maxseg;
	unsigned int cap = e->q->size / e->D;
	e->nslots = qd < cap ? qd : cap;
	if (!e->nslots) {
		e->error = "queue-too-small";
		return -1;
	}
	e->slots = dma_alloc(sizeof(struct slot) * e->nslots, 64);
	uint64_t ctl = (32 + 16ull * (e->maxseg + 2) + 63) & ~63ull;
	uint8_t *ctls = dma_alloc(ctl * e->nslots, 64);
	uint8_t *bufs = dma_alloc((uint64_t)buf_bytes * e->nslots, 4096);
	if (!e->slots || !ctls || !bufs) {
		e->error = "out-of-dma-memory";
		return -1;
	}
	for (unsigned int i = 0; i < e->nslots; i++) {
		struct slot *s = &e->slots[i];
		s->hdr = (struct blk_hdr *)(ctls + ctl * i);
		s->status = ctls + ctl * i + 16;
		s->ind = (struct virtq_desc *)(ctls + ctl * i + 32);
		s->buf = bufs + (uint64_t)buf_bytes * i;
	}
	return 0;
}

static struct slot *free_slot(struct engine *e)
{
	for (unsigned int i = 0; i < e->nslots; i++)
		if (!e->slots[i].busy)
			return &e->slots[i];
	return NULL;
}

/* Queue (not yet publish) one request on slot s with len bytes of s->buf. */
static void submit(struct engine *e, struct slot *s, uint32_t type, uint64_t sector, uint32_t len)
{
	struct virtq *q = e->q;
	unsigned int idx = (unsigned int)(s - e->slots);
	uint16_t head = (uint16_t)(idx * e->D);
	unsigned int nseg = len ? (unsigned int)div_up(len, e->seg_bytes) : 0;
	uint16_t dflags = (type == BLK_T_IN || type == BLK_T_GET_ID) ? VIRTQ_DESC_F_WRITE : 0;

	s->hdr->type = type;
	s->hdr->reserved = 0;
	s->hdr->sector = sector;
	*s->status = 0xff;
	s->type = type;
	s->len = len;

	int ind = e->d->indirect && nseg >= 2;
	struct virtq_desc *t = ind ? s->ind : &q->desc[head];
	uint16_t base = ind ? 0 : head;
	unsigned int n = 0;
	t[n] = (struct virtq_desc){ (uint64_t)(uintptr_t)s->hdr, sizeof(struct blk_hdr), VIRTQ_DESC_F_NEXT,
				    (uint16_t)(base + n + 1) };
	n++;
	for (uint32_t done = 0; done < len; n++) {
		uint32_t l = len - done < e->seg_bytes ? len - done : e->seg_bytes;
		t[n] = (struct virtq_desc){ (uint64_t)(uintptr_t)(s->buf + done), l,
					    (uint16_t)(dflags | VIRTQ_DESC_F_NEXT), (uint16_t)(base + n + 1) };
		done += l;
	}
	t[n] = (struct virtq_desc){ (uint64_t)(uintptr_t)s->status, 1, VIRTQ_DESC_F_WRITE, 0 };
	n++;
	if (ind)
		q->desc[head] = (struct virtq_desc){ (uint64_t)(uintptr_t)s->ind, 16 * n, VIRTQ_DESC_F_INDIRECT, 0 };
	s->busy = 1;
	s->t0 = rdtsc();
	e->inflight++;
	vq_add(q, head);
}

/* A completed slot, or NULL: nothing yet (block = 0), timeout, or a used
 * element we never sent (e->error set, disk marked dead). */
static struct slot *get_done(struct engine *e, int block)
{
	struct virtq *q = e->q;
	uint32_t id, len;
	uint64_t t0 = rdtsc();
	while (!vq_get_used(q, &id, &len)) {
		if (!block)
			return NULL;
		if (rdtsc() - t0 > e->timeout) {
			e->error = (virtio_status(&e->d->vd) & VIRTIO_S_NEEDS_RESET) ? "device-needs-reset" : "timeout";
			e->d->ok = 0;
			return NULL;
		}
		cpu_relax();
	}
	unsigned int i = id / e->D;
	if (id % e->D || i >= e->nslots || !e->slots[i].busy) {
		e->error = "bad-used-id";
		e->d->ok = 0;
		return NULL;
	}
	struct slot *s = &e->slots[i];
	s->busy = 0;
	e->inflight--;
	e->lat_sum += rdtsc() - s->t0;
	return s;
}

static struct slot *wait_one(struct engine *e)
{
	return get_done(e, 1);
}

/* One request, synchronously. Returns the status byte, or -1. */
static int do_one(struct engine *e, uint32_t type, uint64_t sector, uint32_t len)
{
	struct slot *s = free_slot(e);
	if (!s)
		return -1;
	submit(e, s, type, sector, len);
	vq_kick(e->q);
	s = wait_one(e);
	return s ? *s->status : -1;
}

/* ---- pattern ---- */

static void fill_pattern(uint8_t *buf, uint64_t off, uint32_t len, uint64_t k)
{
	uint64_t *w = (uint64_t *)buf;
	for (uint32_t i = 0; i < len / 8; i++)
		w[i] = (off + 8ull * i) ^ k;
}

static uint64_t check_pattern(const uint8_t *buf, uint64_t off, uint32_t len, uint64_t k, uint64_t *first_bad)
{
	const uint64_t *w = (const uint64_t *)buf;
	uint64_t bad = 0;
	for (uint32_t i = 0; i < len / 8; i++)
		if (w[i] != ((off + 8ull * i) ^ k)) {
			if (!bad && first_bad)
				*first_bad = off + 8ull * i;
			bad++;
		}
	return bad;
}

/* Write (or read back and verify) the pattern over bytes [base, base + total),
 * keeping up to nslots requests in flight. Returns the number of bad
 * words (reads), or -1 on a failed request (e->error set). */
static int64_t pattern_pass(struct engine *e, uint32_t type, uint64_t base, uint64_t total, uint64_t k,
			    uint64_t *first_bad, uint64_t *nreq)
{
	uint64_t end = base + total, next = base, done = 0, bad = 0;
	while (done < total) {
		struct slot *s;
		while (next < end && (s = free_slot(e))) {
			uint32_t len = end - next < e->buf_bytes ? (uint32_t)(end - next) : e->buf_bytes;
			s->off = next;
			if (type == BLK_T_OUT)
				fill_pattern(s->buf, next, len, k);
			submit(e, s, type, next / 512, len);
			next += len;
			(*nreq)++;
		}
		vq_kick(e->q);
		s = wait_one(e);
		if (!s)
			return -1;
		if (*s->status != BLK_S_OK) {
			e->error = "status-not-ok";
			return -1;
		}
		if (type == BLK_T_IN)
			bad += check_pattern(s->buf, s->off, s->len, k, bad ? NULL : first_bad);
		done += s->len;
	}
	return (int64_t)bad;
}

/* ---- test=blk ---- */

static const char *st(int ok)
{
	return ok ? "pass" : "fail";
}

static void sanitize_serial(struct disk *d, const uint8_t *id)
{
	int n = 0;
	for (; n < BLK_ID_BYTES && id[n]; n++)
		d->serial[n] = (id[n] > ' ' && id[n] < 0x7f && id[n] != '=') ? (char)id[n] : '_';
	d->serial[n] = '\0';
}

/* identify + MSI-X proof. Returns 1 if both passed. */
static int check_identify(struct disk *d, struct engine *e)
{
	/* MSI-X proof: wait for the interrupt before consuming the completion. With
	 * EVENT_IDX, consuming first would move used_event past this request, and a
	 * device that decides after that (legitimately) sends no interrupt. */
	uint64_t irq0 = kit_virtio_irqs;
	int s = -1;
	struct slot *slot = free_slot(e);
	if (slot) {
		submit(e, slot, BLK_T_GET_ID, 0, BLK_ID_BYTES);
		vq_kick(e->q);
		uint64_t w0 = rdtsc();
		while (kit_virtio_irqs == irq0 && rdtsc() - w0 < tsc_hz)
			cpu_relax();
		slot = wait_one(e);
		s = slot ? *slot->status : -1;
	}
	if (s == BLK_S_OK)
		sanitize_serial(d, e->slots[0].buf);
	else
		memcpy(d->serial, "-", 2);
	int ok = s == BLK_S_OK && d->capacity > 0;
	RESULT("blk-identify", st(ok),
	       " disk=%d capacity=%lu blk_size=%u seg_max=%u size_max=%u phys_block_exp=%u max_discard=%u"
	       " max_discard_seg=%u discard_align=%u max_write_zeroes=%u max_write_zeroes_seg=%u ro=%d"
	       " features=0x%lx serial=%s get_id_status=%d%s%s",
	       d->index, d->capacity, d->blk_size, d->seg_max, d->size_max, d->phys_block_exp, d->max_discard,
	       d->max_discard_seg, d->discard_align, d->max_wz, d->max_wz_seg, d->ro, d->vd.features, d->serial, s,
	       e->error ? " reason=" : "", e->error ? e->error : "");
	if (s < 0)
		return 0;

	/* The completion above must also have raised MSI-X entry 0. */
	int irq_ok = kit_virtio_irqs != irq0;
	RESULT("blk-msix", st(irq_ok), " disk=%d vector=0x%x entries=%u config_entry=%u interrupts=%lu", d->index,
	       VEC_VIRTIO_QUEUE, d->vd.msix_table_size, d->vd.config_vector, kit_virtio_irqs - irq0);
	return ok && irq_ok;
}

/* What one masked-vector probe saw (PCI 3.0 §6.8.2). */
struct mask_probe {
	int completed, quiet, pending, delivered, cleared, ok;
};

/* Masks the MSI-X entry of e's queue, completes a GET_ID on that queue, and
 * checks the completion did not interrupt but set the entry's PBA bit, and that
 * unmasking delivered it. The completion is observed on used->idx without
 * consuming it, so that with EVENT_IDX used_event still asks for this
 * interrupt. Returns NULL, or why it could not probe. */
static const char *probe_masked_vector(struct disk *d, struct engine *e, struct mask_probe *p)
{
	struct virtio_dev *vd = &d->vd;
	struct virtq *q = e->q;
	unsigned int entry = q->msix_entry;
	uint32_t pba_reg = pci_read32(vd->pci, (uint8_t)(vd->msix_cap + 8));
	volatile uint64_t *pba = (volatile uint64_t *)pci_bar_ptr(vd->pci, pba_reg & 7, pba_reg & ~7u, 8 * (entry / 64 + 1));
	volatile uint8_t *ent = (volatile uint8_t *)(vd->msix_table + 4 * entry);
	uint64_t bit = 1ull << (entry % 64);
	struct slot *slot = free_slot(e);
	memset(p, 0, sizeof(*p));
	if (!pba)
		return "pba-not-mapped";
	if (!slot)
		return "no-slot";
	pba += entry / 64;
	mmio_write32(ent + 12, 1);
	uint64_t irq0 = kit_virtio_irqs;
	uint16_t used0 = q->used->idx;
	submit(e, slot, BLK_T_GET_ID, 0, BLK_ID_BYTES);
	vq_kick(q);
	uint64_t t0 = rdtsc();
	while (q->used->idx == used0 && rdtsc() - t0 < tsc_hz)
		cpu_relax();
	p->completed = q->used->idx != used0;
	t0 = rdtsc();
	while (!(*pba & bit) && rdtsc() - t0 < tsc_hz / 10)
		cpu_relax();
	p->pending = (*pba & bit) != 0;
	p->quiet = kit_virtio_irqs == irq0;
	mmio_write32(ent + 12, 0);
	t0 = rdtsc();
	while (kit_virtio_irqs == irq0 && rdtsc() - t0 < tsc_hz)
		cpu_relax();
	p->delivered = kit_virtio_irqs != irq0;
	p->cleared = !(*pba & bit);
	struct slot *done = wait_one(e);
	p->ok = p->completed && p->quiet && p->pending && p->delivered && p->cleared && done && *done->status == BLK_S_OK;
	return NULL;
}

static int check_msix_mask(struct disk *d, struct engine *e)
{
	struct mask_probe p;
	const char *why = probe_masked_vector(d, e, &p);
	if (why) {
		RESULT("blk-msix-mask", "fail", " disk=%d reason=%s", d->index, why);
		return 0;
	}
	RESULT("blk-msix-mask", st(p.ok), " disk=%d completed=%d quiet_while_masked=%d pba_set=%d delivered_on_unmask=%d pba_cleared=%d",
	       d->index, p.completed, p.quiet, p.pending, p.delivered, p.cleared);
	return p.ok;
}

static int check_single(struct engine *e, const char *name, struct disk *d, uint32_t type, uint64_t sector,
			uint32_t len, int want, const char *extra)
{
	int s = do_one(e, type, sector, len);
	int ok = s == want;
	RESULT(name, st(ok), " disk=%d status_byte=%d expected=%d%s%s%s", d->index, s, want, extra,
	       e->error ? " reason=" : "", e->error ? e->error : "");
	return ok;
}

static int blk_writable_checks(struct disk *d, struct engine *e)
{
	int all = 1;
	uint64_t k = pattern_key(), total = d->capacity * 512, first_bad = 0, nreq = 0;
	uint64_t t0 = rdtsc();
	int64_t w = pattern_pass(e, BLK_T_OUT, 0, total, k, NULL, &nreq);
	int64_t r = -1;
	int flush_status = -2;
	if (w >= 0 && virtio_has(&d->vd, BLK_F_FLUSH))
		flush_status = do_one(e, BLK_T_FLUSH, 0, 0);
	if (w >= 0 && flush_status != -1)
		r = pattern_pass(e, BLK_T_IN, 0, total, k, &first_bad, &nreq);
	uint64_t us = (rdtsc() - t0) * 1000000 / tsc_hz;
	int ok = w == 0 && r == 0;
	if (r > 0)
		RESULT("blk-pattern", "fail", " disk=%d bytes=%lu bad_words=%ld first_bad=0x%lx seed=%lu", d->index,
		       total, r, first_bad, cmdline_get_u64("seed", 1));
	else
		RESULT("blk-pattern", st(ok), " disk=%d bytes=%lu requests=%lu seg_bytes=%u max_segs=%u inflight=%u us=%lu"
		       " seed=%lu%s%s", d->index, total, nreq, e->seg_bytes, e->maxseg, e->nslots, us,
		       cmdline_get_u64("seed", 1), e->error ? " reason=" : "", e->error ? e->error : "");
	all &= ok;
	if (!d->ok)
		return 0;

	if (flush_status == -2) {
		RESULT("blk-flush", "skip", " disk=%d reason=not-negotiated", d->index);
	} else {
		RESULT("blk-flush", st(flush_status == BLK_S_OK), " disk=%d status_byte=%d", d->index, flush_status);
		all &= flush_status == BLK_S_OK;
	}

	if (d->capacity < 24) {
		RESULT("blk-write-zeroes", "fail", " disk=%d reason=disk-too-small", d->index);
		return 0;
	}
	/* WRITE_ZEROES sectors [8,16) (they hold the pattern now), read back. */
	struct slot *s0 = &e->slots[0];
	int wz;
	int fallback = 0;
	if (virtio_has(&d->vd, BLK_F_WRITE_ZEROES) && d->max_wz >= 8 && d->max_wz_seg >= 1) {
		*(struct blk_dwz *)s0->buf = (struct blk_dwz){ 8, 8, 0 };
		wz = do_one(e, BLK_T_WRITE_ZEROES, 0, sizeof(struct blk_dwz));
	} else {
		/* Not offered: zero them with a WRITE so the image still checks out. */
		fallback = 1;
		memset(s0->buf, 0, 4096);
		wz = do_one(e, BLK_T_OUT, 8, 4096);
	}
	int zero_ok = 0;
	if (wz == BLK_S_OK) {
		memset(s0->buf, 0xa5, 4096);
		if (do_one(e, BLK_T_IN, 8, 4096) == BLK_S_OK) {
			zero_ok = 1;
			for (int i = 0; i < 4096; i++)
				zero_ok &= s0->buf[i] == 0;
		}
	}
	if (fallback) {
		RESULT("blk-write-zeroes", "skip", " disk=%d reason=not-negotiated fallback=write status_byte=%d zeroed=%d",
		       d->index, wz, zero_ok);
		all &= zero_ok;
	} else {
		RESULT("blk-write-zeroes", st(wz == BLK_S_OK && zero_ok), " disk=%d sectors=8-15 status_byte=%d zeroed=%d%s%s",
		       d->index, wz, zero_ok, e->error ? " reason=" : "", e->error ? e->error : "");
		all &= wz == BLK_S_OK && zero_ok;
	}
	if (!d->ok)
		return 0;

	if (virtio_has(&d->vd, BLK_F_DISCARD) && d->max_discard >= 8 && d->max_discard_seg >= 1) {
		*(struct blk_dwz *)s0->buf = (struct blk_dwz){ 16, 8, 0 };
		all &= check_single(e, "blk-discard", d, BLK_T_DISCARD, 0, sizeof(struct blk_dwz), BLK_S_OK,
				    " sectors=16-23");
	} else {
		RESULT("blk-discard", "skip", " disk=%d reason=not-negotiated", d->index);
	}
	return all;
}

/* VIRTIO_BLK_F_MQ: every request queue serves requests on its own ring and
 * interrupts through its own MSI-X entry. Queue q writes the pattern over its
 * own 64 KiB stripe (stripe q+1: the first holds the write-zeroes and discard
 * sectors) and queue q+1 reads it back; with the same key as the pattern pass,
 * so the disk ends as that pass left it; then each queue's entry is masked in
 * turn and a completion on that queue must set that entry's PBA bit.
 * expect_queues=N (from the host, which knows the vCPU count) demands N. */
#define MQ_STRIPE (64u * 1024)

static int check_mq(struct disk *d)
{
	unsigned int expect = (unsigned int)cmdline_get_u64("expect_queues", 0);
	int mq = virtio_has(&d->vd, BLK_F_MQ);
	if (d->nq < 2 && (!expect || expect == d->nq)) {
		RESULT("blk-mq", "skip", " disk=%d queues=%u reason=%s", d->index, d->nq, mq ? "one-queue" : "not-negotiated");
		return 1;
	}
	if (d->ro || d->capacity * 512 < (uint64_t)MQ_STRIPE * (d->nq + 1)) {
		RESULT("blk-mq", "fail", " disk=%d queues=%u reason=%s", d->index, d->nq, d->ro ? "read-only" : "disk-too-small");
		return 0;
	}
	struct engine e[BLK_MAX_QUEUES];
	uint64_t mark = dma_mark(), k = pattern_key(), nreq = 0, bad = 0, first_bad = 0;
	uint16_t used0[BLK_MAX_QUEUES];
	const char *why = NULL;
	for (unsigned int q = 0; q < d->nq && !why; q++) {
		used0[q] = d->vq[q].used->idx;
		if (engine_init(&e[q], d, q, 4, 16 * 1024) < 0)
			why = e[q].error;
	}
	for (unsigned int q = 0; q < d->nq && !why; q++)
		if (pattern_pass(&e[q], BLK_T_OUT, (uint64_t)MQ_STRIPE * (q + 1), MQ_STRIPE, k, NULL, &nreq) < 0)
			why = e[q].error;
	for (unsigned int q = 0; q < d->nq && !why; q++) {
		struct engine *reader = &e[(q + 1) % d->nq];
		int64_t b = pattern_pass(reader, BLK_T_IN, (uint64_t)MQ_STRIPE * (q + 1), MQ_STRIPE, k, bad ? NULL : &first_bad,
					 &nreq);
		if (b < 0)
			why = reader->error;
		else
			bad += (uint64_t)b;
	}
	/* Each ring carried its own requests: a write pass and a read pass, 8 requests. */
	unsigned int served = 0;
	for (unsigned int q = 0; q < d->nq && !why; q++)
		served += (uint16_t)(d->vq[q].used->idx - used0[q]) == 2 * MQ_STRIPE / (16 * 1024);
	unsigned int vectors = 0;
	for (unsigned int q = 0; q < d->nq && !why; q++) {
		struct mask_probe p;
		why = probe_masked_vector(d, &e[q], &p);
		vectors += !why && p.ok;
	}
	dma_release(mark);
	int ok = !why && bad == 0 && served == d->nq && vectors == d->nq && (!expect || d->nq == expect);
	RESULT("blk-mq", st(ok), " disk=%d queues=%u expected=%u requests=%lu rings_ok=%u vectors_ok=%u bad_words=%lu"
	       " first_bad=0x%lx%s%s", d->index, d->nq, expect, nreq, served, vectors, bad, first_bad,
	       why ? " reason=" : "", why ? why : "");
	return ok;
}

int test_blk(const char *name)
{
	int n = disks_init();
	int all = n > 0;
	int ev = 1, ind = 1;
	uint64_t mark = dma_mark();

	for (int i = 0; i < n; i++) {
		struct disk *d = &disks[i];
		struct engine e;
		if (!d->error) {
			ev &= virtio_has(&d->vd, VIRTIO_F_EVENT_IDX);
			ind &= d->indirect;
		}
		if (d->error || engine_init(&e, d, 0, 8, 64 * 1024) < 0) {
			RESULT("blk-identify", "fail", " disk=%d reason=%s", i, d->error ? d->error : e.error);
			all = 0;
			continue;
		}
		all &= check_identify(d, &e);
		if (d->ok && i == 0)
			all &= check_msix_mask(d, &e);
		if (d->ok && !d->ro)
			all &= blk_writable_checks(d, &e);
		/* After the pattern pass: the stripes write what it wrote. */
		if (d->ok && !d->ro)
			all &= check_mq(d);
		if (d->ok && d->ro) {
			e.error = NULL;
			int rd = do_one(&e, BLK_T_IN, 0, 4096);
			int wr = rd >= 0 ? do_one(&e, BLK_T_OUT, 0, 4096) : -1;
			int ok = rd == BLK_S_OK && wr == BLK_S_IOERR;
			RESULT("blk-readonly-write", st(ok), " disk=%d read_status=%d write_status=%d expected=%d%s%s",
			       i, rd, wr, BLK_S_IOERR, e.error ? " reason=" : "", e.error ? e.error : "");
			all &= ok;
		}
		if (d->ok) {
			e.error = NULL;
			all &= check_single(&e, "blk-read-past-end", d, BLK_T_IN, d->capacity, 512, BLK_S_IOERR, "");
		}
		all &= d->ok;
		kit_printf("info blk disk=%d kicks=%lu notifies=%lu\n", i, d->vq[0].kicks, d->vq[0].notifies);
		if (d->ok) {
			dma_release(mark);
		} else {
			/* A stuck device may still own its buffers: never reuse them. */
			virtio_fail(&d->vd);
			mark = dma_mark();
		}
	}
	if (!n) {
		ev = flag_on("event_idx");
		ind = flag_on("indirect");
	}
	all &= kit_virtio_irqs > 0;
	RESULT(name, st(all), " disks=%d interrupts=%lu event_idx=%d indirect=%d%s", n, kit_virtio_irqs, ev, ind,
	       n ? "" : " reason=no-virtio-blk");
	return all ? (int)(cmdline_get_u64("exit", 0) & 0xff) : EXIT_FAIL;
}

/* ---- bench=blk ---- */

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int bench_blk(const char *name)
{
	const char *rw = cmdline_get("rw");
	if (!rw || !*rw)
		rw = "randread";
	int rnd, wr;
	if (!strcmp(rw, "randread"))
		rnd = 1, wr = 0;
	else if (!strcmp(rw, "randwrite"))
		rnd = 1, wr = 1;
	else if (!strcmp(rw, "read"))
		rnd = 0, wr = 0;
	else if (!strcmp(rw, "write"))
		rnd = 0, wr = 1;
	else {
		RESULT(name, "fail", " reason=bad-rw rw=%s", rw);
		return EXIT_FAIL;
	}
	uint64_t bs = cmdline_get_u64("bs", 4096), qd = cmdline_get_u64("qd", 1), n = cmdline_get_u64("n", 10000);
	int poll = cmdline_get_u64("poll", 0) != 0;
	if (bs < 512 || bs % 512 || bs > (4u << 20) || qd < 1 || qd > MAX_QSIZE || n < 1) {
		RESULT(name, "fail", " reason=bad-args bs=%lu qd=%lu n=%lu", bs, qd, n);
		return EXIT_FAIL;
	}

	int nd = disks_init();
	struct disk *d = NULL;
	for (int i = 0; i < nd && !d; i++)
		if (disks[i].ok && (!wr || !disks[i].ro))
			d = &disks[i];
	if (!d) {
		RESULT(name, "fail", " reason=no-suitable-disk disks=%d", nd);
		return EXIT_FAIL;
	}
	uint64_t nblocks = d->capacity * 512 / bs;
	/* queues=N: N engines, one per request queue, each keeping qd in flight. */
	unsigned int nq = (unsigned int)cmdline_get_u64("queues", 1);
	if (nq < 1 || nq > d->nq) {
		RESULT(name, "fail", " reason=bad-queues queues=%u offered=%u", nq, d->nq);
		return EXIT_FAIL;
	}
	struct engine e[BLK_MAX_QUEUES];
	for (unsigned int q = 0; q < nq; q++) {
		if (!nblocks || engine_init(&e[q], d, q, (unsigned int)qd, (uint32_t)bs) < 0 || e[q].nslots < qd) {
			RESULT(name, "fail", " reason=%s bs=%lu qd=%lu max_qd=%u", !nblocks ? "disk-too-small" : e[q].error ? e[q].error : "qd-too-large",
			       bs, qd, nblocks ? e[q].nslots : 0);
			return EXIT_FAIL;
		}
		vq_set_poll(e[q].q, poll);
	}

	uint32_t type = wr ? BLK_T_OUT : BLK_T_IN;
	uint64_t prng = cmdline_get_u64("seed", 1) * PATTERN_K | 1, seq = 0;
	uint64_t submitted = 0, completed = 0, errors = 0, irq0 = kit_virtio_irqs;
	const char *error = NULL;
	uint64_t t0 = rdtsc();
	while (completed < n && !error) {
		for (unsigned int q = 0; q < nq; q++) {
			struct slot *s;
			while (submitted < n && (s = free_slot(&e[q]))) {
				uint64_t blk = rnd ? xorshift64(&prng) % nblocks : seq++ % nblocks;
				submit(&e[q], s, type, blk * bs / 512, (uint32_t)bs);
				submitted++;
			}
			vq_kick(e[q].q);
		}
		/* Wait for a completion on any queue, then take everything that is done. */
		uint64_t got = 0, w0 = rdtsc();
		while (!got && !error) {
			for (unsigned int q = 0; q < nq && !error; q++) {
				struct slot *s;
				while ((s = get_done(&e[q], 0)) != NULL) {
					errors += *s->status != BLK_S_OK;
					got++;
				}
				error = e[q].error;
			}
			if (!got && rdtsc() - w0 > e[0].timeout)
				error = (virtio_status(&d->vd) & VIRTIO_S_NEEDS_RESET) ? "device-needs-reset" : "timeout";
			if (!got)
				cpu_relax();
		}
		completed += got;
	}
	uint64_t cycles = rdtsc() - t0;
	uint64_t us = cycles * 1000000 / tsc_hz;
	if (!us)
		us = 1;
	uint64_t irqs = kit_virtio_irqs - irq0, lat_sum = 0, notifies = 0;
	for (unsigned int q = 0; q < nq; q++) {
		lat_sum += e[q].lat_sum;
		notifies += e[q].q->notifies;
	}
	if (completed < n || errors) {
		RESULT(name, "fail", " rw=%s bs=%lu qd=%lu queues=%u n=%lu completed=%lu errors=%lu%s%s", rw, bs, qd, nq, n,
		       completed, errors, error ? " reason=" : "", error ? error : "");
		return EXIT_FAIL;
	}
	uint64_t iops = n * 1000000 / us, mbps100 = n * bs * 100 / us;
	uint64_t lat_ns = lat_sum * 1000 / (tsc_hz / 1000000) / n;
	RESULT(name, "pass", " rw=%s bs=%lu qd=%lu queues=%u n=%lu iops=%lu mbps=%lu.%02lu usec=%lu lat_usec=%lu.%03lu"
	       " interrupts=%lu notifies=%lu poll=%d event_idx=%d indirect=%d disk=%d",
	       rw, bs, qd, nq, n, iops, mbps100 / 100, mbps100 % 100, us, lat_ns / 1000, lat_ns % 1000, irqs,
	       notifies, poll, virtio_has(&d->vd, VIRTIO_F_EVENT_IDX), d->indirect, d->index);
	return (int)(cmdline_get_u64("exit", 0) & 0xff);
}

/* ---- test=crash: writes the host kills in the middle of ----
 * Forever (until the host kills the VM or its disk process): 4 KiB writes
 * cycling over blocks=N blocks (block = seq % N), qd in flight; every
 * flush_every writes it waits for all of them, sends FLUSH and, once the
 * FLUSH completed, prints "CRASH flushed seq=S": every write with a sequence
 * number up to S was acknowledged before a FLUSH that completed, so the host
 * may demand it on the image. Each 512-byte sector of a write holds
 * CRASH_MAGIC, the sequence number and the block, then the sequence number
 * repeated, so a torn or misplaced sector shows. */
#define CRASH_MAGIC 0x4853415243ull /* "CRASH" */

static void fill_crash(uint8_t *buf, uint64_t seq, uint64_t block)
{
	for (unsigned int sector = 0; sector < 8; sector++) {
		uint64_t *w = (uint64_t *)(buf + 512 * sector);
		w[0] = CRASH_MAGIC;
		w[1] = seq;
		w[2] = block;
		for (unsigned int i = 3; i < 64; i++)
			w[i] = seq ^ ((uint64_t)sector << 56);
	}
}

int test_crash(const char *name)
{
	uint64_t blocks = cmdline_get_u64("blocks", 256), qd = cmdline_get_u64("qd", 8);
	uint64_t every = cmdline_get_u64("flush_every", 64);
	int nd = disks_init();
	struct disk *d = NULL;
	for (int i = 0; i < nd && !d; i++)
		if (disks[i].ok && !disks[i].ro)
			d = &disks[i];
	struct engine e;
	if (!d || blocks < 1 || d->capacity < blocks * 8 || !virtio_has(&d->vd, BLK_F_FLUSH) ||
	    engine_init(&e, d, 0, (unsigned int)qd, 4096) < 0) {
		RESULT(name, "fail", " reason=%s", !d ? "no-writable-disk" : "disk-too-small-or-no-flush");
		return EXIT_FAIL;
	}
	kit_printf("CRASH start blocks=%lu qd=%u flush_every=%lu\n", blocks, e.nslots, every);
	uint64_t seq = 1;
	for (;;) {
		/* A batch of writes, then wait for every one of them. */
		uint64_t end = seq + every;
		while (seq < end || e.inflight) {
			struct slot *s;
			while (seq < end && (s = free_slot(&e))) {
				uint64_t block = seq % blocks;
				fill_crash(s->buf, seq, block);
				submit(&e, s, BLK_T_OUT, block * 8, 4096);
				seq++;
			}
			vq_kick(e.q);
			s = wait_one(&e);
			if (!s || *s->status != BLK_S_OK) {
				RESULT(name, "fail", " reason=%s seq=%lu", s ? "write-failed" : e.error, seq);
				return EXIT_FAIL;
			}
		}
		int status = do_one(&e, BLK_T_FLUSH, 0, 0);
		if (status != BLK_S_OK) {
			RESULT(name, "fail", " reason=flush-failed status=%d", status);
			return EXIT_FAIL;
		}
		kit_printf("CRASH flushed seq=%lu\n", seq - 1);
	}
}

/* ---- test=migrate: a snapshot/restore (or migration) must lose nothing ----
 * The host pauses the VM anywhere, saves it, and resumes it in a new process.
 * Everything the test knows lives in guest memory, so the new VM carries on:
 * a memory pattern (pattern_mib MiB of the DMA pool, filled once, checked at
 * the end) and, on the first writable disk, qd slots that each take the next
 * LBA of the range and read it (it must hold its latest write: an acknowledged
 * write lost anywhere shows one lap later), write it anew (seed, LBA, sequence
 * number in every sector) and read that back. "MIGRATE tick=N ios=M" comes
 * every tick_ms of timer ticks, N from a counter in memory, so a pause can
 * delay or hasten a line but never skip a number. Timeouts count timer interrupts seen, not TSC time, so a TSC that
 * moved on while the VM was stopped cannot fire them. With net=1 the loop
 * also polls the first virtio-net device (never waiting, see netdev.nowait)
 * and answers ARP and ICMP echo, so the host can ping the guest across a
 * snapshot or migration. */
#define MIG_MAGIC 0x4554415247494dull /* "MIGRATE" */
#define MIG_TIMEOUT_TICKS (TIMEOUT_S * 100)
#define MIG_REPORT_MAX 8
#define MIG_NET_BUDGET 32 /* received frames handled per poll */
#define MIG_PRE   0 /* a slot's phases: reading the LBA's latest write */
#define MIG_WRITE 1 /*   writing the next one */
#define MIG_BACK  2 /*   reading that back */

struct mig_bad { /* the first mismatch, for reason= */
	const char *what;
	uint64_t lba, want_seq, got_seq, got_lba, word, offset, want, got;
	uint64_t tick;
};

static uint64_t mix64(uint64_t x) /* splitmix64's finaliser */
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t mig_mem_word(uint64_t k, uint64_t off)
{
	return mix64(k ^ off);
}

static uint64_t mig_blk_word(uint64_t k, uint64_t lba, uint64_t seq, unsigned int i)
{
	return mix64(k ^ lba << 40 ^ seq << 8 ^ i);
}

/* Sector s of the block: magic|s, seed, lba, seq, then 60 mixed words. */
static void fill_mig(uint8_t *buf, uint64_t seed, uint64_t lba, uint64_t seq)
{
	uint64_t *w = (uint64_t *)buf, k = seed * PATTERN_K;
	for (unsigned int s = 0; s < 8; s++, w += 64) {
		w[0] = MIG_MAGIC << 8 | s;
		w[1] = seed;
		w[2] = lba;
		w[3] = seq;
		for (unsigned int i = 4; i < 64; i++)
			w[i] = mig_blk_word(k, lba, seq, s * 64 + i);
	}
}

/* 0 if buf is the write (seed, lba, seq), else the index of the first bad
 * word + 1, with what that sector claims to be in *got_seq, *got_lba. */
static uint64_t check_mig(const uint8_t *buf, uint64_t seed, uint64_t lba, uint64_t seq, uint64_t *got_seq,
			  uint64_t *got_lba)
{
	const uint64_t *w = (const uint64_t *)buf;
	uint64_t k = seed * PATTERN_K;
	for (unsigned int s = 0; s < 8; s++) {
		const uint64_t *x = w + 64 * s;
		int bad = x[0] != (MIG_MAGIC << 8 | s) || x[1] != seed || x[2] != lba || x[3] != seq;
		for (unsigned int i = 4; i < 64 && !bad; i++)
			bad = x[i] != mig_blk_word(k, lba, seq, s * 64 + i);
		if (bad) {
			*got_seq = x[3];
			*got_lba = x[2];
			for (unsigned int i = 0; i < 64; i++) {
				uint64_t want = i == 0 ? (MIG_MAGIC << 8 | s) : i == 1 ? seed : i == 2 ? lba : i == 3 ? seq :
						mig_blk_word(k, lba, seq, s * 64 + i);
				if (x[i] != want)
					return s * 64 + i + 1;
			}
		}
	}
	return 0;
}

struct mig {
	struct engine e;
	uint64_t seed, nblocks, cursor;
	uint64_t *last_seq;   /* per LBA: the latest completed write, 0 = none yet */
	uint8_t *lba_busy;    /* per LBA: a slot is writing or reading it */
	uint64_t *slot_seq;   /* per slot: the sequence number it writes */
	uint8_t *slot_phase;  /* per slot: MIG_PRE, MIG_WRITE, MIG_BACK */
	uint64_t wseq, ios, writes, reads, mismatches, laps;
	uint64_t tick;        /* the last MIGRATE line printed */
	uint64_t stall;       /* timer interrupts seen without a completion */
	uint64_t seen_ticks;
	struct mig_bad bad;
	uint64_t io_lba;      /* a request that failed: its LBA and status byte */
	int io_status;        /* -1: none failed */
	struct netif *nif;    /* net=1: the interface polled by the loop, else NULL */
};

/* net=1: take what arrived (ARP, ICMP echo answered) and flush the replies;
 * never waits. 0, or -1 once the device is dead. */
static int mig_net_poll(struct mig *m)
{
	if (!m->nif)
		return 0;
	netif_poll(m->nif, MIG_NET_BUDGET);
	return m->nif->dev->ok ? 0 : -1;
}

static void mig_mismatch(struct mig *m, uint64_t lba, uint64_t want, uint64_t word, uint64_t got_seq,
			 uint64_t got_lba, const char *phase)
{
	if (m->mismatches < MIG_REPORT_MAX)
		kit_printf("info migrate mismatch phase=%s lba=%lu expected_seq=%lu got_seq=%lu got_lba=%lu word=%lu tick=%lu\n",
			   phase, lba, want, got_seq, got_lba, word - 1, m->tick);
	if (!m->mismatches++)
		m->bad = (struct mig_bad){ "block-mismatch", lba, want, got_seq, got_lba, word - 1, 0, 0, 0, m->tick };
}

/* Counts a timer interrupt (at most one per call) towards the stall timeout. */
static int mig_stalled(struct mig *m)
{
	if (kit_ticks != m->seen_ticks) {
		m->seen_ticks = kit_ticks;
		m->stall++;
	}
	return m->stall > MIG_TIMEOUT_TICKS;
}

static void mig_read(struct mig *m, struct slot *s, uint64_t lba, uint8_t phase)
{
	m->slot_phase[s - m->e.slots] = phase;
	memset(s->buf, 0xa5, 4096); /* a read that moves no data shows */
	s->off = lba;
	submit(&m->e, s, BLK_T_IN, lba * 8, 4096);
}

static void mig_advance(struct mig *m)
{
	if (++m->cursor == m->nblocks) {
		m->cursor = 0;
		m->laps++;
	}
}

static void mig_write(struct mig *m, struct slot *s, uint64_t lba)
{
	uint64_t seq = ++m->wseq;
	m->slot_seq[s - m->e.slots] = seq;
	m->slot_phase[s - m->e.slots] = MIG_WRITE;
	fill_mig(s->buf, m->seed, lba, seq);
	s->off = lba;
	submit(&m->e, s, BLK_T_OUT, lba * 8, 4096);
}

/* Start free slots on LBAs no slot holds, cycling over the range (two
 * requests for one LBA in flight could complete in either order). */
static void mig_submit(struct mig *m)
{
	struct slot *s;
	while ((s = free_slot(&m->e)) != NULL) {
		uint64_t tries = 0;
		while (m->lba_busy[m->cursor] && tries++ < m->nblocks)
			mig_advance(m);
		if (m->lba_busy[m->cursor])
			return;
		uint64_t lba = m->cursor;
		mig_advance(m);
		m->lba_busy[lba] = 1;
		if (m->last_seq[lba])
			mig_read(m, s, lba, MIG_PRE);
		else
			mig_write(m, s, lba);
	}
}

/* Take every completion and start the slot's next phase: a read is checked
 * against the LBA's latest write, a write is followed by its read-back, which
 * frees the LBA. -1 on an I/O error. */
static int mig_reap(struct mig *m, const char **why)
{
	struct slot *s;
	while ((s = get_done(&m->e, 0)) != NULL) {
		m->ios++;
		m->stall = 0;
		uint64_t lba = s->off;
		if (*s->status != BLK_S_OK) {
			*why = s->type == BLK_T_OUT ? "write-failed" : "read-failed";
			m->io_lba = lba;
			m->io_status = *s->status;
			return -1;
		}
		uint8_t phase = m->slot_phase[s - m->e.slots];
		if (phase == MIG_WRITE) {
			m->writes++;
			m->last_seq[lba] = m->slot_seq[s - m->e.slots];
			mig_read(m, s, lba, MIG_BACK);
			continue;
		}
		m->reads++;
		uint64_t got_seq = 0, got_lba = 0, word = check_mig(s->buf, m->seed, lba, m->last_seq[lba], &got_seq, &got_lba);
		if (word)
			mig_mismatch(m, lba, m->last_seq[lba], word, got_seq, got_lba, phase == MIG_PRE ? "pre-read" : "read-back");
		if (phase == MIG_PRE)
			mig_write(m, s, lba);
		else
			m->lba_busy[lba] = 0;
	}
	if (m->e.error) {
		*why = m->e.error;
		return -1;
	}
	return 0;
}

/* Wait for every request in flight (the loop's last writes and reads). */
static int mig_drain(struct mig *m, const char **why)
{
	m->stall = 0;
	while (m->e.inflight) {
		vq_kick(m->e.q);
		if (mig_reap(m, why) < 0)
			return -1;
		if (mig_net_poll(m) < 0) {
			*why = "net-failed";
			return -1;
		}
		if (m->e.inflight && mig_stalled(m)) {
			*why = (virtio_status(&m->e.d->vd) & VIRTIO_S_NEEDS_RESET) ? "device-needs-reset" : "timeout";
			return -1;
		}
		cpu_relax();
	}
	return 0;
}

/* Read every LBA of the range once more; each must hold its latest write.
 * Returns the LBAs never written (nothing to compare), or -1. */
static int64_t mig_verify(struct mig *m, const char **why)
{
	uint64_t next = 0, done = 0, unwritten = 0;
	m->stall = 0;
	while (done < m->nblocks) {
		struct slot *s;
		while (next < m->nblocks && (s = free_slot(&m->e)) != NULL)
			mig_read(m, s, next++, MIG_BACK);
		vq_kick(m->e.q);
		while ((s = get_done(&m->e, 0)) != NULL) {
			m->stall = 0;
			done++;
			if (*s->status != BLK_S_OK) {
				*why = "verify-read-failed";
				m->io_lba = s->off;
				m->io_status = *s->status;
				return -1;
			}
			uint64_t lba = s->off, got_seq = 0, got_lba = 0;
			if (!m->last_seq[lba]) {
				unwritten++;
				continue;
			}
			uint64_t word = check_mig(s->buf, m->seed, lba, m->last_seq[lba], &got_seq, &got_lba);
			if (word)
				mig_mismatch(m, lba, m->last_seq[lba], word, got_seq, got_lba, "verify");
		}
		if (m->e.error) {
			*why = m->e.error;
			return -1;
		}
		if (mig_net_poll(m) < 0) {
			*why = "net-failed";
			return -1;
		}
		if (done < m->nblocks && mig_stalled(m)) {
			*why = (virtio_status(&m->e.d->vd) & VIRTIO_S_NEEDS_RESET) ? "device-needs-reset" : "timeout";
			return -1;
		}
		cpu_relax();
	}
	return (int64_t)unwritten;
}

/* touch_mib=N: a second pattern over N MiB of RAM from physical 16 MiB up,
 * outside the kit image, so that a snapshot/migration benchmark can have most
 * of the guest's memory written. Word at physical address pa: rotl29((pa ^
 * seed * TOUCH_K) * TOUCH_M), unlike the pool pattern's mix64 of an offset,
 * so a page of one can never pass for the other (and, the multiplier being
 * odd, no two addresses hold the same word). Only RAM of the PVH memmap
 * below 4 GiB (the kit's identity map) is written. */
#define TOUCH_BASE 0x1000000ull         /* 16 MiB */
#define TOUCH_K    0xC2B2AE3D27D4EB4Full
#define TOUCH_M    0xD6E8FEB86659FD93ull
#define TOUCH_LIMIT (1ull << 32)        /* end of the identity map */

extern char __image_end[];

static inline uint64_t touch_word(uint64_t kt, uint64_t pa)
{
	uint64_t x = (pa ^ kt) * TOUCH_M;
	return x << 29 | x >> 35;
}

static uint64_t memmap_end(const struct hvm_memmap_entry *e)
{
	uint64_t end = e->size > ~0ull - e->addr ? ~0ull : e->addr + e->size;
	return end < TOUCH_LIMIT ? end : TOUCH_LIMIT;
}

/* The end of the RAM that runs without a hole from base (type-1 entries,
 * below 4 GiB, not cut by any other entry); base if base is not RAM. */
static uint64_t ram_reach(uint64_t base)
{
	uint64_t cur = base;
	for (int grew = 1; grew;) {
		grew = 0;
		for (uint32_t i = 0; i < kit_boot.memmap_entries; i++) {
			const struct hvm_memmap_entry *e = &kit_boot.memmap[i];
			uint64_t end = memmap_end(e);
			if (e->type == 1 && e->addr <= cur && cur < end) {
				cur = end;
				grew = 1;
			}
		}
	}
	for (uint32_t i = 0; i < kit_boot.memmap_entries; i++) {
		const struct hvm_memmap_entry *e = &kit_boot.memmap[i];
		if (e->type != 1 && e->size && e->addr < cur && memmap_end(e) > base)
			cur = e->addr > base ? e->addr : base;
	}
	return cur;
}

static uint64_t ram_below_4g(void) /* bytes of type-1 RAM below 4 GiB */
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < kit_boot.memmap_entries; i++) {
		const struct hvm_memmap_entry *e = &kit_boot.memmap[i];
		uint64_t end = memmap_end(e);
		if (e->type == 1 && end > e->addr)
			sum += end - e->addr;
	}
	return sum;
}

static void touch_fill(uint64_t *w, uint64_t words, uint64_t kt)
{
	for (uint64_t i = 0; i < words; i++)
		w[i] = touch_word(kt, (uint64_t)(uintptr_t)(w + i));
}

/* Compare the touched region; the number of bad words (the first in *b). */
static uint64_t touch_check(const uint64_t *w, uint64_t words, uint64_t kt, struct mig_bad *b)
{
	uint64_t bad = 0;
	for (uint64_t i = 0; i < words; i++) {
		uint64_t pa = (uint64_t)(uintptr_t)(w + i), want = touch_word(kt, pa);
		if (w[i] != want && !bad++)
			*b = (struct mig_bad){ "touch-mismatch", 0, 0, 0, 0, 0, pa, want, w[i], 0 };
	}
	return bad;
}

/* Compare the memory pattern; the number of bad words (the first in m->bad). */
static uint64_t mig_check_mem(struct mig *m, const uint64_t *mem, uint64_t bytes, uint64_t k)
{
	uint64_t bad = 0;
	for (uint64_t i = 0; i < bytes / 8; i++) {
		uint64_t want = mig_mem_word(k, 8 * i);
		if (mem[i] != want && !bad++ && !m->mismatches)
			m->bad = (struct mig_bad){ "pattern-mismatch", 0, 0, 0, 0, 0, 8 * i, want, mem[i], m->tick };
	}
	return bad;
}

int test_migrate(const char *name)
{
	static struct mig mg; /* .bss: in the image, carried over like the rest */
	struct mig *m = &mg;
	uint64_t seed = cmdline_get_u64("seed", 1), ticks = cmdline_get_u64("ticks", 40);
	uint64_t qd = cmdline_get_u64("qd", 4), blocks = cmdline_get_u64("blocks", 256);
	uint64_t mib = cmdline_get_u64("pattern_mib", 2), tick_ms = cmdline_get_u64("tick_ms", 50);
	uint64_t every = tick_ms / 10 ? tick_ms / 10 : 1; /* in 10 ms timer ticks */
	/* A line's gap longer than this is reported as it happens (a benchmark
	 * reads the one before the receiver's first line: the switchover). */
	uint64_t gap_report_us = cmdline_get_u64("gap_report_us", 4 * every * 10 * 1000);
	const char *why = NULL;

	if (ticks < 1 || qd < 1 || qd > MAX_QSIZE || blocks < 1 || mib > 64) { /* the pool is 8 MiB */
		RESULT(name, "fail", " reason=bad-args ticks=%lu qd=%lu blocks=%lu pattern_mib=%lu", ticks, qd, blocks, mib);
		return EXIT_FAIL;
	}
	if (!kit_tsc_hz()) { /* the ticks are the clock */
		RESULT(name, "fail", " reason=no-timer-ticks ticks=%lu", kit_ticks);
		return EXIT_FAIL;
	}
	/* touch_mib: the region must be RAM of the memmap, below 4 GiB, and
	 * clear of the image. Checked before anything is written. */
	uint64_t tmib = cmdline_get_u64("touch_mib", 0), ram_mib = ram_below_4g() >> 20;
	uint64_t treach = ram_reach(TOUCH_BASE), tmax_mib = (treach - TOUCH_BASE) >> 20;
	if (tmib && (uint64_t)(uintptr_t)__image_end > TOUCH_BASE) {
		RESULT(name, "fail", " reason=touch-overlaps-image touch_mib=%lu image_end=0x%lx", tmib,
		       (uint64_t)(uintptr_t)__image_end);
		return EXIT_FAIL;
	}
	if (tmib > tmax_mib) {
		for (uint32_t i = 0; i < kit_boot.memmap_entries; i++)
			kit_printf("info migrate memmap addr=0x%lx size=0x%lx type=%u\n", kit_boot.memmap[i].addr,
				   kit_boot.memmap[i].size, kit_boot.memmap[i].type);
		RESULT(name, "fail", " reason=touch-too-large touch_mib=%lu ram_mib=%lu max_touch_mib=%lu base=0x%llx"
		       " memmap_entries=%u", tmib, ram_mib, tmax_mib, TOUCH_BASE, kit_boot.memmap_entries);
		return EXIT_FAIL;
	}

	memset(m, 0, sizeof(*m));
	m->seed = seed;
	m->io_status = -1;

	/* The first writable disk, if there is one. */
	int nd = disks_init();
	struct disk *d = NULL;
	for (int i = 0; i < nd && !d; i++) {
		if (disks[i].error) {
			RESULT(name, "fail", " reason=disk-init-failed disk=%d why=%s", i, disks[i].error);
			return EXIT_FAIL;
		}
		if (disks[i].ok && !disks[i].ro)
			d = &disks[i];
	}
	if (d) {
		m->nblocks = d->capacity / 8 < blocks ? d->capacity / 8 : blocks;
		if (!m->nblocks || engine_init(&m->e, d, 0, (unsigned int)qd, 4096) < 0 || m->e.nslots < qd) {
			RESULT(name, "fail", " reason=%s qd=%lu max_qd=%u blocks=%lu", !m->nblocks ? "disk-too-small" :
			       m->e.error ? m->e.error : "qd-too-large", qd, m->nblocks ? m->e.nslots : 0, m->nblocks);
			return EXIT_FAIL;
		}
		m->last_seq = dma_alloc(8 * m->nblocks, 64);
		m->lba_busy = dma_alloc(m->nblocks, 64);
		m->slot_seq = dma_alloc(8 * m->e.nslots, 64);
		m->slot_phase = dma_alloc(m->e.nslots, 64);
		if (!m->last_seq || !m->lba_busy || !m->slot_seq || !m->slot_phase) {
			RESULT(name, "fail", " reason=out-of-dma-memory blocks=%lu", m->nblocks);
			return EXIT_FAIL;
		}
	}

	/* net=1: the first virtio-net device, brought up as test=net does
	 * (before the pattern, which takes what is left of the pool). */
	if (cmdline_get_u64("net", 0)) {
		const char *nwhy = NULL;
		int r = migrate_net_up(&m->nif, &nwhy);
		if (r == -1) {
			RESULT(name, "fail", " reason=no-nic");
			return EXIT_FAIL;
		}
		if (r < 0) {
			RESULT(name, "fail", " reason=net-init-failed why=%s", nwhy);
			return EXIT_FAIL;
		}
	}

	char dname[8] = "none"; /* disk=N, or none */
	if (d) {
		dname[0] = (char)('0' + d->index);
		dname[1] = '\0';
	}

	/* The memory pattern, last: it gets what the disk left of the pool. */
	uint64_t bytes = mib << 20, k = seed * PATTERN_K;
	uint64_t *mem = bytes ? dma_alloc(bytes, 4096) : NULL;
	if (bytes && !mem) {
		RESULT(name, "fail", " reason=pattern-too-large pattern_mib=%lu free_kib=%lu", mib, dma_free_bytes() >> 10);
		return EXIT_FAIL;
	}
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < bytes / 8; i++)
		mem[i] = mig_mem_word(k, 8 * i);
	uint64_t fill_us = (rdtsc() - t0) * 1000000 / kit_tsc_hz();
	kit_printf("info migrate seed=%lu pattern=0x%lx+0x%lx fill-us=%lu disk=%s blocks=%lu qd=%u tick_ms=%lu ticks=%lu\n",
		   seed, (uint64_t)(uintptr_t)mem, bytes, fill_us, dname, m->nblocks, d ? m->e.nslots : 0, every * 10, ticks);

	/* The touched region, right after the pool pattern. */
	uint64_t *touch = (uint64_t *)(uintptr_t)TOUCH_BASE, twords = tmib << 17, kt = seed * TOUCH_K;
	if (tmib) {
		t0 = rdtsc();
		touch_fill(touch, twords, kt);
		uint64_t tfill_us = (rdtsc() - t0) * 1000000 / kit_tsc_hz();
		kit_printf("info migrate touch mib=%lu fill-us=%lu region=0x%lx+0x%lx ram_mib=%lu max_touch_mib=%lu\n",
			   tmib, tfill_us, (uint64_t)(uintptr_t)touch, tmib << 20, ram_mib, tmax_mib);
	}

	if (m->nif) {
		char ipb[16];
		kit_printf("READY-NET ip=%s\n", ip_str(m->nif->ip, ipb));
	}

	/* The loop. A line is due `every` timer ticks after the previous one
	 * (not on a fixed grid), so a burst of ticks yields one line, not many.
	 * With net=1 every pass also polls the NIC (without waiting). */
	uint64_t line_at = kit_ticks, line_tsc = rdtsc(), hz = kit_tsc_hz(), max_gap_us = 0;
	/* The longest time between two passes of this loop (a pass takes tens of
	 * microseconds): how long the guest did not run, a pause or a migration's
	 * downtime, without the tick interval that max_gap_us carries. Counted from
	 * the second line on; the time a line takes to print is not a stall. */
	uint64_t pass_tsc = line_tsc, max_stall = 0;
	m->seen_ticks = kit_ticks;
	while (m->tick < ticks) {
		uint64_t pass = rdtsc();
		if (m->tick > 1 && pass - pass_tsc > max_stall)
			max_stall = pass - pass_tsc;
		pass_tsc = pass;
		if (d) {
			mig_submit(m);
			vq_kick(m->e.q);
			if (mig_reap(m, &why) < 0)
				break;
			if (m->e.inflight && mig_stalled(m)) {
				why = (virtio_status(&d->vd) & VIRTIO_S_NEEDS_RESET) ? "device-needs-reset" : "timeout";
				break;
			}
		}
		if (mig_net_poll(m) < 0) {
			why = "net-failed";
			break;
		}
		if (kit_ticks - line_at >= every) {
			line_at = kit_ticks;
			m->tick++;
			kit_printf("MIGRATE tick=%lu ios=%lu\n", m->tick, m->ios);
			/* Informational: a pause the TSC saw (it may not: a VMM can restore it). */
			uint64_t now = rdtsc(), gap_ms = (now - line_tsc) * 1000 / hz;
			/* The longest time between two lines (after the first): a benchmark's downtime. */
			uint64_t gap_us = (now - line_tsc) / (hz / 1000000 ? hz / 1000000 : 1);
			if (m->tick > 1 && gap_us > max_gap_us)
				max_gap_us = gap_us;
			if (gap_us > gap_report_us)
				kit_printf("info migrate gap tick=%lu ms=%lu us=%lu\n", m->tick, gap_ms, gap_us);
			line_tsc = now;
			kit_poll_shutdown();
			pass_tsc = rdtsc();
		}
		cpu_relax();
	}
	uint64_t max_stall_us = max_stall / (hz / 1000000 ? hz / 1000000 : 1);

	/* The end: no I/O in flight, then every block and the whole pattern. */
	int64_t unwritten = 0;
	if (d && !why && mig_drain(m, &why) == 0)
		unwritten = mig_verify(m, &why);
	uint64_t mem_bad = mig_check_mem(m, mem, bytes, k);
	struct mig_bad tb = { 0 };
	uint64_t touch_bad = 0;
	if (tmib) {
		uint64_t t1 = rdtsc();
		touch_bad = touch_check(touch, twords, kt, &tb);
		kit_printf("info migrate touch mib=%lu check-us=%lu bad_words=%lu\n", tmib,
			   (rdtsc() - t1) * 1000000 / kit_tsc_hz(), touch_bad);
	}
	uint64_t net_rx = 0, net_echo = 0;
	if (m->nif) {
		struct netif *n = m->nif;
		struct netdev *nd = n->dev;
		net_rx = n->rx;
		net_echo = n->icmp_echo;
		kit_printf("info migrate net rx=%lu echo=%lu arp=%lu tx=%lu dropped=%lu rx_errors=%lu tx_drops=%lu"
			   " rx_merged=%lu ok=%d\n", n->rx, n->icmp_echo, n->arp_replies, n->tx, n->dropped, nd->rx_errors,
			   nd->tx_drops, nd->rx_merged, nd->ok);
	}
	if (why) {
		if (!strcmp(why, "net-failed"))
			RESULT(name, "fail", " reason=net-failed net_error=%s ticks=%lu ios=%lu net_rx=%lu net_echo=%lu"
			       " mismatches=%lu bad_words=%lu disk=%s", m->nif->dev->error ? m->nif->dev->error : "unknown",
			       m->tick, m->ios, net_rx, net_echo, m->mismatches, mem_bad, dname);
		else if (m->io_status >= 0)
			RESULT(name, "fail", " reason=%s ticks=%lu ios=%lu lba=%lu status_byte=%d mismatches=%lu bad_words=%lu"
			       " disk=%s", why, m->tick, m->ios, m->io_lba, m->io_status, m->mismatches, mem_bad, dname);
		else
			RESULT(name, "fail", " reason=%s ticks=%lu ios=%lu inflight=%u mismatches=%lu bad_words=%lu disk=%s",
			       why, m->tick, m->ios, m->e.inflight, m->mismatches, mem_bad, dname);
		return EXIT_FAIL;
	}
	if (m->mismatches || mem_bad) {
		struct mig_bad *b = &m->bad;
		if (!strcmp(b->what, "pattern-mismatch"))
			RESULT(name, "fail", " reason=%s ticks=%lu ios=%lu offset=0x%lx addr=0x%lx expected=0x%lx got=0x%lx"
			       " bad_words=%lu mismatches=%lu disk=%s", b->what, m->tick, m->ios, b->offset,
			       (uint64_t)(uintptr_t)mem + b->offset, b->want, b->got, mem_bad, m->mismatches, dname);
		else
			RESULT(name, "fail", " reason=%s ticks=%lu ios=%lu lba=%lu expected_seq=%lu got_seq=%lu got_lba=%lu"
			       " word=%lu at_tick=%lu mismatches=%lu bad_words=%lu disk=%s", b->what, m->tick, m->ios, b->lba,
			       b->want_seq, b->got_seq, b->got_lba, b->word, b->tick, m->mismatches, mem_bad, dname);
		return EXIT_FAIL;
	}
	if (touch_bad) {
		RESULT(name, "fail", " reason=%s ticks=%lu ios=%lu addr=0x%lx expected=0x%lx got=0x%lx bad_words=%lu"
		       " touch_mib=%lu mismatches=0 disk=%s", tb.what, m->tick, m->ios, tb.offset, tb.want, tb.got,
		       touch_bad, tmib, dname);
		return EXIT_FAIL;
	}
	RESULT(name, "pass", " ticks=%lu ios=%lu writes=%lu reads=%lu laps=%lu mismatches=0 blocks=%lu unwritten=%ld"
	       " qd=%u pattern_mib=%lu touch_mib=%lu seed=%lu disk=%s max_gap_us=%lu max_stall_us=%lu net_rx=%lu"
	       " net_echo=%lu", m->tick, m->ios, m->writes, m->reads, m->laps, m->nblocks, unwritten, d ? m->e.nslots : 0, mib,
	       tmib, seed, dname, max_gap_us, max_stall_us, net_rx, net_echo);
	return (int)(cmdline_get_u64("exit", 0) & 0xff);
}

/* virtio.c - modern virtio-pci transport (virtio 1.2 §4.1) and split
 * virtqueues (§2.7) in ring 3. MMIO to the common/notify/device regions
 * goes straight to the BARs (the kit maps 0-4 GiB with user pages). */
#include "kit.h"
#include "virtio.h"

volatile uint64_t kit_virtio_irqs, kit_virtio_config_irqs; /* isr.S counts */

/* ---- DMA pool ---- */
extern uint8_t kit_dma_pool[], kit_dma_pool_end[];
static uint64_t dma_used;

void *dma_alloc(uint64_t size, uint64_t align)
{
	uint64_t base = (uint64_t)(uintptr_t)kit_dma_pool, cap = (uint64_t)(kit_dma_pool_end - kit_dma_pool);
	uint64_t a = (base + dma_used + align - 1) & ~(align - 1);
	if (a - base > cap || size > cap - (a - base))
		return NULL;
	dma_used = a - base + size;
	memset((void *)(uintptr_t)a, 0, size);
	return (void *)(uintptr_t)a;
}

uint64_t dma_mark(void) { return dma_used; }
void dma_release(uint64_t mark) { dma_used = mark; }
uint64_t dma_free_bytes(void) { return (uint64_t)(kit_dma_pool_end - kit_dma_pool) - dma_used; }

/* ---- transport ---- */

static void set_status(struct virtio_dev *d, uint8_t bits)
{
	mmio_write8(d->common + CC_STATUS, mmio_read8(d->common + CC_STATUS) | bits);
}

uint8_t virtio_status(struct virtio_dev *d)
{
	return mmio_read8(d->common + CC_STATUS);
}

void virtio_fail(struct virtio_dev *d)
{
	if (d->common)
		set_status(d, VIRTIO_S_FAILED);
}

static int fail(struct virtio_dev *d, const char *why)
{
	d->error = why;
	virtio_fail(d);
	return -1;
}

/* Walk the vendor capabilities; the first of each type wins (§4.1.4). */
static int find_caps(struct virtio_dev *d, struct pci_func *f)
{
	for (int i = pci_find_cap(f, PCI_CAP_VENDOR, 0); i >= 0; i = pci_find_cap(f, PCI_CAP_VENDOR, i + 1)) {
		uint8_t c = f->cap_off[i];
		uint32_t w0 = pci_read32(f, c);
		uint8_t cap_len = (uint8_t)(w0 >> 16), type = (uint8_t)(w0 >> 24);
		uint8_t bar = pci_read8(f, c + 4);
		uint32_t off = pci_read32(f, c + 8), len = pci_read32(f, c + 12);
		if (cap_len < 16)
			continue;
		volatile uint8_t *p = pci_bar_ptr(f, bar, off, len);
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON:
			if (!d->common && p && len >= CC_LEN)
				d->common = p;
			break;
		case VIRTIO_PCI_CAP_NOTIFY:
			if (!d->notify_base && p && cap_len >= 20) {
				d->notify_base = p;
				d->notify_len = len;
				d->notify_mult = pci_read32(f, c + 16);
			}
			break;
		case VIRTIO_PCI_CAP_ISR:
			if (!d->isr && p && len >= 1)
				d->isr = p;
			break;
		case VIRTIO_PCI_CAP_DEVICE:
			if (!d->devcfg && p) {
				d->devcfg = p;
				d->devcfg_len = len;
			}
			break;
		default:
			break;
		}
	}
	if (!d->common)
		return fail(d, "no-common-cfg");
	if (!d->notify_base)
		return fail(d, "no-notify-cfg");
	if (!d->isr)
		return fail(d, "no-isr-cfg");
	return 0;
}

static void msix_entry(struct virtio_dev *d, unsigned int entry, uint8_t vector)
{
	volatile uint8_t *e = (volatile uint8_t *)(d->msix_table + 4 * entry);
	mmio_write32(e + 12, 1); /* masked while we write it */
	mmio_write32(e + 0, MSI_ADDR_BASE | (0u << 12)); /* APIC id 0 in bits 19:12 */
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector); /* fixed, edge */
	mmio_write32(e + 12, 0);
}

static int setup_msix(struct virtio_dev *d, struct pci_func *f)
{
	int i = pci_find_cap(f, PCI_CAP_MSIX, 0);
	if (i < 0)
		return fail(d, "no-msix-cap");
	uint8_t c = f->cap_off[i];
	uint16_t ctrl = pci_read16(f, c + MSIX_CTRL);
	uint32_t tbl = pci_read32(f, c + MSIX_TABLE);
	d->msix_cap = c;
	d->msix_table_size = (ctrl & 0x7ff) + 1;
	d->msix_table = (volatile uint32_t *)pci_bar_ptr(f, tbl & 7, tbl & ~7u, 16u * d->msix_table_size);
	if (!d->msix_table)
		return fail(d, "msix-table-not-mapped");
	/* Enable with the function masked, program, then unmask. */
	pci_write16(f, c + MSIX_CTRL, (ctrl & ~0x7ff) | MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK);
	msix_entry(d, 0, VEC_VIRTIO_QUEUE);
	d->config_vector = d->msix_table_size >= 2 ? 1 : 0;
	if (d->config_vector)
		msix_entry(d, 1, VEC_VIRTIO_CONFIG);
	pci_write16(f, c + MSIX_CTRL, (ctrl & ~0x7ff & ~MSIX_CTRL_FMASK) | MSIX_CTRL_ENABLE);
	return 0;
}

int virtio_init(struct virtio_dev *d, struct pci_func *f, uint64_t wanted)
{
	memset(d, 0, sizeof(*d));
	d->pci = f;
	pci_enable(f);
	if (find_caps(d, f) < 0)
		return -1;

	/* Reset and wait for it to take (§4.1.4.3.2). */
	mmio_write8(d->common + CC_STATUS, 0);
	for (int i = 0; mmio_read8(d->common + CC_STATUS) != 0; i++)
		if (i > 100000)
			return fail(d, "reset-timeout");
	set_status(d, VIRTIO_S_ACKNOWLEDGE);
	set_status(d, VIRTIO_S_DRIVER);

	mmio_write32(d->common + CC_DFSELECT, 0);
	uint64_t lo = mmio_read32(d->common + CC_DF);
	mmio_write32(d->common + CC_DFSELECT, 1);
	uint64_t hi = mmio_read32(d->common + CC_DF);
	d->dev_features = lo | hi << 32;
	if (!((d->dev_features >> VIRTIO_F_VERSION_1) & 1))
		return fail(d, "no-version-1");
	d->features = d->dev_features & (wanted | 1ull << VIRTIO_F_VERSION_1);
	mmio_write32(d->common + CC_GFSELECT, 0);
	mmio_write32(d->common + CC_GF, (uint32_t)d->features);
	mmio_write32(d->common + CC_GFSELECT, 1);
	mmio_write32(d->common + CC_GF, (uint32_t)(d->features >> 32));
	set_status(d, VIRTIO_S_FEATURES_OK);
	if (!(virtio_status(d) & VIRTIO_S_FEATURES_OK))
		return fail(d, "features-not-ok");

	if (setup_msix(d, f) < 0)
		return -1;
	mmio_write16(d->common + CC_MSIX, d->config_vector);
	if (mmio_read16(d->common + CC_MSIX) == VIRTIO_MSI_NO_VECTOR)
		return fail(d, "config-msix-vector-rejected");
	return 0;
}

int virtio_setup_queue(struct virtio_dev *d, struct virtq *q, uint16_t index, uint16_t max_size)
{
	return virtio_setup_queue_entry(d, q, index, max_size, 0);
}

/* MSI-X table entry 1 is the configuration vector (setup_msix), so a queue with
 * its own entry takes 0 or one from 2 up; each is routed to VEC_VIRTIO_QUEUE. */
int virtio_setup_queue_entry(struct virtio_dev *d, struct virtq *q, uint16_t index, uint16_t max_size,
			     uint16_t entry)
{
	memset(q, 0, sizeof(*q));
	if (entry >= d->msix_table_size || (entry == 1 && d->config_vector == 1))
		return fail(d, "no-msix-entry-for-queue");
	if (entry)
		msix_entry(d, entry, VEC_VIRTIO_QUEUE);
	q->msix_entry = entry;
	if (index >= mmio_read16(d->common + CC_NUMQ))
		return fail(d, "no-such-queue");
	mmio_write16(d->common + CC_Q_SELECT, index);
	uint16_t dev_size = mmio_read16(d->common + CC_Q_SIZE);
	if (dev_size == 0)
		return fail(d, "queue-size-0");
	uint16_t size = 1;
	while ((uint32_t)size * 2 <= dev_size && (uint32_t)size * 2 <= max_size)
		size *= 2;
	q->size = size;
	q->index = index;
	q->event_idx = virtio_has(d, VIRTIO_F_EVENT_IDX);

	/* Alignment: desc 16, avail 2, used 4 (§2.7); use pages anyway. */
	q->desc = dma_alloc(16ull * size, 4096);
	q->avail = dma_alloc(6 + 2ull * size, 4096);
	q->used = dma_alloc(6 + 8ull * size, 4096);
	if (!q->desc || !q->avail || !q->used)
		return fail(d, "out-of-dma-memory");
	q->used_event = &q->avail->ring[size];
	q->avail_event = (volatile uint16_t *)&q->used->ring[size];

	mmio_write16(d->common + CC_Q_SIZE, size);
	uint64_t a;
	a = (uint64_t)(uintptr_t)q->desc;
	mmio_write32(d->common + CC_Q_DESCLO, (uint32_t)a);
	mmio_write32(d->common + CC_Q_DESCHI, (uint32_t)(a >> 32));
	a = (uint64_t)(uintptr_t)q->avail;
	mmio_write32(d->common + CC_Q_AVAILLO, (uint32_t)a);
	mmio_write32(d->common + CC_Q_AVAILHI, (uint32_t)(a >> 32));
	a = (uint64_t)(uintptr_t)q->used;
	mmio_write32(d->common + CC_Q_USEDLO, (uint32_t)a);
	mmio_write32(d->common + CC_Q_USEDHI, (uint32_t)(a >> 32));

	mmio_write16(d->common + CC_Q_MSIX, entry);
	if (mmio_read16(d->common + CC_Q_MSIX) == VIRTIO_MSI_NO_VECTOR)
		return fail(d, "queue-msix-vector-rejected");

	uint32_t noff = mmio_read16(d->common + CC_Q_NOFF);
	uint64_t at = (uint64_t)noff * d->notify_mult;
	if (at + 2 > d->notify_len)
		return fail(d, "notify-off-out-of-range");
	q->notify = (volatile uint16_t *)(d->notify_base + at);
	mmio_write16(d->common + CC_Q_ENABLE, 1);
	return 0;
}

int virtio_driver_ok(struct virtio_dev *d)
{
	set_status(d, VIRTIO_S_DRIVER_OK);
	uint8_t s = virtio_status(d);
	if (s & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED) || !(s & VIRTIO_S_DRIVER_OK))
		return fail(d, "driver-ok-rejected");
	return 0;
}

uint8_t virtio_config_generation(struct virtio_dev *d)
{
	return mmio_read8(d->common + CC_CFGGEN);
}

static int cfg_ok(struct virtio_dev *d, uint32_t off, uint32_t len)
{
	return d->devcfg && off <= d->devcfg_len && len <= d->devcfg_len - off;
}

uint8_t virtio_cfg8(struct virtio_dev *d, uint32_t off)
{
	return cfg_ok(d, off, 1) ? mmio_read8(d->devcfg + off) : 0;
}

uint16_t virtio_cfg16(struct virtio_dev *d, uint32_t off)
{
	return cfg_ok(d, off, 2) ? mmio_read16(d->devcfg + off) : 0;
}

uint32_t virtio_cfg32(struct virtio_dev *d, uint32_t off)
{
	return cfg_ok(d, off, 4) ? mmio_read32(d->devcfg + off) : 0;
}

uint64_t virtio_cfg64(struct virtio_dev *d, uint32_t off)
{
	return virtio_cfg32(d, off) | (uint64_t)virtio_cfg32(d, off + 4) << 32;
}

/* ---- split ring ---- */

void vq_add(struct virtq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx % q->size] = head;
	q->avail_idx++;
}

/* §2.7.10: with EVENT_IDX, notify iff avail_event lies in (old, new]. */
static int need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int vq_kick(struct virtq *q)
{
	uint16_t old = q->kicked_idx, new_idx = q->avail_idx;
	if (old == new_idx)
		return 0;
	barrier(); /* descriptors and ring entries before idx (x86: stores in order) */
	q->avail->idx = new_idx;
	q->kicked_idx = new_idx;
	q->kicks++;
	mb(); /* idx store before the avail_event / flags load */
	int notify = q->event_idx ? need_event(*q->avail_event, new_idx, old)
				  : !(q->used->flags & VIRTQ_USED_F_NO_NOTIFY);
	if (notify) {
		*q->notify = q->index;
		q->notifies++;
	}
	return notify;
}

void vq_set_poll(struct virtq *q, int poll)
{
	q->poll = poll;
	if (q->event_idx) {
		/* far away from anything the device will reach soon */
		*q->used_event = poll ? (uint16_t)(q->last_used + 0x8000) : q->last_used;
	} else {
		q->avail->flags = poll ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0;
	}
	mb();
}

int vq_get_used(struct virtq *q, uint32_t *id, uint32_t *len)
{
	if (q->used->idx == q->last_used)
		return 0;
	barrier(); /* idx before the element (x86: loads in order) */
	volatile struct virtq_used_elem *e = &q->used->ring[q->last_used % q->size];
	*id = e->id;
	*len = e->len;
	q->last_used++;
	/* Ask for an interrupt at the next completion (or keep it far away). */
	if (q->event_idx)
		*q->used_event = q->poll ? (uint16_t)(q->last_used + 0x8000) : q->last_used;
	return 1;
}

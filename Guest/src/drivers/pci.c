/* pci.c - PCI configuration mechanism 1 from ring 3 and a bus-0 scan.
 * Every config access is two port exits (0xCF8 then 0xCFC), so the scan
 * reads only what it needs. BARs that are unassigned (0) or outside the
 * kit's identity map (>= 4 GiB) get an address from PCI_ALLOC_BASE up,
 * aligned to their size and clear of every BAR the firmware placed. */
#include "kit.h"
#include "pci.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc
#define PCI_ALLOC_BASE  0xc0000000ull
#define PCI_ALLOC_LIMIT 0xfec00000ull /* IOAPIC/LAPIC/firmware above */

/* From the DMA pool (cleared in ring 3), not .bss (cleared in slow ring 0). */
static struct pci_func *funcs;
static int nfuncs = -1;

static uint32_t cfg_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
	return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xfc);
}

static uint32_t cfg_read(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
	outl(PCI_ADDR, cfg_addr(bus, dev, fn, off));
	return inl(PCI_DATA);
}

static void cfg_write(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint32_t v)
{
	outl(PCI_ADDR, cfg_addr(bus, dev, fn, off));
	outl(PCI_DATA, v);
}

uint32_t pci_read32(const struct pci_func *f, uint8_t off)
{
	return cfg_read(f->bus, f->dev, f->fn, off);
}

void pci_write32(const struct pci_func *f, uint8_t off, uint32_t v)
{
	cfg_write(f->bus, f->dev, f->fn, off, v);
}

uint16_t pci_read16(const struct pci_func *f, uint8_t off)
{
	return (uint16_t)(pci_read32(f, off) >> ((off & 2) * 8));
}

uint8_t pci_read8(const struct pci_func *f, uint8_t off)
{
	return (uint8_t)(pci_read32(f, off) >> ((off & 3) * 8));
}

void pci_write16(const struct pci_func *f, uint8_t off, uint16_t v)
{
	uint32_t d = pci_read32(f, off);
	unsigned int sh = (off & 2) * 8;
	d = (d & ~(0xffffu << sh)) | (uint32_t)v << sh;
	if (off == 0x04)
		d &= 0xffffu; /* the status half is RW1C: write zeros there */
	pci_write32(f, off, d);
}

/* ---- BAR sizing and placement ---- */

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Lowest size-aligned address >= PCI_ALLOC_BASE that overlaps no BAR
 * already placed (below 4 GiB) and nothing the kit handed out. */
static uint64_t alloc_next = PCI_ALLOC_BASE;

static uint64_t bar_alloc(uint64_t size)
{
	uint64_t a = (alloc_next + size - 1) & ~(size - 1);
	for (int tries = 0; tries < 256 && a + size <= PCI_ALLOC_LIMIT; tries++) {
		int clash = 0;
		for (int i = 0; i < nfuncs && !clash; i++)
			for (int b = 0; b < 6; b++) {
				const struct pci_bar *pb = &funcs[i].bar[b];
				if (pb->size && !pb->is_io && pb->base && pb->base < (1ull << 32) &&
				    overlaps(a, size, pb->base, pb->size)) {
					a = (pb->base + pb->size + size - 1) & ~(size - 1);
					clash = 1;
					break;
				}
			}
		if (!clash) {
			alloc_next = a + size;
			return a;
		}
	}
	return 0;
}

/* Size every BAR with decoding off, then restore the command register. */
static void size_bars(struct pci_func *f, unsigned int nbars)
{
	uint32_t cmd = pci_read32(f, 0x04) & 0xffff;
	pci_write32(f, 0x04, cmd & ~(uint32_t)(PCI_CMD_IO | PCI_CMD_MEM));

	for (unsigned int i = 0; i < nbars; i++) {
		uint8_t off = (uint8_t)(0x10 + 4 * i);
		uint32_t orig = pci_read32(f, off);
		struct pci_bar *b = &f->bar[i];

		pci_write32(f, off, 0xffffffffu);
		uint32_t lo = pci_read32(f, off);
		pci_write32(f, off, orig);
		if (lo == 0 || lo == 0xffffffffu)
			continue; /* not implemented */
		if (orig & 1) {
			b->is_io = 1;
			b->base = orig & ~3u;
			uint32_t mask = lo & ~3u;
			mask |= 0xffff0000u; /* upper bits may read 0 on 16-bit decoders */
			b->size = (uint32_t)(~mask + 1);
			continue;
		}
		b->prefetch = (orig >> 3) & 1;
		uint64_t mask = lo & ~0xfull, base = orig & ~0xfull;
		if (((orig >> 1) & 3) == 2 && i + 1 < nbars) {
			uint32_t orig_hi = pci_read32(f, off + 4);
			pci_write32(f, off + 4, 0xffffffffu);
			uint32_t hi = pci_read32(f, off + 4);
			pci_write32(f, off + 4, orig_hi);
			b->is_64 = 1;
			mask |= (uint64_t)hi << 32;
			base |= (uint64_t)orig_hi << 32;
			i++; /* the upper half is not a BAR of its own */
		} else {
			mask |= 0xffffffff00000000ull;
		}
		b->size = ~mask + 1;
		b->base = base;
	}
	pci_write32(f, 0x04, cmd);
}

static void place_bars(struct pci_func *f, int force)
{
	uint32_t cmd = pci_read32(f, 0x04) & 0xffff;
	int changed = 0;

	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *b = &f->bar[i];
		if (!b->size || b->is_io)
			continue;
		if (!force && b->base && b->base + b->size <= (1ull << 32))
			continue;
		if (b->size > (1ull << 30))
			continue; /* too big for our hole; leave it */
		uint64_t a = bar_alloc(b->size < 4096 ? 4096 : b->size);
		if (!a)
			continue;
		if (!changed)
			pci_write32(f, 0x04, cmd & ~(uint32_t)PCI_CMD_MEM);
		changed = 1;
		uint8_t off = (uint8_t)(0x10 + 4 * i);
		uint32_t low_bits = pci_read32(f, off) & 0xf;
		pci_write32(f, off, (uint32_t)a | low_bits);
		if (b->is_64)
			pci_write32(f, off + 4, (uint32_t)(a >> 32));
		b->base = a;
		b->assigned = 1;
	}
	if (changed)
		pci_write32(f, 0x04, cmd);
}

static void walk_caps(struct pci_func *f)
{
	if (!(pci_read16(f, 0x06) & (1u << 4)))
		return;
	uint8_t p = pci_read8(f, 0x34) & 0xfc;
	for (int guard = 0; p >= 0x40 && guard < 48 && f->ncaps < PCI_MAX_CAPS; guard++) {
		uint32_t d = pci_read32(f, p);
		f->cap_id[f->ncaps] = (uint8_t)d;
		f->cap_off[f->ncaps] = p;
		f->ncaps++;
		p = (uint8_t)(d >> 8) & 0xfc;
	}
}

int pci_scan(struct pci_func **out)
{
	if (nfuncs >= 0) {
		*out = funcs;
		return nfuncs;
	}
	funcs = dma_alloc(sizeof(*funcs) * PCI_MAX_FUNCS, 64);
	*out = funcs;
	nfuncs = 0;
	if (!funcs)
		return 0;
	for (uint8_t dev = 0; dev < 32; dev++) {
		for (uint8_t fn = 0; fn < 8; fn++) {
			uint32_t id = cfg_read(0, dev, fn, 0x00);
			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) { /* 0: nothing decodes 0xcf8 */
				if (fn == 0)
					break;
				continue;
			}
			if (nfuncs == PCI_MAX_FUNCS)
				goto done;
			struct pci_func *f = &funcs[nfuncs++];
			memset(f, 0, sizeof(*f));
			f->bus = 0, f->dev = dev, f->fn = fn;
			f->vendor = (uint16_t)id;
			f->device = (uint16_t)(id >> 16);
			uint32_t cls = cfg_read(0, dev, fn, 0x08);
			f->revision = (uint8_t)cls;
			f->prog_if = (uint8_t)(cls >> 8);
			f->subclass = (uint8_t)(cls >> 16);
			f->class_code = (uint8_t)(cls >> 24);
			uint8_t ht = (uint8_t)(cfg_read(0, dev, fn, 0x0c) >> 16);
			f->header_type = ht & 0x7f;
			size_bars(f, f->header_type == 0 ? 6 : f->header_type == 1 ? 2 : 0);
			walk_caps(f);
			if (fn == 0 && !(ht & 0x80))
				break; /* single-function device */
		}
	}
done:;
	/* Placement after the whole scan, so the allocator knows every BAR
	 * the firmware already placed. pci_assign=all moves every memory BAR
	 * (to exercise this path where firmware has assigned them). */
	const char *as = cmdline_get("pci_assign");
	int force = as && strcmp(as, "all") == 0;
	for (int i = 0; i < nfuncs; i++)
		place_bars(&funcs[i], force);

	for (int i = 0; i < nfuncs; i++) {
		struct pci_func *f = &funcs[i];
		kit_printf("info pci %02x:%02x.%x id=%04x:%04x class=%02x%02x%02x hdr=%u", f->bus, f->dev, f->fn,
			   f->vendor, f->device, f->class_code, f->subclass, f->prog_if, f->header_type);
		for (int b = 0; b < 6; b++)
			if (f->bar[b].size)
				kit_printf(" bar%d=%s0x%lx+0x%lx%s", b, f->bar[b].is_io ? "io:" : f->bar[b].is_64 ? "m64:" : "m32:",
					   f->bar[b].base, f->bar[b].size, f->bar[b].assigned ? "(kit)" : "");
		if (f->ncaps) {
			kit_printf(" caps=");
			for (int c = 0; c < f->ncaps; c++)
				kit_printf("%s%02x@%02x", c ? "," : "", f->cap_id[c], f->cap_off[c]);
		}
		kit_putc('\n');
	}
	return nfuncs;
}

int pci_find_cap(const struct pci_func *f, uint8_t id, int start)
{
	for (int i = start; i < f->ncaps; i++)
		if (f->cap_id[i] == id)
			return i;
	return -1;
}

void pci_enable(const struct pci_func *f)
{
	uint32_t cmd = pci_read32(f, 0x04) & 0xffff;
	pci_write32(f, 0x04, cmd | PCI_CMD_MEM | PCI_CMD_MASTER);
}

volatile uint8_t *pci_bar_ptr(const struct pci_func *f, unsigned int bar, uint64_t off, uint64_t len)
{
	if (bar >= 6)
		return NULL;
	const struct pci_bar *b = &f->bar[bar];
	if (!b->size || b->is_io || !b->base || off > b->size || len > b->size - off ||
	    b->base + off + len > (1ull << 32))
		return NULL;
	return (volatile uint8_t *)(uintptr_t)(b->base + off);
}

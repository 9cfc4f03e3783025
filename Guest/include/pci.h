/* pci.h - PCI configuration mechanism 1 (ports 0xCF8/0xCFC), bus 0 scan,
 * BAR sizing/assignment and capability walk. Ring 3 (TSS I/O bitmap). */
#ifndef KIT_PCI_H
#define KIT_PCI_H

#include <stdint.h>

#define PCI_MAX_FUNCS 64
#define PCI_MAX_CAPS  16

#define PCI_CMD_IO     0x1
#define PCI_CMD_MEM    0x2
#define PCI_CMD_MASTER 0x4

#define PCI_CAP_MSIX   0x11
#define PCI_CAP_VENDOR 0x09

struct pci_bar {
	uint64_t base;   /* bus (= physical) address; 0 if unused */
	uint64_t size;   /* 0 if the BAR is not implemented */
	uint8_t is_io;
	uint8_t is_64;   /* memory BAR using this and the next slot */
	uint8_t prefetch;
	uint8_t assigned; /* the kit placed it (was 0 or above 4 GiB) */
};

struct pci_func {
	uint8_t bus, dev, fn;
	uint8_t header_type;    /* without the multi-function bit */
	uint16_t vendor, device;
	uint8_t class_code, subclass, prog_if, revision;
	uint8_t ncaps;
	uint8_t cap_id[PCI_MAX_CAPS];
	uint8_t cap_off[PCI_MAX_CAPS];
	struct pci_bar bar[6];
};

uint32_t pci_read32(const struct pci_func *f, uint8_t off);
void pci_write32(const struct pci_func *f, uint8_t off, uint32_t v);
uint16_t pci_read16(const struct pci_func *f, uint8_t off);
uint8_t pci_read8(const struct pci_func *f, uint8_t off);
/* Sub-dword writes are read-modify-write of the containing dword. */
void pci_write16(const struct pci_func *f, uint8_t off, uint16_t v);

/* Scan bus 0 (once; later calls return the cached table). Prints one
 * `info pci ...` line per function unless quiet. */
int pci_scan(struct pci_func **out);
/* First capability with this id at or after index *iter; -1 when none. */
int pci_find_cap(const struct pci_func *f, uint8_t id, int start);
/* command |= memory space | bus master */
void pci_enable(const struct pci_func *f);
/* A memory BAR's base as a pointer (identity map: 0-4 GiB only). */
volatile uint8_t *pci_bar_ptr(const struct pci_func *f, unsigned int bar, uint64_t off, uint64_t len);

#endif

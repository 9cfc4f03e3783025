/* virtio.h - modern virtio-pci transport (virtio 1.2 §4.1) and split
 * virtqueues (§2.7), driven from ring 3. Physical = virtual (identity map). */
#ifndef KIT_VIRTIO_H
#define KIT_VIRTIO_H

#include <stdint.h>
#include "pci.h"

#define VIRTIO_PCI_VENDOR 0x1af4

/* device status (§2.1) */
#define VIRTIO_S_ACKNOWLEDGE 1
#define VIRTIO_S_DRIVER      2
#define VIRTIO_S_DRIVER_OK   4
#define VIRTIO_S_FEATURES_OK 8
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED      0x80

/* transport / ring feature bits (§6) */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* vendor capability cfg_type (§4.1.4) */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* split ring (§2.7) */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* [size], then avail_event */
};

struct virtq {
	uint16_t size;
	uint16_t index;               /* queue number */
	struct virtq_desc *desc;
	volatile struct virtq_avail *avail;
	volatile struct virtq_used *used;
	volatile uint16_t *used_event;  /* &avail->ring[size] */
	volatile uint16_t *avail_event; /* (u16 *)&used->ring[size] */
	uint16_t avail_idx;           /* next free avail slot (private) */
	uint16_t kicked_idx;          /* avail idx at the last publish */
	uint16_t last_used;
	int event_idx;
	int poll;                     /* suppress interrupts */
	volatile uint16_t *notify;
	uint64_t notifies, kicks;
	uint16_t msix_entry;          /* its MSI-X table entry */
};

struct virtio_dev {
	struct pci_func *pci;
	volatile uint8_t *common;
	volatile uint8_t *notify_base;
	uint32_t notify_mult;
	uint32_t notify_len;
	volatile uint8_t *isr;
	volatile uint8_t *devcfg;
	uint32_t devcfg_len;
	int msix_cap;                 /* config-space offset, or 0 */
	uint16_t msix_table_size;
	volatile uint32_t *msix_table;
	uint16_t config_vector;       /* MSI-X table entry used for config changes */
	uint64_t dev_features, features;
	const char *error;            /* why init failed */
};

/* Interrupt vectors and counters (isr.S). */
extern volatile uint64_t kit_virtio_irqs;        /* VEC_VIRTIO_QUEUE */
extern volatile uint64_t kit_virtio_config_irqs; /* VEC_VIRTIO_CONFIG */

static inline int virtio_has(const struct virtio_dev *d, unsigned int bit)
{
	return (d->features >> bit) & 1;
}

/* Find the capabilities, reset, negotiate `wanted` (VERSION_1 is
 * required), set up MSI-X. Leaves the device before DRIVER_OK.
 * 0 on success, -1 with d->error set. */
int virtio_init(struct virtio_dev *d, struct pci_func *f, uint64_t wanted);
/* Allocate rings (from the DMA pool), program queue `index` with at most
 * max_size entries and MSI-X table entry 0. */
int virtio_setup_queue(struct virtio_dev *d, struct virtq *q, uint16_t index, uint16_t max_size);
/* The same, with the queue's interrupts on MSI-X table entry `entry` (0, or 2 and up). */
int virtio_setup_queue_entry(struct virtio_dev *d, struct virtq *q, uint16_t index, uint16_t max_size,
			     uint16_t entry);
int virtio_driver_ok(struct virtio_dev *d);
void virtio_fail(struct virtio_dev *d);
uint8_t virtio_status(struct virtio_dev *d);
/* Device config with field-width accesses (§4.1.3.1); off/len checked
 * against the capability (out of range reads 0). Wrap a group of reads in
 * a loop on virtio_config_generation() for a consistent snapshot. */
uint8_t virtio_config_generation(struct virtio_dev *d);
uint8_t virtio_cfg8(struct virtio_dev *d, uint32_t off);
uint16_t virtio_cfg16(struct virtio_dev *d, uint32_t off);
uint32_t virtio_cfg32(struct virtio_dev *d, uint32_t off);
uint64_t virtio_cfg64(struct virtio_dev *d, uint32_t off);

/* Ring operations. */
void vq_add(struct virtq *q, uint16_t head);        /* queue a chain, not yet visible */
int vq_kick(struct virtq *q);                       /* publish + notify if needed; 1 if notified */
int vq_get_used(struct virtq *q, uint32_t *id, uint32_t *len); /* 1 if an element was taken */
void vq_set_poll(struct virtq *q, int poll);         /* interrupts off (1) / on (0) */

/* struct virtio_pci_common_cfg offsets (§4.1.4.3) */
#define CC_DFSELECT   0x00
#define CC_DF         0x04
#define CC_GFSELECT   0x08
#define CC_GF         0x0c
#define CC_MSIX       0x10
#define CC_NUMQ       0x12
#define CC_STATUS     0x14
#define CC_CFGGEN     0x15
#define CC_Q_SELECT   0x16
#define CC_Q_SIZE     0x18
#define CC_Q_MSIX     0x1a
#define CC_Q_ENABLE   0x1c
#define CC_Q_NOFF     0x1e
#define CC_Q_DESCLO   0x20
#define CC_Q_DESCHI   0x24
#define CC_Q_AVAILLO  0x28
#define CC_Q_AVAILHI  0x2c
#define CC_Q_USEDLO   0x30
#define CC_Q_USEDHI   0x34
#define CC_LEN        0x38

/* MSI-X capability (PCI) */
#define MSIX_CTRL        2
#define MSIX_TABLE       4
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK  0x4000
#define MSI_ADDR_BASE    0xfee00000u /* x2APIC physical destination 0 */

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

static inline uint8_t mmio_read8(volatile uint8_t *p) { return *p; }
static inline uint16_t mmio_read16(volatile uint8_t *p) { return *(volatile uint16_t *)p; }
static inline uint32_t mmio_read32(volatile uint8_t *p) { return *(volatile uint32_t *)p; }
static inline void mmio_write8(volatile uint8_t *p, uint8_t v) { *p = v; }
static inline void mmio_write16(volatile uint8_t *p, uint16_t v) { *(volatile uint16_t *)p = v; }
static inline void mmio_write32(volatile uint8_t *p, uint32_t v) { *(volatile uint32_t *)p = v; }

#endif

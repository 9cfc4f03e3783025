/* kit.h - shared declarations of the swift-vmd guest kit.
 * Layout constants here must match the .S files (selectors, vectors). */
#ifndef KIT_H
#define KIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "x86.h"

/* ---- GDT selectors (see desc.c; entry64.S uses the raw numbers) ---- */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA (0x18 | 3)
#define SEL_UCODE (0x20 | 3)
#define SEL_TSS   0x28

/* ---- interrupt vectors ---- */
#define VEC_TIMER    32   /* LAPIC timer */
#define VEC_SPURIOUS 0xff /* LAPIC spurious vector (no EOI) */
#define VEC_VIRTIO_QUEUE  0x40 /* MSI-X table entry 0 of every virtio device */
#define VEC_VIRTIO_CONFIG 0x41 /* MSI-X table entry 1 (config change), if present */

/* Ring-3 -> ring-0 services: kit_service(n) executes ud2 at a known
 * address and the #UD handler dispatches on EAX. Under PVM, `int n` from
 * ring 3 comes back as #UD and `syscall` reaches LSTAR still at CPL 3,
 * while exceptions reliably enter ring 0 through the IDT and TSS. */
#define SERVICE_HALT         0 /* cli; hlt forever */
#define SERVICE_TRIPLE_FAULT 1 /* empty IDT + ud2 -> shutdown */

/* ---- exit codes written to the debug-exit port ---- */
#define EXIT_FAIL         1
#define EXIT_UNKNOWN_TEST 2
#define EXIT_EXCEPTION    3

/* ---- Xen PVH start info (xen/include/public/arch-x86/hvm/start_info.h) ---- */
#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;   /* version >= 1 */
	uint32_t memmap_entries; /* version >= 1 */
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 = RAM (e820 numbering) */
	uint32_t reserved;
};

enum entry_kind { ENTRY_PVH = 0, ENTRY_ELF64 = 1 };

/* Facts gathered by ring 0 at boot, read by tests in ring 3. */
#define KIT_CMDLINE_MAX 1024
#define KIT_MEMMAP_MAX  64
struct boot_info {
	enum entry_kind entry;
	int start_info_ok;       /* magic matched */
	uint32_t start_info_version;
	uint64_t rsdp_paddr;
	char cmdline[KIT_CMDLINE_MAX];
	uint32_t memmap_entries;
	struct hvm_memmap_entry memmap[KIT_MEMMAP_MAX];
	uint64_t tsc_main;       /* rdtsc at kit_main entry */
	uint64_t tsc_user;       /* rdtsc at user_main entry (ring 3) */
};
extern struct boot_info kit_boot;

static inline const char *entry_name(enum entry_kind e)
{
	return e == ENTRY_PVH ? "pvh" : "elf64";
}

/* ---- console.c: COM1, polled ---- */
void console_init(void);
void kit_putc(char c);
void kit_puts(const char *s);
void kit_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kit_vprintf(const char *fmt, va_list ap);

/* ---- exit.c ---- */
void kit_exit(unsigned int code) __attribute__((noreturn));

/* control.c: the VMM control port (shutdown requests) */
int kit_shutdown_requested(void);
void kit_poll_shutdown(void);
int test_ticker(const char *name);
void kit_halt(void) __attribute__((noreturn));

/* ---- desc.c: GDT/TSS/IDT ---- */
void desc_init(void);
void kit_triple_fault(void) __attribute__((noreturn)); /* any ring */

/* ---- apic.c ---- */
int apic_init(unsigned int hz); /* 0 on success, -1 if no x2APIC */
uint32_t apic_init_ap(void);   /* AP: x2APIC on, no timer; returns its x2APIC id */
extern volatile uint64_t kit_ticks; /* bumped by the timer ISR (isr.S) */
/* TSC rate measured against 10 timer ticks (100 ms); 0 if no ticks. */
uint64_t kit_tsc_hz(void);
/* Waits are bounded assuming at most a 4 GHz TSC. */
#define TSC_GUESS_HZ 4000000000ull

/* ---- dma.S: the DMA pool, memory inside the kit image (not cleared at boot),
 * for rings, buffers and PCI BARs' users alike ---- */
void *dma_alloc(uint64_t size, uint64_t align);      /* zeroed; NULL when exhausted */
uint64_t dma_mark(void);
void dma_release(uint64_t mark);
uint64_t dma_free_bytes(void);

/* ---- cmdline.c ---- */
void cmdline_parse(const char *s);
const char *cmdline_get(const char *key);       /* NULL if absent */
uint64_t cmdline_get_u64(const char *key, uint64_t dflt);

/* ---- tests.c ---- */
extern const char *kit_current_test;
/* blk.c */
int test_blk(const char *name);
int test_crash(const char *name);   /* test=crash: writes and FLUSHes until killed */
int test_migrate(const char *name); /* test=migrate: survives a snapshot/restore */
int bench_blk(const char *name);
/* nettest.c */
int test_net(const char *name);
int test_net_mq(const char *name);   /* netmq.c: test=net-mq */
int bench_net(const char *name);
/* hostile.c */
int test_hostile(const char *name);
void user_main(void) __attribute__((noreturn)); /* ring 3 */

/* ---- string.c ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int parse_u64(const char *s, uint64_t *out); /* decimal or 0x hex; 0 on success */

/* ---- asm (entry64.S, isr.S) ---- */
/* iretq to fn(arg) in ring 3 on stack rsp */
void kit_enter_user(void (*fn)(void), uint64_t rsp, uint64_t arg) __attribute__((noreturn));
extern const uint64_t kit_isr_table[32];
void kit_timer_isr(void);
void kit_spurious_isr(void);
void kit_virtio_isr(void);
void kit_virtio_config_isr(void);
void kit_service(uint32_t service) __attribute__((noreturn));
extern const uint8_t kit_service_trap[];
extern uint8_t kit_user_stack_top[];
extern uint8_t kit_irq_stack_top[];
extern uint8_t kit_df_stack_top[];

/* Saved by the exception stubs in isr.S (order matters). */
struct exc_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};
void kit_exception(struct exc_frame *f) __attribute__((noreturn));

/* RESULT line helpers: "RESULT name=<n> status=<s>" + caller's keys + "\n". */
#define RESULT(name, status, fmt, ...) \
	kit_printf("RESULT name=%s status=%s" fmt "\n", (name), (status), ##__VA_ARGS__)

#endif

/* desc.c - descriptor tables: the TSS (stacks used when an interrupt
 * arrives in ring 3), the IDT, and the C side of exception handling
 * (which also dispatches the ring-3 -> ring-0 services).
 * The GDT itself is static (boot_tables.S); we only patch in the TSS. */
#include "kit.h"
#include "smp.h"

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss64) == 104, "64-bit TSS is 104 bytes");

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type; /* P | DPL | 0xE (64-bit interrupt gate) */
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate is 16 bytes");

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

#define GATE_INTR_DPL0 0x8e
#define GATE_INTR_DPL3 0xee

extern uint64_t kit_gdt[];
/* The TSS carries a full, all-zero (= all ports allowed) I/O bitmap:
 * PVM does not honour RFLAGS.IOPL = 3 for ring 3 (iretq comes back with
 * IOPL 0), but it does check the bitmap. The extra byte is the required
 * all-ones terminator. */
struct tss_iomap {
	struct tss64 t;
	uint8_t iomap[65536 / 8 + 1];
};
static struct tss_iomap tss __attribute__((aligned(16), section(".data.tss")));
/* The APs' (test=smp), index = CPU number; [0] is unused (the BSP has
 * `tss`). Each also allows every port, so APs may do port I/O in ring 3. */
static struct tss_iomap ap_tss[SMP_MAX_CPUS] __attribute__((aligned(16), section(".data.tss")));
/* Both live in .data, not .bss: the loader copies their zeros from the
 * file, which is cheaper than clearing them in emulated ring 0. */
static struct idt_gate idt[256] __attribute__((aligned(16), section(".data.idt")));

static void set_gate(unsigned int vec, void (*fn)(void), uint8_t type, uint8_t ist)
{
	uint64_t a = (uint64_t)(uintptr_t)fn;
	idt[vec] = (struct idt_gate){
		.off_lo = (uint16_t)a,
		.sel = SEL_KCODE,
		.ist = ist,
		.type = type,
		.off_mid = (uint16_t)(a >> 16),
		.off_hi = (uint32_t)(a >> 32),
	};
}

/* Fill a TSS (RSP0, IST1 = #DF stack, I/O bitmap of zeros from the image
 * = every port allowed), put its descriptor into GDT slot SEL_TSS + 16 *
 * cpu and load TR with it. */
static void load_tss(unsigned int cpu, struct tss_iomap *t, uint64_t rsp0, uint64_t ist1)
{
	unsigned int sel = SEL_TSS + 16 * cpu;

	t->t.rsp[0] = rsp0;
	t->t.ist[0] = ist1;
	t->t.iomap_base = sizeof(t->t);
	t->iomap[sizeof(t->iomap) - 1] = 0xff;

	uint64_t base = (uint64_t)(uintptr_t)t, limit = sizeof(*t) - 1;
	kit_gdt[sel / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
			   (0x89ull << 40) /* P, 64-bit TSS available */ |
			   ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
	kit_gdt[sel / 8 + 1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)sel));
}

static void load_idt(void)
{
	struct desc_ptr p = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(p));
}

/* AP `cpu` (1..SMP_MAX_CPUS-1): its own TSS and stacks, the shared IDT
 * (the BSP filled it before sending the SIPIs). */
void desc_init_ap(unsigned int cpu)
{
	load_tss(cpu, &ap_tss[cpu], (uint64_t)(uintptr_t)kit_ap_kstacks + cpu * AP_KSTACK_SIZE,
		 (uint64_t)(uintptr_t)kit_ap_dfstacks + (cpu + 1) * AP_DFSTACK_SIZE);
	load_idt();
}

void desc_init(void)
{
	load_tss(0, &tss, (uint64_t)(uintptr_t)kit_irq_stack_top,
		 (uint64_t)(uintptr_t)kit_df_stack_top);

	/* Other vectors stay not-present: an unexpected one ends up as #NP/#GP. */
	for (unsigned int v = 0; v < 32; v++)
		set_gate(v, (void (*)(void))(uintptr_t)kit_isr_table[v],
			 (v == 3 || v == 4) ? GATE_INTR_DPL3 : GATE_INTR_DPL0, v == 8 ? 1 : 0);
	set_gate(VEC_TIMER, kit_timer_isr, GATE_INTR_DPL0, 0);
	set_gate(VEC_SPURIOUS, kit_spurious_isr, GATE_INTR_DPL0, 0);
	set_gate(VEC_VIRTIO_QUEUE, kit_virtio_isr, GATE_INTR_DPL0, 0);
	set_gate(VEC_VIRTIO_CONFIG, kit_virtio_config_isr, GATE_INTR_DPL0, 0);

	load_idt();
}

void kit_triple_fault(void)
{
	kit_service(SERVICE_TRIPLE_FAULT);
}

void kit_do_halt(void) __attribute__((noreturn));
void kit_do_triple_fault(void) __attribute__((noreturn));

/* Ring 0, interrupts off. Report once, then leave through debug-exit. */
void kit_exception(struct exc_frame *f)
{
	static int nested;

	if (f->vector == 6 && f->rip == (uint64_t)(uintptr_t)kit_service_trap) {
		if (f->rax == SERVICE_TRIPLE_FAULT)
			kit_do_triple_fault();
		kit_halted_mask_add(); /* test=smp reports it */
		kit_do_halt(); /* SERVICE_HALT and anything unknown */
	}
	if (nested++)
		kit_exit(EXIT_EXCEPTION);
	kit_printf("RESULT name=%s status=fail reason=exception vector=%lu error=0x%lx rip=0x%lx"
		   " cs=0x%lx rsp=0x%lx rflags=0x%lx\n",
		   kit_current_test ? kit_current_test : "boot", f->vector, f->error, f->rip, f->cs,
		   f->rsp, f->rflags);
	if (f->vector == 14) {
		uint64_t cr2;
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		kit_printf("info page-fault cr2=0x%lx\n", cr2);
	}
	kit_exit(EXIT_EXCEPTION);
}

/* desc.c - descriptor tables: the TSS (stacks used when an interrupt
 * arrives in ring 3), the IDT, and the C side of exception handling
 * (which also dispatches the ring-3 -> ring-0 services).
 * The GDT itself is static (boot_tables.S); we only patch in the TSS. */
#include "kit.h"

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
static struct {
	struct tss64 t;
	uint8_t iomap[65536 / 8 + 1];
} tss __attribute__((aligned(16), section(".data.tss")));
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

void desc_init(void)
{
	/* TSS: RSP0 for ring 3 -> ring 0, IST1 for #DF, I/O bitmap (zeros
	 * from the image) allowing every port. */
	tss.t.rsp[0] = (uint64_t)(uintptr_t)kit_irq_stack_top;
	tss.t.ist[0] = (uint64_t)(uintptr_t)kit_df_stack_top;
	tss.t.iomap_base = sizeof(tss.t);
	tss.iomap[sizeof(tss.iomap) - 1] = 0xff;

	uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;
	kit_gdt[SEL_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
			       (0x89ull << 40) /* P, 64-bit TSS available */ |
			       ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
	kit_gdt[SEL_TSS / 8 + 1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));

	/* Other vectors stay not-present: an unexpected one ends up as #NP/#GP. */
	for (unsigned int v = 0; v < 32; v++)
		set_gate(v, (void (*)(void))(uintptr_t)kit_isr_table[v],
			 (v == 3 || v == 4) ? GATE_INTR_DPL3 : GATE_INTR_DPL0, v == 8 ? 1 : 0);
	set_gate(VEC_TIMER, kit_timer_isr, GATE_INTR_DPL0, 0);
	set_gate(VEC_SPURIOUS, kit_spurious_isr, GATE_INTR_DPL0, 0);
	set_gate(VEC_VIRTIO_QUEUE, kit_virtio_isr, GATE_INTR_DPL0, 0);
	set_gate(VEC_VIRTIO_CONFIG, kit_virtio_config_isr, GATE_INTR_DPL0, 0);

	struct desc_ptr p = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(p));
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

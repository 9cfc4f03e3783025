/* smp.h - multi-CPU constants shared by smp_tramp.S and the C side. */
#ifndef KIT_SMP_H
#define KIT_SMP_H

#define SMP_MAX_CPUS    8        /* BSP + 7 APs; per-CPU arrays are this long */
#define AP_TRAMPOLINE   0x8000   /* real-mode start page (SIPI vector 0x08) */
#define AP_KSTACK_SIZE  8192     /* ring-0 stack: AP start-up, then TSS.RSP0 */
#define AP_DFSTACK_SIZE 4096     /* TSS.IST1 (#DF) */
#define AP_USTACK_SIZE  16384    /* ring-3 stack */

#ifndef __ASSEMBLER__
#include <stdint.h>

/* One per CPU, written by that CPU, read by the BSP (tests.c/smp.c). */
struct smp_slot {
	volatile uint32_t state;     /* SMP_* below */
	volatile uint32_t apic_id;   /* x2APIC ID register (MSR 0x802) */
	volatile uint64_t sum;       /* the CPU's work: sum of its range */
	volatile uint64_t cpl;       /* CPL seen in the work loop */
	volatile uint64_t tsc_start, tsc_done;
	uint64_t pad[3];             /* one 64-byte line each */
};
#define SMP_EMPTY   0
#define SMP_RING0   1            /* ap_main reached */
#define SMP_RING3   2            /* in ring 3, working */
#define SMP_DONE    3            /* work finished, about to halt */

extern struct smp_slot kit_smp[SMP_MAX_CPUS];
extern volatile uint32_t kit_ap_arrived;      /* APs that ran the trampoline */
extern volatile uint64_t kit_smp_counter;     /* shared, lock xadd by every CPU */
extern volatile uint32_t kit_smp_go;          /* BSP -> APs: start counting */

extern uint8_t kit_ap_kstacks[], kit_ap_dfstacks[], kit_ap_ustacks[]; /* smp_tramp.S */
extern const uint8_t ap_tramp_start[], ap_tramp_end[];

extern volatile uint32_t kit_halted_mask;   /* bit = x2APIC id, set on the way to hlt */
void kit_halted_mask_add(void);              /* ring 0 */
void smp_start_aps(void);                     /* BSP, ring 0: INIT, SIPI, SIPI */
void ap_main(unsigned int cpu) __attribute__((noreturn)); /* AP, ring 0 */
void desc_init_ap(unsigned int cpu);          /* desc.c: TSS cpu, LTR, LIDT */
int test_smp(const char *name);               /* tests: test=smp */

/* The enabled CPUs of the VMM's MP table (mptable.c), in table order. */
struct mp_cpus {
	unsigned int total;                       /* enabled processor entries */
	unsigned int count;                       /* of them in apic_ids (at most SMP_MAX_CPUS) */
	uint32_t apic_ids[SMP_MAX_CPUS];
};
int mptable_read(struct mp_cpus *out);        /* 0, or -1 if there is no valid table */

/* Recorded by the BSP in ring 0 at boot (start.c), read by test_smp in
 * ring 3: its x2APIC id, and CPUID.1:EBX as ring 0 and ring 3 see it
 * (they differ where PVM does not intercept CPUID in ring 3). */
extern uint32_t kit_bsp_apic_id;
extern uint32_t kit_bsp_cpuid1_ebx_ring0;
#endif

#endif

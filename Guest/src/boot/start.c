/* start.c - common 64-bit initialisation in ring 0, reached from both
 * entries (boot32.S, entry64.S). Ring 0 is emulated on the PVM host, so
 * this does only what ring 3 cannot: copy the boot facts out of low
 * memory, load the TSS/IDT, start the x2APIC timer, then iretq to ring 3. */
#include "kit.h"
#include "smp.h"

#define TIMER_HZ 100

struct boot_info kit_boot;
extern char __bss_start[], __bss_end[];

static void copy_start_info(const struct hvm_start_info *si)
{
	if (!si || si->magic != HVM_START_MAGIC)
		return;
	kit_boot.start_info_ok = 1;
	kit_boot.start_info_version = si->version;
	kit_boot.rsdp_paddr = si->rsdp_paddr;

	if (si->cmdline_paddr) {
		const char *s = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t i;
		for (i = 0; i < KIT_CMDLINE_MAX - 1 && s[i]; i++)
			kit_boot.cmdline[i] = s[i];
		kit_boot.cmdline[i] = '\0';
	}
	if (si->version >= 1 && si->memmap_paddr) {
		const struct hvm_memmap_entry *m = (const void *)(uintptr_t)si->memmap_paddr;
		uint32_t n = si->memmap_entries < KIT_MEMMAP_MAX ? si->memmap_entries : KIT_MEMMAP_MAX;
		memcpy(kit_boot.memmap, m, n * sizeof(*m));
		kit_boot.memmap_entries = n;
	}
}

void kit_main(const struct hvm_start_info *si, enum entry_kind entry);
void kit_main(const struct hvm_start_info *si, enum entry_kind entry)
{
	/* Loaders should zero .bss, but do not trust them. (Stacks live in
	 * .bss.stacks outside this range, so our own stack survives.) */
	uint64_t tsc = rdtsc();
	memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
	kit_boot.tsc_main = tsc;

	kit_boot.entry = entry;
	copy_start_info(si);
	console_init();
	kit_printf("swift-vmd guest kit v1 entry=%s cmdline=\"%s\"\n", entry_name(entry),
		   kit_boot.cmdline);
	if (!kit_boot.start_info_ok)
		kit_printf("info bad-start-info magic=0x%x\n", si ? si->magic : 0);

	cmdline_parse(kit_boot.cmdline);
	kit_current_test = cmdline_get("test");
	if (!kit_current_test || !*kit_current_test)
		kit_current_test = "boot";

	desc_init();
	if (apic_init(TIMER_HZ) != 0) {
		RESULT(kit_current_test, "fail", " reason=no-x2apic");
		kit_exit(EXIT_FAIL);
	}

	/* Our topology as the VMM gives it, read here in ring 0 (smp.h). */
	kit_bsp_apic_id = (uint32_t)rdmsr(0x802);   /* x2APIC ID register */
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	kit_bsp_cpuid1_ebx_ring0 = b;

	/* test=smp: wake the other CPUs now, while we are in ring 0 (the ICR
	 * is an MSR); test_smp waits for them in ring 3. */
	if (strcmp(kit_current_test, "smp") == 0)
		smp_start_aps();

	/* Enter user_main as if called: RSP = 16n + 8. */
	kit_enter_user(user_main, (uint64_t)(uintptr_t)kit_user_stack_top - 8, 0);
}

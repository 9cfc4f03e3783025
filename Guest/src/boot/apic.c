/* apic.c - x2APIC setup and the periodic LAPIC timer (vector 32).
 * x2APIC is programmed with MSRs, so no MMIO page mapping is needed. */
#include "kit.h"

#define MSR_APIC_BASE       0x1b
#define APIC_BASE_EXTD      (1u << 10) /* x2APIC mode */
#define APIC_BASE_EN        (1u << 11)
#define MSR_X2APIC_ID       0x802
#define MSR_X2APIC_SVR      0x80f
#define MSR_X2APIC_LVT_TMR  0x832
#define MSR_X2APIC_LVT_LINT0 0x835
#define MSR_X2APIC_INIT_CNT 0x838
#define MSR_X2APIC_DIV      0x83e
#define SVR_ENABLE          (1u << 8)
#define LVT_MASKED          (1u << 16)
#define LVT_PERIODIC        (1u << 17)
#define DIV_BY_16           0x3
/* KVM's LAPIC timer runs at 1 GHz; we assume it instead of calibrating. */
#define APIC_BUS_HZ         1000000000ull

volatile uint64_t kit_ticks; /* defined here for C; isr.S increments it */

int apic_init(unsigned int hz)
{
	uint32_t a, b, c, d;

	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 21)))
		return -1;

	/* Legacy 8259: firmware (SeaBIOS under QEMU) leaves IRQ0 unmasked at
	 * vectors 8..15, which would look like exceptions. Mask everything. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);

	uint64_t base = rdmsr(MSR_APIC_BASE);
	/* xAPIC -> x2APIC must pass through "enabled" (EN before EXTD). */
	if (!(base & APIC_BASE_EN))
		wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN);
	wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);

	wrmsr(MSR_X2APIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
	wrmsr(MSR_X2APIC_LVT_LINT0, LVT_MASKED); /* no ExtINT from the 8259 */
	wrmsr(MSR_X2APIC_DIV, DIV_BY_16);
	wrmsr(MSR_X2APIC_LVT_TMR, LVT_PERIODIC | VEC_TIMER);
	wrmsr(MSR_X2APIC_INIT_CNT, APIC_BUS_HZ / 16 / hz);
	return 0;
}

/* An application processor (test=smp): x2APIC mode, software-enabled,
 * LINT0 masked, no timer (the BSP's ticks are the kit's clock). */
uint32_t apic_init_ap(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);
	if (!(base & APIC_BASE_EN))
		wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN);
	wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
	wrmsr(MSR_X2APIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
	wrmsr(MSR_X2APIC_LVT_LINT0, LVT_MASKED);
	return (uint32_t)rdmsr(MSR_X2APIC_ID);
}

/* The TSC rate, measured once against 10 timer ticks (100 ms); 0 if the timer
 * does not tick. In ring 3 (it only reads the TSC and the tick count). */
uint64_t kit_tsc_hz(void)
{
	static uint64_t hz;
	if (hz)
		return hz;
	uint64_t budget = 2 * TSC_GUESS_HZ, t0 = rdtsc(), n0 = kit_ticks;
	while (kit_ticks == n0) /* start on a tick edge */
		if (rdtsc() - t0 > budget)
			return 0;
	uint64_t t1 = rdtsc(), n1 = kit_ticks;
	while (kit_ticks < n1 + 10)
		if (rdtsc() - t1 > budget)
			return 0;
	uint64_t t2 = rdtsc(), n2 = kit_ticks;
	hz = (t2 - t1) * 100 / (n2 - n1);
	return hz;
}

/* smp.c - test=smp: start the other CPUs (INIT, SIPI, SIPI through the
 * x2APIC ICR), run each one through real mode -> long mode -> ring 3
 * (smp_tramp.S, ap_main), let every CPU do a share of work, and check it.
 *
 * BSP, ring 0 (kit_main): smp_start_aps copies the real-mode trampoline to
 * AP_TRAMPOLINE (0x8000 - the only write the kit makes outside its image,
 * and only for test=smp) and broadcasts INIT + 2 x SIPI to all but itself.
 * AP, ring 0: ap_main loads its own TSS (and the shared IDT), enables its
 * x2APIC (no timer), records its x2APIC id and irets to ap_user.
 * AP, ring 3: ap_user waits for the BSP's go, sums its range and adds 1 to
 * the shared counter `iters` times with lock xadd, then asks ring 0 to halt.
 * BSP, ring 3: test_smp does the same work, waits for every AP (TSC
 * timeouts) and checks sums, counter, CPL and ids. */
#include "kit.h"
#include "smp.h"

#define MSR_X2APIC_ICR 0x830
#define ICR_INIT        0x00000500u
#define ICR_STARTUP     0x00000600u
#define ICR_ASSERT      0x00004000u
#define ICR_ALL_BUT_SELF 0x000c0000u  /* destination shorthand 11b */


struct smp_slot kit_smp[SMP_MAX_CPUS] __attribute__((aligned(64)));
volatile uint32_t kit_ap_arrived;
volatile uint64_t kit_smp_counter;
volatile uint32_t kit_smp_go;
volatile uint32_t kit_halted_mask;
uint32_t kit_bsp_apic_id;
uint32_t kit_bsp_cpuid1_ebx_ring0;
static volatile uint64_t smp_iters;   /* set by the BSP before the go */
static uint64_t tsc_sipi;              /* rdtsc just before the first INIT */

/* Ring 0, from the halt service (desc.c): note that this CPU got there. */
void kit_halted_mask_add(void)
{
	uint32_t id = (uint32_t)rdmsr(0x802);
	if (id < 32)
		__atomic_fetch_or(&kit_halted_mask, 1u << id, __ATOMIC_SEQ_CST);
}

/* ---- BSP, ring 0 ---- */

static void tsc_delay(uint64_t cycles)
{
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < cycles)
		cpu_relax();
}

void smp_start_aps(void)
{
	size_t n = (size_t)(ap_tramp_end - ap_tramp_start);
	memcpy((void *)(uintptr_t)AP_TRAMPOLINE, ap_tramp_start, n);

	tsc_sipi = rdtsc();
	/* The classic sequence (Intel SDM vol. 3 §8.4.4.1 / MP spec B.4):
	 * INIT, 10 ms, SIPI, 200 us, SIPI. An AP that already left the
	 * wait-for-SIPI state ignores the second one. */
	wrmsr(MSR_X2APIC_ICR, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT);
	tsc_delay(TSC_GUESS_HZ / 100);
	wrmsr(MSR_X2APIC_ICR, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (AP_TRAMPOLINE >> 12));
	tsc_delay(TSC_GUESS_HZ / 5000);
	wrmsr(MSR_X2APIC_ICR, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (AP_TRAMPOLINE >> 12));
}

/* ---- the work, ring 3, every CPU ---- */

static uint64_t work_term(uint64_t i)
{
	return (i * 0x9E3779B97F4A7C15ull) >> 7;
}

/* Sum of work_term over [cpu * iters, (cpu + 1) * iters). */
static uint64_t work_sum(unsigned int cpu, uint64_t iters)
{
	uint64_t s = 0;
	for (uint64_t i = cpu * iters; i < (cpu + 1) * iters; i++) {
		s += work_term(i);
		__asm__ volatile("" : "+r"(s)); /* keep the loop a loop */
	}
	return s;
}

static void work_count(uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		uint64_t one = 1;
		__asm__ volatile("lock xaddq %0, %1" : "+r"(one), "+m"(kit_smp_counter) : : "memory");
	}
}

static void do_work(unsigned int cpu)
{
	struct smp_slot *s = &kit_smp[cpu];
	s->cpl = current_cpl();
	s->tsc_start = rdtsc();
	uint64_t iters = smp_iters;
	s->sum = work_sum(cpu, iters);
	work_count(iters);
	s->tsc_done = rdtsc();
}

/* ---- AP ---- */

static void ap_user(uint64_t cpu)
{
	struct smp_slot *s = &kit_smp[cpu];
	s->state = SMP_RING3;
	while (!kit_smp_go)
		cpu_relax();
	do_work((unsigned int)cpu);
	__asm__ volatile("" ::: "memory");
	s->state = SMP_DONE;
	kit_service(SERVICE_HALT);
}

void ap_main(unsigned int cpu)
{
	struct smp_slot *s = &kit_smp[cpu];
	desc_init_ap(cpu);
	s->apic_id = apic_init_ap();
	s->state = SMP_RING0;
	kit_enter_user((void (*)(void))(uintptr_t)ap_user,
		       (uint64_t)(uintptr_t)kit_ap_ustacks + (cpu + 1) * AP_USTACK_SIZE - 8, cpu);
}

/* ---- BSP, ring 3: test=smp ---- */

/* How many CPUs the machine has: `cpus=` on the command line, else the
 * MP table (never CPUID in ring 3: see mptable.c). 0 = unknown. */
static unsigned int expected_cpus(const struct mp_cpus *mp, int have_mp, const char **from)
{
	uint64_t n = cmdline_get_u64("cpus", 0);
	if (n) {
		*from = "cmdline";
		return (unsigned int)n;
	}
	if (have_mp) {
		*from = "mptable";
		return mp->total;
	}
	*from = "none";
	return 0; /* unknown: count who answers */
}

static void sort_ids(uint32_t *ids, unsigned int n)
{
	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint32_t t = ids[j];
			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
}

static int ap_count(uint32_t state)
{
	int n = 0;
	for (unsigned int i = 1; i < SMP_MAX_CPUS; i++)
		n += kit_smp[i].state >= state;
	return n;
}

int test_smp(const char *name)
{
	const char *from;
	struct mp_cpus mp;
	int have_mp = mptable_read(&mp) == 0;
	unsigned int want = expected_cpus(&mp, have_mp, &from);
	uint64_t iters = cmdline_get_u64("smp_iters", 1000000);
	uint64_t t0 = rdtsc();

	if (want > SMP_MAX_CPUS) {
		RESULT(name, "fail", " reason=too-many-cpus cpus=%u max=%u", want, SMP_MAX_CPUS);
		return EXIT_FAIL;
	}
	/* 1. Wait until every expected AP is in ring 3 (10 s); if the count
	 * is unknown, give them 2 s and take who came. */
	uint64_t budget = (want ? 10 : 2) * TSC_GUESS_HZ;
	while ((want == 0 || ap_count(SMP_RING3) < (int)want - 1) && rdtsc() - t0 < budget)
		cpu_relax();
	uint64_t t_up = rdtsc();
	int up = ap_count(SMP_RING3);

	/* 2. Everyone works at once; the BSP too. */
	kit_smp[0].apic_id = kit_bsp_apic_id;
	kit_smp[0].state = SMP_RING3;
	smp_iters = iters;
	__asm__ volatile("" ::: "memory");
	kit_smp_go = 1;
	do_work(0);
	kit_smp[0].state = SMP_DONE;

	/* 3. Wait for the APs that came up to finish (10 s). */
	uint64_t t1 = rdtsc();
	while (ap_count(SMP_DONE) < up && rdtsc() - t1 < 10 * TSC_GUESS_HZ)
		cpu_relax();
	int done = ap_count(SMP_DONE);

	/* 4. Check. Times are converted with the TSC rate measured against
	 * the timer (about 0.1 s). */
	uint64_t mhz = kit_tsc_hz() / 1000000;
	if (!mhz)
		mhz = 1;
	/* What CPUID.1 says of the BSP's APIC id in ring 0 (through KVM) and
	 * here in ring 3 (the host's, where PVM does not intercept it). */
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	kit_printf("info smp bsp apic-msr=%u cpuid1-apic-ring0=%u cpuid1-apic-ring3=%u cpuid1-count-ring0=%u cpuid1-count-ring3=%u\n",
		   kit_bsp_apic_id, kit_bsp_cpuid1_ebx_ring0 >> 24, b >> 24,
		   (kit_bsp_cpuid1_ebx_ring0 >> 16) & 0xff, (b >> 16) & 0xff);
	kit_printf("info smp expected=%u from=%s arrived=%u ring0=%d ring3=%d done=%d halted=0x%x up-us=%lu tsc-mhz=%lu\n",
		   want, from, kit_ap_arrived, ap_count(SMP_RING0), up, done, kit_halted_mask,
		   (t_up - tsc_sipi) / mhz, mhz);
	unsigned int cpus = 1;
	uint32_t ids[SMP_MAX_CPUS];
	int ok = 1, work_ok = 1;
	ids[0] = kit_smp[0].apic_id;
	for (unsigned int i = 1; i < SMP_MAX_CPUS; i++) {
		struct smp_slot *s = &kit_smp[i];
		if (s->state == SMP_EMPTY)
			continue;
		int sum_ok = s->state == SMP_DONE && s->sum == work_sum(i, iters);
		kit_printf("info smp cpu=%u apic=%u state=%u cpl=%lu sum=%s work-us=%lu\n", i, s->apic_id,
			   s->state, s->cpl, sum_ok ? "ok" : "bad",
			   s->state == SMP_DONE ? (s->tsc_done - s->tsc_start) / mhz : 0);
		if (s->state != SMP_DONE || s->cpl != 3)
			ok = 0;
		if (!sum_ok)
			work_ok = 0;
		if (cpus < SMP_MAX_CPUS)
			ids[cpus++] = s->apic_id;
	}
	kit_printf("info smp cpu=0 apic=%u state=%u cpl=%lu work-us=%lu\n", kit_smp[0].apic_id,
		   kit_smp[0].state, kit_smp[0].cpl, (kit_smp[0].tsc_done - kit_smp[0].tsc_start) / mhz);
	if (kit_smp[0].sum != work_sum(0, iters))
		work_ok = 0;
	uint64_t counter = kit_smp_counter;
	if (counter != (uint64_t)done * iters + iters)
		work_ok = 0;
	/* ids: sorted, must be distinct */
	sort_ids(ids, cpus);
	int ids_ok = 1;
	for (unsigned int i = 1; i < cpus; i++)
		if (ids[i] == ids[i - 1])
			ids_ok = 0;

	/* The ids the CPUs read from their own LAPICs are the MP table's. */
	int mp_ok = 1;
	if (have_mp) {
		uint32_t table_ids[SMP_MAX_CPUS];
		unsigned int n = mp.count;
		memcpy(table_ids, mp.apic_ids, n * sizeof(table_ids[0]));
		sort_ids(table_ids, n);
		mp_ok = n == cpus && memcmp(table_ids, ids, n * sizeof(ids[0])) == 0;
	}

	char list[SMP_MAX_CPUS * 11 + 1];
	size_t p = 0;
	for (unsigned int i = 0; i < cpus; i++) {
		char tmp[12];
		int k = 0;
		uint32_t v = ids[i];
		do {
			tmp[k++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		if (i)
			list[p++] = ',';
		while (k)
			list[p++] = tmp[--k];
	}
	list[p] = '\0';

	const char *reason = NULL;
	if (want && cpus != want)
		reason = up < (int)want - 1 ? "aps-missing" : "aps-unfinished";
	else if (!ok)
		reason = "ap-not-done";
	else if (!ids_ok)
		reason = "duplicate-apic-id";
	else if (!mp_ok)
		reason = "apic-ids-not-mptable";
	else if (!work_ok)
		reason = "bad-work";
	if (reason) {
		RESULT(name, "fail", " cpus=%u apic_ids=%s work=%s reason=%s expected=%u counter=%lu",
		       cpus, list, work_ok ? "OK" : "BAD", reason, want, counter);
		return EXIT_FAIL;
	}
	RESULT(name, "pass", " cpus=%u apic_ids=%s work=OK counter=%lu iters=%lu", cpus, list, counter,
	       iters);
	return (unsigned int)cmdline_get_u64("exit", 0) & 0xff;
}

/* tests.c - ring-3 main and the test= handlers. Add a test by writing
 * a handler and one line in `tests[]`. A handler returns the exit code
 * (after printing its RESULT line) or never returns. */
#include "kit.h"
#include "smp.h"

const char *kit_current_test;

/* Generous TSC budget for waits: assumes at most a 4 GHz TSC, see boot. */

/* Exit code for a passing test: exit=N, default 0. */
static unsigned int pass_code(void)
{
	return (unsigned int)cmdline_get_u64("exit", 0) & 0xff;
}

/* test=boot: the timer ticks reach ring 3 and we really are in ring 3. */
static int test_boot(const char *name)
{
	uint64_t want = cmdline_get_u64("ticks", 10);
	/* 10 s plus the expected time at 100 Hz, even if the TSC is 4 GHz. */
	uint64_t budget = (10 + want / 100 + 1) * TSC_GUESS_HZ;
	uint64_t t0 = rdtsc(), t_first = 0, n_first = 0;

	while (kit_ticks < want) {
		if (rdtsc() - t0 > budget) {
			RESULT(name, "fail", " reason=no-timer-ticks ticks=%lu", kit_ticks);
			return EXIT_FAIL;
		}
		if (!n_first && kit_ticks) {
			n_first = kit_ticks;
			t_first = rdtsc();
		}
		cpu_relax();
	}
	/* Informational: TSC rate measured against the (assumed 100 Hz) timer,
	 * and how long ring-0 setup took (kit_main entry -> ring 3). */
	uint64_t t_last = rdtsc(), n_last = kit_ticks;
	if (n_first && n_last > n_first) {
		uint64_t tsc_hz = (t_last - t_first) * 100 / (n_last - n_first);
		kit_printf("info tsc-mhz=%lu setup-us=%lu\n", tsc_hz / 1000000,
			   (kit_boot.tsc_user - kit_boot.tsc_main) * 1000000 / tsc_hz);
	}
	unsigned int cpl = current_cpl();
	if (cpl != 3) {
		RESULT(name, "fail", " reason=wrong-cpl cpl=%u", cpl);
		return EXIT_FAIL;
	}
	RESULT(name, "pass", " ticks=%lu cpl=%u entry=%s", kit_ticks, cpl,
	       entry_name(kit_boot.entry));
	return pass_code();
}

/* test=triple-fault: ask ring 0 to load an empty IDT and fault. */
static int test_triple_fault(const char *name)
{
	(void)name;
	kit_puts("info triple-fault now\n");
	kit_triple_fault();
}

/* test=reset via=i8042|acpi|acpi-off: end the machine as a PC OS would: the
 * keyboard controller's reset pulse, the ACPI reset register (FADT RESET_REG at
 * 0x602, value 1) or ACPI soft off (SLEEP_CONTROL_REG at 0x600: SLP_TYP 5 from
 * the DSDT's \_S5, SLP_EN). vmd restarts the VM after a reset; each boot is
 * new, so this test resets again until vmd stops restarting it. */
static int test_reset(const char *name)
{
	const char *via = cmdline_get("via");
	if (!via)
		via = "i8042";
	kit_printf("info reset via=%s\n", via);
	if (!strcmp(via, "i8042"))
		outb(0x64, 0xfe);
	else if (!strcmp(via, "acpi"))
		outb(0x602, 0x01);
	else if (!strcmp(via, "acpi-off"))
		outb(0x600, 5 << 2 | 1 << 5);
	RESULT(name, "fail", " reason=still-running via=%s", via);
	return EXIT_FAIL;
}

/* test=hang: spin in ring 3 with interrupts on until killed or asked to shut down. */
static int test_hang(const char *name)
{
	RESULT(name, "running", "");
	uint64_t seen = kit_ticks;
	for (;;) {
		if (kit_ticks != seen) { /* about every 10 ms */
			seen = kit_ticks;
			kit_poll_shutdown();
		}
		cpu_relax();
	}
	return EXIT_FAIL; /* not reached */
}

/* test=exception: raise #UD in ring 3 to exercise the exception report
 * (expected: RESULT ... status=fail reason=exception vector=6, exit 3). */
static int test_exception(const char *name)
{
	(void)name;
	__asm__ volatile("ud2");
	return EXIT_FAIL; /* not reached */
}

static const struct {
	const char *name;
	int (*run)(const char *name);
} tests[] = {
	{ "boot", test_boot },
	{ "triple-fault", test_triple_fault },
	{ "reset", test_reset },
	{ "hang", test_hang },
	{ "ticker", test_ticker },
	{ "exception", test_exception },
	{ "smp", test_smp },
	{ "blk", test_blk },
	{ "bench-blk", bench_blk }, /* bench=blk */
	{ "crash", test_crash },
	{ "migrate", test_migrate },
	{ "net", test_net },
	{ "bench-net", bench_net }, /* bench=net */
	{ "net-mq", test_net_mq },
	{ "hostile", test_hostile },
	{ "hostile-blk", test_hostile },
	{ "hostile-net", test_hostile },
};

void user_main(void)
{
	kit_boot.tsc_user = rdtsc();
	kit_puts("READY\n");
	/* bench=NAME runs the test "bench-NAME" (its RESULT name). */
	static char bench_name[40] = "bench-";
	const char *bench = cmdline_get("bench");
	if (bench && *bench && !cmdline_get("test")) {
		size_t n = strlen(bench);
		if (n > sizeof(bench_name) - 7)
			n = sizeof(bench_name) - 7;
		memcpy(bench_name + 6, bench, n);
		bench_name[6 + n] = '\0';
		kit_current_test = bench_name;
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (strcmp(tests[i].name, kit_current_test) == 0)
			kit_exit(tests[i].run(kit_current_test));
	RESULT(kit_current_test, "fail", " reason=unknown-test");
	kit_exit(EXIT_UNKNOWN_TEST);
}

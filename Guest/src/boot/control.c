/* control.c - the VMM control port and the tests that use it.
 *
 * swift-vmd's vm process answers a 32-bit read of port 0x5f0 with the
 * signature "VMS" in bits 31:8 and flags in bits 7:0; bit 0 says the host
 * asked the guest to shut down (vmctl stop). Under QEMU the port reads as
 * all ones, so the signature check keeps the kit from seeing a request. */
#include "kit.h"

#define VMM_CONTROL_PORT      0x5f0
#define VMM_CONTROL_SIGNATURE 0x534d5600u /* "VMS" << 8 */
#define VMM_SHUTDOWN_REQUEST  0x01u

int kit_shutdown_requested(void)
{
	uint32_t v = inl(VMM_CONTROL_PORT);
	return (v & 0xffffff00u) == VMM_CONTROL_SIGNATURE && (v & VMM_SHUTDOWN_REQUEST);
}

/* Honour a shutdown request: report it and power off (debug exit 0). */
/* ignore_shutdown=1: a guest that ignores the request (vmd must force it). */
void kit_poll_shutdown(void)
{
	static int noted;
	if (cmdline_get_u64("ignore_shutdown", 0)) {
		if (kit_shutdown_requested() && !noted) {
			noted = 1;
			kit_puts("info shutdown-ignored\n");
		}
		return;
	}
	if (kit_shutdown_requested()) {
		RESULT("shutdown", "pass", " ticks=%lu", kit_ticks);
		kit_exit(0);
	}
}

/* test=ticker: print "TICK n=<ticks>" every `every` timer ticks (default 50,
 * half a second) until the host asks for a shutdown. While the VM is paused
 * no ticks arrive, so the printed count stops moving. */
int test_ticker(const char *name)
{
	uint64_t every = cmdline_get_u64("every", 50);
	uint64_t next = kit_ticks + every;
	RESULT(name, "running", " every=%lu", every);
	for (;;) {
		if (kit_ticks >= next) {
			kit_printf("TICK n=%lu\n", kit_ticks);
			next = kit_ticks + every;
			kit_poll_shutdown();
		}
		cpu_relax();
	}
}

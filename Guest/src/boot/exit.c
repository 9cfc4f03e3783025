/* exit.c - leaving the VM: the debug-exit port, then halting for good.
 * QEMU's isa-debug-exit turns the byte into exit status (code << 1) | 1. */
#include "kit.h"

#define DEBUG_EXIT_PORT 0xf4

void kit_halt(void)
{
	if (current_cpl() == 0) {
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	/* hlt is privileged: ask ring 0 to halt for us. */
	kit_service(SERVICE_HALT);
}

void kit_exit(unsigned int code)
{
	outb(DEBUG_EXIT_PORT, (uint8_t)code);
	/* No debug-exit device: stop here. */
	kit_halt();
}

/* boot_tables.S - page tables and GDT, fully initialised at link time so
 * the entry code (ring 0, emulated at ~1.5 MIPS on the PVM host) only has
 * to load CR3 and GDTR instead of running a fill loop. */

#include "smp.h"

/* 2 MiB page: present | writable | user (tests run in ring 3) | PS */
#define PDE_2M 0x87
/* table entry: present | writable | user */
#define PTE_TABLE 0x07

	.section .data.pagetables, "aw"
	.balign 4096
	.globl kit_pml4
kit_pml4:
	.quad kit_pdpt + PTE_TABLE
	.fill 511, 8, 0

	.balign 4096
kit_pdpt:
	.quad kit_pd + 0x0000 + PTE_TABLE
	.quad kit_pd + 0x1000 + PTE_TABLE
	.quad kit_pd + 0x2000 + PTE_TABLE
	.quad kit_pd + 0x3000 + PTE_TABLE
	.fill 508, 8, 0

	/* 4 page directories = identity map of 0..4 GiB */
	.balign 4096
kit_pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) | PDE_2M
	.set i, i + 1
	.endr

	.section .data.gdt, "aw"
	.balign 16
	.globl kit_gdt
kit_gdt:
	.quad 0                     /* 0x00 null */
	.quad 0x00af9a000000ffff    /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff    /* 0x10 kernel data */
	.quad 0x00cff2000000ffff    /* 0x18 user data (DPL 3) */
	.quad 0x00affa000000ffff    /* 0x20 user code, 64-bit (DPL 3) */
	/* 0x28 + 16 * cpu: one 16-byte TSS descriptor per CPU, filled by desc.c */
	.fill 2 * SMP_MAX_CPUS, 8, 0
kit_gdt_end:

	/* lgdt operand; in 32-bit mode only the low 4 bytes of the base are read */
	.balign 8
	.globl kit_gdt_desc
kit_gdt_desc:
	.word kit_gdt_end - kit_gdt - 1
	.quad kit_gdt

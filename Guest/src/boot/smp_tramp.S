/* smp_tramp.S - application processor (AP) start-up.
 *
 * ap_tramp_start..ap_tramp_end is copied by the BSP to AP_TRAMPOLINE
 * (0x8000, below 1 MiB, a page the VMM leaves free) and started there by
 * INIT + SIPI (vector 0x08): real mode, CS = 0x0800, IP = 0. It only
 * switches to 32-bit protected mode with its own tiny GDT and far-jumps to
 * ap_entry32 in the kit image, which does what boot32.S does for the BSP
 * (PAE, the kit's page tables, EFER.LME, the kit's GDT, paging) and then
 * continues in 64-bit mode on a per-CPU stack. */

#include "smp.h"

#define CR0_PE 0x00000001
#define CR0_MP 0x00000002
#define CR0_ET 0x00000010
#define CR0_NE 0x00000020
#define CR0_WP 0x00010000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100

/* Offsets inside the copied trampoline, as linear addresses. */
#define TRAMP(x) (AP_TRAMPOLINE + ((x) - ap_tramp_start))

	.section .rodata.tramp, "a"
	.code16
	.globl ap_tramp_start
	.globl ap_tramp_end
ap_tramp_start:
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds
	lgdtl tramp_gdt_desc - ap_tramp_start     /* DS-relative */
	mov %cr0, %eax
	or $CR0_PE, %eax
	mov %eax, %cr0
	ljmpl $0x18, $ap_entry32                  /* 32-bit code, flat */

	.balign 8
tramp_gdt:
	.quad 0                     /* 0x00 null */
	.quad 0x00af9a000000ffff    /* 0x08 64-bit code (unused here) */
	.quad 0x00cf92000000ffff    /* 0x10 flat data */
	.quad 0x00cf9a000000ffff    /* 0x18 flat 32-bit code */
tramp_gdt_end:
tramp_gdt_desc:
	.word tramp_gdt_end - tramp_gdt - 1
	.long TRAMP(tramp_gdt)
ap_tramp_end:

	.text
	.code32
ap_entry32:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov %eax, %fs
	mov %eax, %gs

	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $kit_pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	lgdt kit_gdt_desc
	mov $(CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE), %eax
	mov %eax, %cr0                  /* compatibility mode */
	ljmp $0x08, $ap_entry64

	.code64
ap_entry64:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	/* A CPU number from 1 up, in arrival order. */
	mov $1, %edi
	lock xadd %edi, kit_ap_arrived(%rip)
	inc %edi
	cmp $SMP_MAX_CPUS, %edi
	jae 2f
	/* RSP = top of this CPU's kernel stack (also its TSS.RSP0). */
	mov %edi, %eax
	imul $AP_KSTACK_SIZE, %eax
	lea kit_ap_kstacks(%rip), %rsp
	add %rax, %rsp
	pushq $2                        /* RFLAGS: IF = 0 */
	popfq
	call ap_main                    /* ap_main(cpu), does not return */
2:	cli
	hlt
	jmp 2b

	.section .stacks, "aw", @nobits
	.balign 4096
	/* Index 0 is unused (the BSP has its own stacks in entry64.S), so
	 * cpu N's kernel stack top is kit_ap_kstacks + N * AP_KSTACK_SIZE. */
	.globl kit_ap_kstacks
kit_ap_kstacks:
	.space AP_KSTACK_SIZE * (SMP_MAX_CPUS - 1)
	.globl kit_ap_dfstacks
kit_ap_dfstacks:
	.space AP_DFSTACK_SIZE * SMP_MAX_CPUS
	.globl kit_ap_ustacks
kit_ap_ustacks:
	.space AP_USTACK_SIZE * SMP_MAX_CPUS

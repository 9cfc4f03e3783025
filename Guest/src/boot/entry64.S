/* entry64.S - ELF64 entry (e_entry), the common 64-bit path, the drop to
 * ring 3, and the stacks.
 * ELF64 in: long mode, paging on with the VMM's tables/GDT in low memory,
 *           RBX = RDI = physical address of struct hvm_start_info.
 * We touch nothing of the VMM's: switch stack, CR3 and GDT first thing. */

#define CR4_PAE 0x20
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1b
#define SEL_UCODE 0x23
/* IOPL 3 | IF | reserved bit 1. PVM drops the IOPL (ring 3 sees 0), so
 * port I/O from ring 3 really rests on the TSS I/O bitmap (desc.c). */
#define USER_RFLAGS 0x3202

	.section .text.boot, "ax"
	.code64
	.globl entry64
entry64:
	cli
	cld
	mov $kit_boot_stack_top, %esp   /* never push onto the VMM's stack */
	/* CR4 first: our pages are all user pages, so a VMM-set SMEP must be
	 * off before we run on them. Also drops SMAP, PGE, PCIDE (the VMM's
	 * CR3 must then have PCID 0, which it has unless it set PCIDE). */
	mov $CR4_PAE, %eax
	mov %rax, %cr4
	mov $kit_pml4, %eax
	mov %rax, %cr3
	lgdt kit_gdt_desc
	mov $1, %esi                    /* ENTRY_ELF64; RDI = start_info */

	/* Both entries arrive here: RDI = start_info, ESI = entry kind. */
	.globl kit_common64
kit_common64:
	mov $kit_boot_stack_top, %esp
	mov $SEL_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	/* reload CS from our GDT */
	pushq $SEL_KCODE
	lea 1f(%rip), %rax
	push %rax
	lretq
1:	pushq $2                        /* clean RFLAGS: IF=0, DF=0, AC=0 */
	popfq
	call kit_main
2:	cli
	hlt
	jmp 2b

/* void kit_enter_user(void (*fn)(uint64_t), uint64_t rsp, uint64_t arg):
 * iretq to ring 3, fn gets arg in RDI. */
	.text
	.globl kit_enter_user
kit_enter_user:
	mov $SEL_UDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	pushq $SEL_UDATA                /* SS */
	push %rsi                       /* RSP */
	pushq $USER_RFLAGS
	pushq $SEL_UCODE                /* CS */
	push %rdi                       /* RIP */
	mov %rdx, %rdi                  /* fn's argument */
	iretq

	.section .stacks, "aw", @nobits
	.balign 4096
	.space 16384
	.globl kit_boot_stack_top
kit_boot_stack_top:
	.space 16384
	.globl kit_irq_stack_top        /* TSS.RSP0: ring 3 -> ring 0 */
kit_irq_stack_top:
	.space 4096
	.globl kit_df_stack_top         /* TSS.IST1: #DF */
kit_df_stack_top:
	.space 65536
	.globl kit_user_stack_top
kit_user_stack_top:

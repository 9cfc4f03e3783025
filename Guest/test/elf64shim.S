/* elf64shim.S - TEST ONLY: lets QEMU exercise the kit's ELF64 entry.
 * QEMU can only boot PVH, so this PVH stub plays the VMM: it builds its
 * own page tables (1 GiB identity, supervisor-only pages), GDT (different
 * selector layout from the kit's) and stack below 1 MiB, turns on PGE and
 * (if available) SMEP, enters long mode and jumps to entry64 with
 * RBX = RDI = start_info, as the swift-vmd ELF64 loader does. */

#define VMM_PML4  0x70000
#define VMM_PDPT  0x71000
#define VMM_PD    0x72000
#define VMM_GDT   0x6f000
#define VMM_STACK 0x8000

	.section .note.pvh, "a", @note
	.balign 4
	.long 2f - 1f
	.long 4f - 3f
	.long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
1:	.asciz "Xen"
2:	.balign 4
3:	.long shim_entry32
4:	.balign 4

	.text
	.code32
shim_entry32:
	cli
	cld
	mov %ebx, %esi

	mov $VMM_PML4, %edi             /* zero PML4, PDPT, PD */
	xor %eax, %eax
	mov $(3 * 4096 / 4), %ecx
	rep stosl
	movl $(VMM_PDPT | 3), VMM_PML4  /* present | writable, supervisor */
	movl $(VMM_PD | 3), VMM_PDPT
	mov $VMM_PD, %edi
	mov $0x83, %eax                 /* 2 MiB, present | writable, supervisor */
	mov $512, %ecx
1:	mov %eax, (%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 1b

	/* GDT: null, null, 0x10 code64, 0x18 data */
	movl $0, VMM_GDT + 0x00
	movl $0, VMM_GDT + 0x04
	movl $0, VMM_GDT + 0x08
	movl $0, VMM_GDT + 0x0c
	movl $0x0000ffff, VMM_GDT + 0x10
	movl $0x00af9a00, VMM_GDT + 0x14
	movl $0x0000ffff, VMM_GDT + 0x18
	movl $0x00cf9200, VMM_GDT + 0x1c
	movw $0x1f, VMM_GDT + 0x100
	movl $VMM_GDT, VMM_GDT + 0x102
	lgdt VMM_GDT + 0x100

	/* CR4 = PAE | PGE, plus SMEP when the CPU has it */
	mov $0xa0, %edi
	mov $7, %eax
	xor %ecx, %ecx
	cpuid
	test $(1 << 7), %ebx
	jz 2f
	or $(1 << 20), %edi
2:	mov %edi, %cr4
	mov $VMM_PML4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	mov $0x80000011, %eax           /* PG | ET | PE */
	mov %eax, %cr0
	ljmp $0x10, $3f

	.code64
3:	mov $0x18, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $VMM_STACK, %esp
	mov %esi, %edi                  /* RDI = RBX = start_info */
	mov %rdi, %rbx
	mov $entry64, %eax
	jmp *%rax

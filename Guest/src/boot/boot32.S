/* boot32.S - PVH entry (Xen PVH boot ABI).
 * In: 32-bit protected mode, paging off, flat CS/DS/ES/SS,
 *     EBX = physical address of struct hvm_start_info.
 * We have no stack here and need none: enable PAE + long mode with the
 * static tables from boot_tables.S, then far-jump into 64-bit code. */

#define CR0_PE 0x00000001
#define CR0_MP 0x00000002
#define CR0_ET 0x00000010
#define CR0_NE 0x00000020
#define CR0_WP 0x00010000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100

	.section .text.boot, "ax"
	.code32
	.globl pvh_entry32
pvh_entry32:
	cli
	cld
	mov %ebx, %edi                  /* start_info survives in EDI */

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
	mov %eax, %cr0                  /* now in compatibility mode */
	ljmp $0x08, $1f

	.code64
1:	mov %edi, %edi                  /* upper halves are undefined after the switch */
	xor %esi, %esi                  /* ENTRY_PVH */
	jmp kit_common64

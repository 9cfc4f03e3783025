/* isr.S - interrupt entry stubs. These are the only ring-0 code once the
 * kit is in ring 3, and ring 0 is emulated on the PVM host, so the hot
 * ones (timer) are a handful of instructions written by hand. */

#define MSR_X2APIC_EOI 0x80b
#define SERVICE_TRIPLE_FAULT 1

	.text
	.code64

/* Exceptions: make every frame look alike (vector, error code), save the
 * GPRs as struct exc_frame and hand over to C, which reports and exits. */
.macro EXC_NOERR n
	.balign 16
isr_\n:
	pushq $0
	pushq $\n
	jmp exc_common
.endm
.macro EXC_ERR n
	.balign 16
isr_\n:
	pushq $\n
	jmp exc_common
.endm

EXC_NOERR 0
EXC_NOERR 1
EXC_NOERR 2
EXC_NOERR 3
EXC_NOERR 4
EXC_NOERR 5
EXC_NOERR 6
EXC_NOERR 7
EXC_ERR   8
EXC_NOERR 9
EXC_ERR   10
EXC_ERR   11
EXC_ERR   12
EXC_ERR   13
EXC_ERR   14
EXC_NOERR 15
EXC_NOERR 16
EXC_ERR   17
EXC_NOERR 18
EXC_NOERR 19
EXC_NOERR 20
EXC_ERR   21
EXC_NOERR 22
EXC_NOERR 23
EXC_NOERR 24
EXC_NOERR 25
EXC_NOERR 26
EXC_NOERR 27
EXC_NOERR 28
EXC_ERR   29
EXC_ERR   30
EXC_NOERR 31

exc_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	cld
	mov %rsp, %rdi
	and $-16, %rsp
	call kit_exception              /* does not return */
1:	cli
	hlt
	jmp 1b

/* LAPIC timer: count, EOI, return. ~10 instructions + one wrmsr exit. */
	.globl kit_timer_isr
	.balign 16
kit_timer_isr:
	push %rax
	push %rcx
	push %rdx
	incq kit_ticks(%rip)
	mov $MSR_X2APIC_EOI, %ecx
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
	pop %rdx
	pop %rcx
	pop %rax
	iretq

/* virtio MSI-X (queue, config): count, EOI, return. Ring 3 polls the
 * used rings itself; the counters prove the interrupts arrive. */
	.globl kit_virtio_isr
	.balign 16
kit_virtio_isr:
	incq kit_virtio_irqs(%rip)
	jmp eoi_iret

	.globl kit_virtio_config_isr
	.balign 16
kit_virtio_config_isr:
	incq kit_virtio_config_irqs(%rip)
eoi_iret:
	push %rax
	push %rcx
	push %rdx
	mov $MSR_X2APIC_EOI, %ecx
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
	pop %rdx
	pop %rcx
	pop %rax
	iretq

/* LAPIC spurious interrupt: no EOI by definition. */
	.globl kit_spurious_isr
	.balign 16
kit_spurious_isr:
	iretq

/* void kit_service(uint32_t service), from ring 3: the ud2 at
 * kit_service_trap is recognised by kit_exception (desc.c), which runs the
 * service in ring 0. No service returns. */
	.globl kit_service
	.globl kit_service_trap
	.balign 16
kit_service:
	mov %edi, %eax
kit_service_trap:
	ud2

/* Services, entered from kit_exception in ring 0 with IF = 0. */
	.globl kit_do_halt
kit_do_halt:
	cli
	hlt
	jmp kit_do_halt

	.globl kit_do_triple_fault
kit_do_triple_fault:
	/* With an empty IDT, #UD -> #GP -> #DF -> shutdown. (int3 here makes
	 * KVM's instruction emulator give up under PVM: "emulation failure".) */
	lidt null_idt_desc(%rip)
	ud2
	sti                             /* fallback: let the timer fault */
1:	hlt
	jmp 1b

	.section .rodata
	.balign 8
null_idt_desc:
	.word 0
	.quad 0

	.globl kit_isr_table
	.balign 8
kit_isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr_\n
	.endr

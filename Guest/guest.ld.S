/* guest.ld.S - linker script, run through cpp. With -DPVH_NOTE the PVH
 * note gets its own PT_NOTE segment (guest-kit.elf); without it the
 * note is absent (guest-kit-elf64.elf). The note is the last thing in
 * the text segment and .data is page aligned, so every code and data
 * address is the same in both images. */

OUTPUT_FORMAT("elf64-x86-64")
OUTPUT_ARCH(i386:x86-64)
ENTRY(entry64)

PHDRS
{
	text PT_LOAD FLAGS(5);   /* R X */
	data PT_LOAD FLAGS(6);   /* R W */
#ifdef PVH_NOTE
	note PT_NOTE FLAGS(4);
#endif
}

SECTIONS
{
	. = 0x100000;
	__image_start = .;

	.text : {
		KEEP(*(.text.boot))
		*(.text .text.*)
	} :text

	.rodata : {
		*(.rodata .rodata.*)
	} :text

#ifdef PVH_NOTE
	.note.pvh : {
		KEEP(*(.note.pvh))
	} :text :note
#endif

	. = ALIGN(4096);
	.data : {
		*(.data.pagetables)
		*(.data .data.*)
	} :data

	/* Zeroed by start.c (and by the loader). */
	.bss (NOLOAD) : {
		__bss_start = .;
		*(.bss .bss.*)
		*(COMMON)
		__bss_end = .;
	} :data

	/* Stacks: zeroed by the loader only; start.c runs on one of them. */
	. = ALIGN(4096);
	.stacks (NOLOAD) : {
		*(.stacks)
	} :data
	/* virtio rings and I/O buffers (dma.S): loader-zeroed, never cleared
	 * by the kit at boot; dma_alloc clears what it hands out. */
	. = ALIGN(4096);
	.dma (NOLOAD) : {
		*(.dma)
	} :data
	. = ALIGN(4096);
	__image_end = .;

	/DISCARD/ : {
		*(.note.GNU-stack)
		*(.note.gnu.*)
		*(.comment)
		*(.eh_frame .eh_frame_hdr)
	}
}

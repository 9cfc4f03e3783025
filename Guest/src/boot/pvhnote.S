/* pvhnote.S - Xen PVH ELF note: tells a PVH loader (QEMU -kernel, our vm)
 * the 32-bit physical entry point. Linked only into guest-kit.elf; the
 * elf64 variant leaves it out so loaders must use e_entry instead. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.pvh, "a", @note
	.balign 4
	.long 2f - 1f          /* namesz */
	.long 4f - 3f          /* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.balign 4
3:	.long pvh_entry32
4:	.balign 4

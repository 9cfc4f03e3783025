/* dma.S - the pool for virtqueue rings and I/O buffers (virtio.c's
 * dma_alloc). It is part of the image (NOLOAD, after the stacks) so the
 * kit still writes nothing outside its own image, and it is not cleared
 * at boot (ring 0 is slow on PVM): dma_alloc clears what it hands out. */
#define KIT_DMA_POOL_SIZE (8 << 20)

	.section .dma, "aw", @nobits
	.balign 4096
	.globl kit_dma_pool
kit_dma_pool:
	.space KIT_DMA_POOL_SIZE
	.globl kit_dma_pool_end
kit_dma_pool_end:

/* blk.h - virtio-blk (virtio 1.2 §5.2): the constants and the request header the
 * driver (drivers/blk.c) and the hostile guest (hostile/hostile.c) share. */
#ifndef KIT_BLK_H
#define KIT_BLK_H
#include <stdint.h>

#define VIRTIO_BLK_PCI_DEVICE 0x1042

/* feature bits (§5.2.3) */
#define BLK_F_SIZE_MAX     1
#define BLK_F_SEG_MAX      2
#define BLK_F_RO           5
#define BLK_F_BLK_SIZE     6
#define BLK_F_FLUSH        9
#define BLK_F_TOPOLOGY     10
#define BLK_F_MQ           12
#define BLK_F_DISCARD      13
#define BLK_F_WRITE_ZEROES 14

/* request types and status (§5.2.6) */
#define BLK_T_IN           0
#define BLK_T_OUT          1
#define BLK_T_FLUSH        4
#define BLK_T_GET_ID       8
#define BLK_T_DISCARD      11
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK     0
#define BLK_S_IOERR  1
#define BLK_S_UNSUPP 2
#define BLK_ID_BYTES 20

/* struct virtio_blk_config offsets (§5.2.4) */
#define CFG_CAPACITY       0
#define CFG_SIZE_MAX       8
#define CFG_SEG_MAX        12
#define CFG_BLK_SIZE       20
#define CFG_PHYS_BLOCK_EXP 24
#define CFG_NUM_QUEUES     34
#define CFG_MAX_DISCARD    36
#define CFG_MAX_DISCARD_SEG 40
#define CFG_DISCARD_ALIGN  44
#define CFG_MAX_WZ         48
#define CFG_MAX_WZ_SEG     52

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

#endif

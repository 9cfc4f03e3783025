/* net.h - virtio-net driver (net.c, virtio 1.2 §5.1) and the kit's small
 * ring-3 network stack (netstack.c: Ethernet, ARP, IPv4, ICMP echo, UDP;
 * dhcp.c: DHCP client). Single-threaded and polled: nothing happens
 * unless the caller runs netif_poll(). IPv4 addresses are kept in host
 * byte order; frames hold network byte order. */
#ifndef KIT_NET_H
#define KIT_NET_H

#include <stdint.h>
#include "virtio.h"

#define VIRTIO_NET_PCI_DEVICE 0x1041

/* feature bits (§5.1.3) */
#define NET_F_CSUM      0
#define NET_F_MAC       5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS    16
#define NET_F_CTRL_VQ   17
#define NET_F_GUEST_ANNOUNCE 21
#define NET_F_MQ        22
#define NET_F_HOST_USO  56

/* virtio_net_hdr flags and gso_type (§5.1.6) */
#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_GSO_UDP_L4   5
#define NET_NO_TAIL          0xffff

#define NET_HDR_LEN   12   /* struct virtio_net_hdr with VERSION_1 (§5.1.6) */
#define NET_BUF_LEN   2048 /* every receive and transmit buffer */
#define ETH_HLEN      14
#define ETH_MTU       1500
#define ETH_FRAME_MAX (ETH_HLEN + ETH_MTU)
#define NET_RX_ASM    8192 /* largest frame reassembled from merged buffers */

struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));

struct netdev {
	struct virtio_dev vd;
	struct virtq rxq, txq;
	int ok;
	const char *error;
	uint8_t mac[6];
	int mac_from_device;
	uint16_t link_status;       /* config status (STATUS), 1 = up; 0xffff if not negotiated */
	int mrg_rxbuf, event_idx;
	int uso;                    /* CSUM and HOST_USO negotiated (asked for with uso=1) */
	uint8_t *rxbufs;            /* rxq.size x NET_BUF_LEN, buffer i = descriptor i */
	uint8_t *txbufs;            /* txq.size x NET_BUF_LEN, buffer i = descriptor i */
	uint16_t *tx_free;          /* stack of free tx descriptor ids */
	uint16_t tx_nfree;
	uint8_t *tx_busy;           /* per descriptor: 1 while the device owns it */
	uint16_t *tx_tail;          /* per head descriptor: its USO payload descriptor, or NET_NO_TAIL */
	uint8_t *rx_asm;            /* NET_RX_ASM bytes for merged frames */
	uint64_t tsc_hz, timeout;   /* TSC ticks per second, per operation */
	/* 1 = never wait (test=migrate net=1, whose loop must not stall and
	 * whose TSC may jump): a full transmit queue drops the frame
	 * (tx_drops) instead of waiting up to `timeout`, and a merged frame
	 * (MRG_RXBUF) is taken only once all its buffers are in the used ring
	 * (until then it stays there for the next poll). No TSC is read. */
	int nowait;
	/* counters */
	uint64_t rx_frames, rx_bytes, rx_merged, rx_errors;
	uint64_t tx_frames, tx_bytes, tx_full_waits, tx_drops;
};

/* Find the first virtio-net function (1af4:1041) and bring it up:
 * features, MAC, queues 0 (receive) and 1 (transmit) with MSI-X entry 0,
 * receive queue filled. 0 or -1 with n->error set. */
int netdev_init(struct netdev *n);
/* test=net-mq: the first virtio-net function with MQ and CTRL_VQ
 * negotiated. pairs (NET_MQ_MAX of them) gets one struct netdev per queue
 * pair the device has (max_virtqueue_pairs, *count), each set up as
 * netdev_init sets up its only pair; ctrl is the control queue (queue
 * 2 * count), interrupts off. The driver uses the first pair alone until it
 * sends VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (§5.1.6.5.5). 0, or -1 with
 * pairs[0].error ("no-mq" when the device does not offer both). */
#define NET_MQ_MAX 8
int netdev_init_mq(struct netdev *pairs, unsigned int *count, struct virtq *ctrl);
/* A transmit buffer for one frame (the frame area after the virtio-net
 * header, ETH_FRAME_MAX bytes), or NULL if the queue stays full for
 * n->timeout (n->error = "tx-timeout", n->ok = 0); with n->nowait, NULL
 * at once if it is full (n->tx_drops++, the device stays usable). */
uint8_t *netdev_tx_buf(struct netdev *n);
/* Queue the frame in that buffer (len bytes); visible after netdev_tx_flush. */
void netdev_tx_commit(struct netdev *n, uint8_t *frame, uint32_t len);
/* With n->uso: queue the frame in that buffer as a USO packet, its first
 * hdr_len bytes the Ethernet, IPv4 and UDP headers of the whole datagram
 * (the UDP checksum field holding the pseudo-header sum), its payload
 * payload_len bytes at payload, which the device reads after this returns:
 * it must stay unchanged (and be DMA memory) until netdev_tx_reclaim gives
 * the frame back. The device's host cuts it into seg-byte datagrams. Takes
 * a second descriptor; 0, or -1 (the buffer is returned) as netdev_tx_buf. */
int netdev_tx_commit_uso(struct netdev *n, uint8_t *frame, uint32_t hdr_len, const uint8_t *payload,
			 uint32_t payload_len, uint16_t seg);
/* Return the buffer unused. */
void netdev_tx_abort(struct netdev *n, uint8_t *frame);
void netdev_tx_flush(struct netdev *n);
/* Reclaim transmitted buffers; returns how many are free. */
unsigned int netdev_tx_reclaim(struct netdev *n);
/* Hand up to `budget` received frames to cb (the frame without the
 * virtio-net header, valid only during the call), give their buffers
 * back to the device and notify it if it asks. Returns frames delivered. */
typedef void (*netdev_rx_fn)(void *ctx, const uint8_t *frame, uint32_t len);
unsigned int netdev_rx_poll(struct netdev *n, netdev_rx_fn cb, void *ctx, unsigned int budget);
void netdev_set_rx_poll(struct netdev *n, int poll); /* 1 = no receive interrupts */

/* ---- stack ---- */
#define ARP_CACHE 16

struct arp_entry {
	uint32_t ip;
	uint8_t mac[6];
	uint8_t valid;
};

struct netif;
/* UDP datagram for a port with a handler (payload valid during the call). */
typedef void (*udp_fn)(struct netif *nif, uint32_t src_ip, uint16_t src_port, uint16_t dst_port,
		       const uint8_t *src_mac, const uint8_t *payload, uint32_t len);

struct netif {
	struct netdev *dev;
	uint32_t ip, mask, gw;      /* 0 = unset */
	int accept_any_ip;          /* while DHCP runs: take UDP to any address */
	struct arp_entry arp[ARP_CACHE];
	unsigned int arp_next;
	udp_fn udp_handler;         /* every UDP datagram that passed the checks */
	void *ctx;                  /* for the handler's owner */
	uint16_t ip_id;
	/* counters */
	uint64_t rx, tx;            /* frames */
	uint64_t arp_replies, icmp_echo, udp_in, dropped;
};

void netif_init(struct netif *nif, struct netdev *dev);
/* Receive and handle up to budget frames, then flush the transmit queue. */
unsigned int netif_poll(struct netif *nif, unsigned int budget);
/* The MAC for ip (direct or through the gateway): ARP requests every
 * 200 ms until an answer or timeout_s. 0, or -1. */
int arp_resolve(struct netif *nif, uint32_t ip, uint8_t mac[6], uint64_t timeout_s);
/* The pieces of arp_resolve for a caller that polls several interfaces
 * (test=net-mq, whose replies may come on any queue pair): send one
 * request (queued, not flushed; 0 or -1), look up the cache (0 if known),
 * and add an entry. */
int arp_request(struct netif *nif, uint32_t ip);
int arp_lookup(struct netif *nif, uint32_t ip, uint8_t mac[6]);
void arp_add(struct netif *nif, uint32_t ip, const uint8_t mac[6]);
/* One UDP datagram (fragmented if len > ETH_MTU - 28), queued but not
 * flushed. dst_mac NULL: look it up in the ARP cache (fails if absent).
 * Computes the UDP checksum. 0 or -1 (queue stuck or no MAC). */
int udp_send(struct netif *nif, const uint8_t *dst_mac, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
	     uint16_t dport, const uint8_t *payload, uint32_t len);
/* len bytes of payload as datagrams of seg bytes each (the last one may be
 * shorter), queued but not flushed: one USO frame when the device
 * negotiated USO and the whole fits one IPv4 datagram of at most
 * UDP_USO_MAX_SEGS segments (the payload must then stay unchanged until
 * reclaimed, see netdev_tx_commit_uso), else udp_send per datagram. dst_mac
 * must be given. 0 or -1. */
#define UDP_USO_MAX_SEGS 64
int udp_send_segments(struct netif *nif, const uint8_t *dst_mac, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
		      uint16_t dport, const uint8_t *payload, uint32_t len, uint32_t seg);
/* Number of frames udp_send needs for len bytes of payload. */
unsigned int udp_frames(uint32_t len);

/* ---- dhcp.c ---- */
struct dhcp_lease {
	uint32_t ip, mask, router, server, lease_s;
	unsigned int attempts;
};
/* DISCOVER -> OFFER -> REQUEST -> ACK; up to `tries` rounds of
 * `timeout_s` per step. Configures nif on success (0), -1 otherwise. */
int dhcp_run(struct netif *nif, struct dhcp_lease *l, unsigned int tries, uint64_t timeout_s, const char **why);

/* ---- nettest.c ---- */
/* test=migrate net=1: the first virtio-net function and its address, set
 * up as test=net does (same driver, receive queue filled; ip=/gw=, or
 * dhcp=1), then n->dev->nowait = 1. Prints "info migrate net ..." lines,
 * no RESULT. Answers ARP and ICMP echo only (no UDP handler). 0 and *out;
 * -1: no virtio-net function; -2: *why says what failed. */
int migrate_net_up(struct netif **out, const char **why);

/* ---- helpers ---- */
static inline uint16_t htons(uint16_t v) { return (uint16_t)(v << 8 | v >> 8); }
static inline uint16_t ntohs(uint16_t v) { return htons(v); }
static inline uint32_t htonl(uint32_t v) { return __builtin_bswap32(v); }
static inline uint32_t ntohl(uint32_t v) { return __builtin_bswap32(v); }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

/* Internet checksum (RFC 1071): sum in, folded complement out. */
uint32_t inet_sum(const uint8_t *p, uint32_t len, uint32_t sum);
uint16_t inet_fold(uint32_t sum);
/* "a.b.c.d" -> host order; end (optional) gets the first char after it. 0 on success. */
int parse_ip(const char *s, uint32_t *ip, const char **end);
/* "a.b.c.d" into buf (16 bytes). */
const char *ip_str(uint32_t ip, char buf[16]);
const char *mac_str(const uint8_t mac[6], char buf[18]);

#endif

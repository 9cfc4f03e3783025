/* netstack.c - the kit's network stack, ring 3, polled: Ethernet II,
 * ARP (RFC 826: answer requests for our address, resolve a next hop),
 * IPv4 (RFC 791: header checksum checked and generated, no options sent,
 * fragments received are dropped, large UDP datagrams are sent
 * fragmented), ICMP echo reply (RFC 792) and UDP (RFC 768, checksum
 * checked when present and always generated). */
#include "kit.h"
#include "net.h"

#define ETHERTYPE_IP  0x0800
#define ETHERTYPE_ARP 0x0806
#define IP_PROTO_ICMP 1
#define IP_PROTO_UDP  17
#define IP_HLEN       20
#define UDP_HLEN      8
#define IP_DF         0x4000
#define IP_MF         0x2000
#define IP_FRAG_DATA  1480 /* ETH_MTU - IP_HLEN, a multiple of 8 */
#define UDP_MAX_PAYLOAD (65535 - IP_HLEN - UDP_HLEN)

static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* ---- helpers ---- */

uint32_t inet_sum(const uint8_t *p, uint32_t len, uint32_t sum)
{
	for (; len >= 2; len -= 2, p += 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

uint16_t inet_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int parse_ip(const char *s, uint32_t *ip, const char **end)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		if (*s < '0' || *s > '9')
			return -1;
		uint32_t o = 0;
		for (int d = 0; *s >= '0' && *s <= '9'; d++, s++) {
			o = o * 10 + (uint32_t)(*s - '0');
			if (d >= 3 || o > 255)
				return -1;
		}
		v = v << 8 | o;
		if (i < 3 && *s++ != '.')
			return -1;
	}
	*ip = v;
	if (end)
		*end = s;
	else if (*s)
		return -1;
	return 0;
}

static char *put_dec(char *p, unsigned int v)
{
	if (v >= 100)
		*p++ = (char)('0' + v / 100);
	if (v >= 10)
		*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

const char *ip_str(uint32_t ip, char buf[16])
{
	char *p = buf;
	for (int i = 3; i >= 0; i--) {
		p = put_dec(p, (ip >> (8 * i)) & 0xff);
		if (i)
			*p++ = '.';
	}
	*p = '\0';
	return buf;
}

const char *mac_str(const uint8_t mac[6], char buf[18])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 6; i++) {
		buf[3 * i] = hex[mac[i] >> 4];
		buf[3 * i + 1] = hex[mac[i] & 15];
		buf[3 * i + 2] = i < 5 ? ':' : '\0';
	}
	return buf;
}

static int mac_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, 6) == 0;
}

/* ---- Ethernet / IPv4 builders ---- */

static uint8_t *eth_put(struct netif *nif, uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, nif->dev->mac, 6);
	put16(f + 12, type);
	return f + ETH_HLEN;
}

/* A 20-byte header; frag = flags | offset/8. Returns the payload start. */
static uint8_t *ip_put(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, uint32_t payload, uint16_t id,
		       uint16_t frag)
{
	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (uint16_t)(IP_HLEN + payload));
	put16(p + 4, id);
	put16(p + 6, frag);
	p[8] = 64;
	p[9] = proto;
	put16(p + 10, 0);
	put32(p + 12, src);
	put32(p + 16, dst);
	put16(p + 10, inet_fold(inet_sum(p, IP_HLEN, 0)));
	return p + IP_HLEN;
}

/* ---- ARP ---- */

static struct arp_entry *arp_find(struct netif *nif, uint32_t ip)
{
	for (unsigned int i = 0; i < ARP_CACHE; i++)
		if (nif->arp[i].valid && nif->arp[i].ip == ip)
			return &nif->arp[i];
	return NULL;
}

static void arp_learn(struct netif *nif, uint32_t ip, const uint8_t *mac, int create)
{
	struct arp_entry *e = arp_find(nif, ip);
	if (!e) {
		if (!create || !ip)
			return;
		e = &nif->arp[nif->arp_next++ % ARP_CACHE];
	}
	e->ip = ip;
	memcpy(e->mac, mac, 6);
	e->valid = 1;
}

static int arp_send(struct netif *nif, uint16_t op, const uint8_t *eth_dst, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *f = netdev_tx_buf(nif->dev);
	if (!f)
		return -1;
	uint8_t *a = eth_put(nif, f, eth_dst, ETHERTYPE_ARP);
	put16(a, 1);             /* Ethernet */
	put16(a + 2, ETHERTYPE_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, nif->dev->mac, 6);
	put32(a + 14, nif->ip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	memset(a + 28, 0, 18); /* pad to the 60-byte minimum */
	netdev_tx_commit(nif->dev, f, ETH_HLEN + 28 + 18);
	nif->tx++;
	return 0;
}

static void arp_input(struct netif *nif, const uint8_t *a, uint32_t len)
{
	if (len < 28 || get16(a) != 1 || get16(a + 2) != ETHERTYPE_IP || a[4] != 6 || a[5] != 4) {
		nif->dropped++;
		return;
	}
	uint16_t op = get16(a + 6);
	uint32_t spa = get32(a + 14), tpa = get32(a + 24);
	const uint8_t *sha = a + 8;
	int for_us = nif->ip && tpa == nif->ip;
	/* RFC 826: update an existing entry always, add one if it is for us. */
	arp_learn(nif, spa, sha, for_us);
	if (op == 1 && for_us) {
		if (arp_send(nif, 2, sha, sha, spa) == 0)
			nif->arp_replies++;
	}
}

static uint32_t next_hop(struct netif *nif, uint32_t ip)
{
	if (nif->gw && nif->mask && (ip & nif->mask) != (nif->ip & nif->mask))
		return nif->gw;
	return ip;
}

int arp_resolve(struct netif *nif, uint32_t ip, uint8_t mac[6], uint64_t timeout_s)
{
	static const uint8_t zero[6];
	uint32_t hop = next_hop(nif, ip);
	struct netdev *d = nif->dev;
	uint64_t t0 = rdtsc(), last = 0, every = d->tsc_hz / 5;
	for (;;) {
		struct arp_entry *e = arp_find(nif, hop);
		if (e) {
			memcpy(mac, e->mac, 6);
			return 0;
		}
		uint64_t now = rdtsc();
		if (now - t0 > timeout_s * d->tsc_hz || !d->ok)
			return -1;
		if (!last || now - last > every) {
			/* Make sure a reply can be learnt: create the entry on the reply. */
			if (arp_send(nif, 1, bcast_mac, zero, hop) < 0)
				return -1;
			netdev_tx_flush(d);
			last = now;
		}
		netif_poll(nif, 64);
		cpu_relax();
	}
}

int arp_request(struct netif *nif, uint32_t ip)
{
	static const uint8_t zero[6];
	return arp_send(nif, 1, bcast_mac, zero, next_hop(nif, ip));
}

int arp_lookup(struct netif *nif, uint32_t ip, uint8_t mac[6])
{
	struct arp_entry *e = arp_find(nif, next_hop(nif, ip));
	if (!e)
		return -1;
	memcpy(mac, e->mac, 6);
	return 0;
}

void arp_add(struct netif *nif, uint32_t ip, const uint8_t mac[6])
{
	arp_learn(nif, ip, mac, 1);
}

/* ---- ICMP ---- */

static void icmp_input(struct netif *nif, const uint8_t *eth_src, uint32_t src, const uint8_t *p, uint32_t len)
{
	if (len < 8 || len > ETH_MTU - IP_HLEN || inet_fold(inet_sum(p, len, 0)) != 0) {
		nif->dropped++; /* (a reply must fit one frame: no fragments) */
		return;
	}
	if (p[0] != 8 || p[1] != 0) /* echo request only */
		return;
	uint8_t *f = netdev_tx_buf(nif->dev);
	if (!f)
		return;
	uint8_t *ip = eth_put(nif, f, eth_src, ETHERTYPE_IP);
	uint8_t *m = ip_put(ip, nif->ip, src, IP_PROTO_ICMP, len, nif->ip_id++, 0);
	memcpy(m, p, len);
	m[0] = 0; /* echo reply */
	put16(m + 2, 0);
	put16(m + 2, inet_fold(inet_sum(m, len, 0)));
	netdev_tx_commit(nif->dev, f, ETH_HLEN + IP_HLEN + len);
	nif->tx++;
	nif->icmp_echo++;
}

/* ---- UDP ---- */

static uint32_t udp_pseudo(uint32_t src, uint32_t dst, uint32_t ulen)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + IP_PROTO_UDP + ulen;
}

static void udp_input(struct netif *nif, const uint8_t *eth_src, uint32_t src, uint32_t dst, const uint8_t *u,
		      uint32_t len)
{
	if (len < UDP_HLEN) {
		nif->dropped++;
		return;
	}
	uint32_t ulen = get16(u + 4);
	if (ulen < UDP_HLEN || ulen > len) {
		nif->dropped++;
		return;
	}
	if (get16(u + 6) && inet_fold(inet_sum(u, ulen, udp_pseudo(src, dst, ulen))) != 0) {
		nif->dropped++;
		return;
	}
	nif->udp_in++;
	if (nif->udp_handler)
		nif->udp_handler(nif, src, get16(u), get16(u + 2), eth_src, u + UDP_HLEN, ulen - UDP_HLEN);
}

unsigned int udp_frames(uint32_t len)
{
	uint32_t total = UDP_HLEN + len;
	return (total + IP_FRAG_DATA - 1) / IP_FRAG_DATA;
}

int udp_send(struct netif *nif, const uint8_t *dst_mac, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
	     uint16_t dport, const uint8_t *payload, uint32_t len)
{
	struct netdev *d = nif->dev;
	uint8_t mac[6];
	if (len > UDP_MAX_PAYLOAD)
		return -1;
	if (!dst_mac) {
		struct arp_entry *e = arp_find(nif, next_hop(nif, dst_ip));
		if (!e)
			return -1;
		memcpy(mac, e->mac, 6);
		dst_mac = mac;
	}
	uint32_t ulen = UDP_HLEN + len;
	uint8_t uh[UDP_HLEN];
	put16(uh, sport);
	put16(uh + 2, dport);
	put16(uh + 4, (uint16_t)ulen);
	put16(uh + 6, 0);
	uint16_t ck = inet_fold(inet_sum(payload, len, inet_sum(uh, UDP_HLEN, udp_pseudo(src_ip, dst_ip, ulen))));
	put16(uh + 6, ck ? ck : 0xffff);

	uint16_t id = nif->ip_id++;
	/* Fragment offsets count the UDP header as data (RFC 791). */
	for (uint32_t off = 0; off < ulen;) {
		uint32_t chunk = ulen - off > IP_FRAG_DATA ? IP_FRAG_DATA : ulen - off;
		int more = off + chunk < ulen;
		uint8_t *f = netdev_tx_buf(d);
		if (!f)
			return -1;
		uint16_t frag = (uint16_t)((off / 8) | (more ? IP_MF : 0) | (!off && !more ? IP_DF : 0));
		uint8_t *p = ip_put(eth_put(nif, f, dst_mac, ETHERTYPE_IP), src_ip, dst_ip, IP_PROTO_UDP, chunk, id, frag);
		uint32_t c = chunk, from = off;
		if (off == 0) {
			memcpy(p, uh, UDP_HLEN);
			p += UDP_HLEN;
			c -= UDP_HLEN;
		} else {
			from -= UDP_HLEN;
		}
		memcpy(p, payload + from, c);
		uint32_t flen = ETH_HLEN + IP_HLEN + chunk;
		if (flen < 60) { /* Ethernet minimum without FCS */
			memset(f + flen, 0, 60 - flen);
			flen = 60;
		}
		netdev_tx_commit(d, f, flen);
		nif->tx++;
		off += chunk;
	}
	return 0;
}

int udp_send_segments(struct netif *nif, const uint8_t *dst_mac, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
		      uint16_t dport, const uint8_t *payload, uint32_t len, uint32_t seg)
{
	struct netdev *d = nif->dev;
	if (!seg || seg > ETH_MTU - IP_HLEN - UDP_HLEN || !dst_mac)
		return -1;
	/* Linux takes a USO packet only when it is more than one segment. */
	if (d->uso && len > seg && len <= UDP_MAX_PAYLOAD && (len + seg - 1) / seg <= UDP_USO_MAX_SEGS) {
		uint8_t *f = netdev_tx_buf(d);
		if (!f)
			return -1;
		uint32_t ulen = UDP_HLEN + len;
		uint8_t *u = ip_put(eth_put(nif, f, dst_mac, ETHERTYPE_IP), src_ip, dst_ip, IP_PROTO_UDP, ulen,
				    nif->ip_id, IP_DF);
		/* The host numbers the segments' IP ids from this one on. */
		nif->ip_id = (uint16_t)(nif->ip_id + (len + seg - 1) / seg);
		put16(u, sport);
		put16(u + 2, dport);
		put16(u + 4, (uint16_t)ulen);
		/* NEEDS_CSUM: the field holds the pseudo-header sum (not complemented), of the
		 * whole datagram's length; the host adjusts it per segment. */
		put16(u + 6, (uint16_t)~inet_fold(udp_pseudo(src_ip, dst_ip, ulen)));
		if (netdev_tx_commit_uso(d, f, ETH_HLEN + IP_HLEN + UDP_HLEN, payload, len, (uint16_t)seg) < 0)
			return -1;
		nif->tx++;
		return 0;
	}
	uint32_t off = 0;
	do { /* (an empty payload is one empty datagram) */
		uint32_t chunk = len - off < seg ? len - off : seg;
		if (udp_send(nif, dst_mac, src_ip, dst_ip, sport, dport, payload + off, chunk) < 0)
			return -1;
		off += chunk;
	} while (off < len);
	return 0;
}

/* ---- IPv4 ---- */

static void ip_input(struct netif *nif, const uint8_t *eth_src, const uint8_t *p, uint32_t len)
{
	if (len < IP_HLEN || p[0] >> 4 != 4) {
		nif->dropped++;
		return;
	}
	uint32_t hl = (p[0] & 15) * 4u, tl = get16(p + 2);
	if (hl < IP_HLEN || tl < hl || tl > len || inet_fold(inet_sum(p, hl, 0)) != 0) {
		nif->dropped++;
		return;
	}
	uint32_t src = get32(p + 12), dst = get32(p + 16);
	int bcast = dst == 0xffffffffu || (nif->mask && dst == (nif->ip | ~nif->mask));
	if (!(nif->ip && dst == nif->ip) && !bcast && !nif->accept_any_ip)
		return;
	if (get16(p + 6) & (IP_MF | 0x1fff)) { /* fragments: not reassembled */
		nif->dropped++;
		return;
	}
	switch (p[9]) {
	case IP_PROTO_ICMP:
		if (nif->ip && dst == nif->ip)
			icmp_input(nif, eth_src, src, p + hl, tl - hl);
		break;
	case IP_PROTO_UDP:
		udp_input(nif, eth_src, src, dst, p + hl, tl - hl);
		break;
	default:
		break;
	}
}

/* ---- Ethernet ---- */

static void eth_input(void *ctx, const uint8_t *f, uint32_t len)
{
	struct netif *nif = ctx;
	nif->rx++;
	if (len < ETH_HLEN) {
		nif->dropped++;
		return;
	}
	if (!mac_eq(f, nif->dev->mac) && !mac_eq(f, bcast_mac))
		return; /* multicast (IPv6 ND, mDNS...) or someone else's */
	switch (get16(f + 12)) {
	case ETHERTYPE_ARP:
		arp_input(nif, f + ETH_HLEN, len - ETH_HLEN);
		break;
	case ETHERTYPE_IP:
		ip_input(nif, f + 6, f + ETH_HLEN, len - ETH_HLEN);
		break;
	default:
		break;
	}
}

void netif_init(struct netif *nif, struct netdev *dev)
{
	memset(nif, 0, sizeof(*nif));
	nif->dev = dev;
	nif->ip_id = (uint16_t)rdtsc();
}

unsigned int netif_poll(struct netif *nif, unsigned int budget)
{
	unsigned int n = netdev_rx_poll(nif->dev, eth_input, nif, budget);
	netdev_tx_flush(nif->dev);
	return n;
}

/* dhcp.c - DHCP client (RFC 2131/2132): DISCOVER -> OFFER -> REQUEST ->
 * ACK, broadcast both ways (we have no address yet and set the BROADCAST
 * flag). Takes yiaddr, the subnet mask (1), router (3), lease time (51)
 * and server identifier (54). Each step waits timeout_s; a round that
 * gets no OFFER/ACK (or a NAK) starts over with a new xid. */
#include "kit.h"
#include "net.h"

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_MAGIC       0x63825363u
#define DHCP_FIXED       236 /* op .. file */
#define DHCP_MIN_LEN     300 /* BOOTP minimum, some servers insist */

#define DHCPDISCOVER 1
#define DHCPOFFER    2
#define DHCPREQUEST  3
#define DHCPACK      5
#define DHCPNAK      6

#define OPT_PAD       0
#define OPT_MASK      1
#define OPT_ROUTER    3
#define OPT_REQ_IP    50
#define OPT_LEASE     51
#define OPT_MSG_TYPE  53
#define OPT_SERVER_ID 54
#define OPT_PARAMS    55
#define OPT_CLIENT_ID 61
#define OPT_END       255

static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct dhcp_state {
	uint32_t xid;
	int got;            /* message type received for this xid, 0 = none */
	struct dhcp_lease in; /* what that message said */
};

static struct dhcp_state *cur;

/* Parse a server reply for our xid and MAC into cur (first one wins). */
static void dhcp_udp(struct netif *nif, uint32_t src_ip, uint16_t src_port, uint16_t dst_port,
		     const uint8_t *src_mac, const uint8_t *m, uint32_t len)
{
	(void)src_ip;
	(void)src_mac;
	if (!cur || cur->got || src_port != DHCP_SERVER_PORT || dst_port != DHCP_CLIENT_PORT ||
	    len < DHCP_FIXED + 4 || m[0] != 2 || m[1] != 1 || m[2] != 6 || get32(m + 4) != cur->xid ||
	    memcmp(m + 28, nif->dev->mac, 6) != 0 || get32(m + DHCP_FIXED) != DHCP_MAGIC)
		return;
	struct dhcp_lease l;
	memset(&l, 0, sizeof(l));
	l.ip = get32(m + 16);
	int type = 0;
	for (uint32_t i = DHCP_FIXED + 4; i < len;) {
		uint8_t opt = m[i];
		if (opt == OPT_END)
			break;
		if (opt == OPT_PAD) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + m[i + 1] > len)
			break;
		uint8_t ol = m[i + 1];
		const uint8_t *v = m + i + 2;
		switch (opt) {
		case OPT_MSG_TYPE:
			if (ol >= 1)
				type = v[0];
			break;
		case OPT_MASK:
			if (ol >= 4)
				l.mask = get32(v);
			break;
		case OPT_ROUTER:
			if (ol >= 4)
				l.router = get32(v); /* the first router */
			break;
		case OPT_LEASE:
			if (ol >= 4)
				l.lease_s = get32(v);
			break;
		case OPT_SERVER_ID:
			if (ol >= 4)
				l.server = get32(v);
			break;
		default:
			break;
		}
		i += 2u + ol;
	}
	if (type == DHCPOFFER || type == DHCPACK || type == DHCPNAK) {
		cur->got = type;
		cur->in = l;
	}
}

static int dhcp_send(struct netif *nif, uint32_t xid, uint8_t type, const struct dhcp_lease *offer, uint16_t secs)
{
	uint8_t m[DHCP_MIN_LEN];
	memset(m, 0, sizeof(m));
	m[0] = 1; /* BOOTREQUEST */
	m[1] = 1;
	m[2] = 6;
	put32(m + 4, xid);
	put16(m + 8, secs);
	put16(m + 10, 0x8000); /* BROADCAST: we cannot take unicast before we have the address */
	memcpy(m + 28, nif->dev->mac, 6);
	put32(m + DHCP_FIXED, DHCP_MAGIC);
	uint8_t *o = m + DHCP_FIXED + 4;
	*o++ = OPT_MSG_TYPE;
	*o++ = 1;
	*o++ = type;
	*o++ = OPT_CLIENT_ID;
	*o++ = 7;
	*o++ = 1;
	memcpy(o, nif->dev->mac, 6);
	o += 6;
	if (type == DHCPREQUEST) {
		*o++ = OPT_REQ_IP;
		*o++ = 4;
		put32(o, offer->ip);
		o += 4;
		*o++ = OPT_SERVER_ID;
		*o++ = 4;
		put32(o, offer->server);
		o += 4;
	}
	*o++ = OPT_PARAMS;
	*o++ = 4;
	*o++ = OPT_MASK;
	*o++ = OPT_ROUTER;
	*o++ = OPT_LEASE;
	*o++ = OPT_SERVER_ID;
	*o++ = OPT_END;
	if (udp_send(nif, bcast_mac, 0, 0xffffffffu, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, m, sizeof(m)) < 0)
		return -1;
	netdev_tx_flush(nif->dev);
	return 0;
}

/* Poll until cur->got or timeout_s. */
static int dhcp_wait(struct netif *nif, uint64_t timeout_s)
{
	uint64_t t0 = rdtsc(), limit = timeout_s * nif->dev->tsc_hz;
	while (!cur->got) {
		if (rdtsc() - t0 > limit || !nif->dev->ok)
			return 0;
		netif_poll(nif, 64);
		cpu_relax();
	}
	return cur->got;
}

int dhcp_run(struct netif *nif, struct dhcp_lease *l, unsigned int tries, uint64_t timeout_s, const char **why)
{
	struct dhcp_state st;
	udp_fn saved = nif->udp_handler;
	uint64_t t_start = rdtsc();
	int ok = 0;
	*why = "no-offer";
	memset(l, 0, sizeof(*l));
	cur = &st;
	nif->udp_handler = dhcp_udp;
	nif->accept_any_ip = 1;
	for (unsigned int a = 0; a < tries && !ok && nif->dev->ok; a++) {
		l->attempts = a + 1;
		memset(&st, 0, sizeof(st));
		st.xid = (uint32_t)(rdtsc() >> 4) ^ 0x6b697400u ^ a;
		uint16_t secs = (uint16_t)((rdtsc() - t_start) / nif->dev->tsc_hz);
		if (dhcp_send(nif, st.xid, DHCPDISCOVER, NULL, secs) < 0) {
			*why = "tx-failed";
			break;
		}
		if (dhcp_wait(nif, timeout_s) != DHCPOFFER || !st.in.ip) {
			*why = "no-offer";
			continue;
		}
		struct dhcp_lease offer = st.in;
		st.got = 0;
		if (dhcp_send(nif, st.xid, DHCPREQUEST, &offer, secs) < 0) {
			*why = "tx-failed";
			break;
		}
		int r = dhcp_wait(nif, timeout_s);
		if (r == DHCPACK && st.in.ip == offer.ip) {
			*l = st.in;
			l->attempts = a + 1;
			if (!l->server)
				l->server = offer.server;
			ok = 1;
		} else {
			*why = r == DHCPNAK ? "nak" : "no-ack";
		}
	}
	cur = NULL;
	nif->udp_handler = saved;
	nif->accept_any_ip = 0;
	if (!ok)
		return -1;
	if (!l->mask)
		l->mask = 0xffffff00u;
	nif->ip = l->ip;
	nif->mask = l->mask;
	nif->gw = l->router;
	*why = NULL;
	return 0;
}

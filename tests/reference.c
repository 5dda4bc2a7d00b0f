// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The reference classifier (see reference.h). Deliberately simple and slow: it parses with
 * byte offsets, finds an address's roles by testing every site prefix, and a rule by
 * scanning every rule of the matrix, every time.
 *
 * What it implements, from the documentation (README.md, maps/README.md):
 *  - parse: Ethernet, at most two VLAN tags (0x8100, 0x88a8; a third tag is "non-IP"), IPv4
 *    (IHL and total length checked), IPv6 with hop-by-hop, routing, destination options and
 *    fragment headers (at most six extension headers, the program's limit), TCP, UDP,
 *    ICMP (protocol 1 in IPv4) and ICMPv6 (58 in IPv6). A header that does not fit in the
 *    IP datagram (as its length field says) is truncated: malformed.
 *  - roles of an address: the roles of every site prefix containing it, plus includes=.
 *  - classification: both ends. The destination's rule (listen / outbound-from rules by
 *    destination port, else outbound-to rules by source port: "in") and the source's (listen
 *    / outbound-from by source port, else outbound-to by destination port: "out"). Rules
 *    are ordered by: a rule of a role that is not `client` first, then the smallest port
 *    range, then the earlier line; the best of each table, then the better of the two ends
 *    (the destination's when it is the same rule). A client role's rule counts only when
 *    both ends hold a role, neither is multicast (IPv4 224.0.0.0 and up, IPv6 ff00::/8) and
 *    neither is the last address of a listed IPv4 prefix of /30 or shorter (its broadcast
 *    address) that no listed /31 or /32 names. A packet to a protected address that no
 *    destination-side rule takes is judged by the destination alone: the source side is
 *    not classified (it counts as unclassified).
 *  - enforce, for packets to an address holding a protected role: a listen rule of the
 *    destination passes (one with `from ROLE,...` only from an address holding one of those
 *    roles, else "source"); an outbound rule of the destination passes only on a live flow that
 *    the protected host opened (5-tuple; TCP FIN/RST switch the flow to the closing timeout
 *    when they fit the connection, see below); such a reply never refreshes the flow;
 *    an ICMP error (IPv4 3, 11, 12; ICMPv6 1-4) passes only when the TCP/UDP packet it quotes
 *    was sent by the destination from a port a listen rule of it admits toward that peer, or
 *    on a live flow it opened, else "icmp-unrelated"; other ICMP passes when the matrix's or
 *    the site's allow list has it, an ICMPv6 router advertisement or redirect then only with
 *    hop limit 255 from fe80::/10, else "icmp-offlink"; a later fragment follows
 *    its first fragment (same source, destination, protocol, id), else "fragment"; a
 *    malformed packet is "malformed"; any other protocol "transport"; a TCP/UDP port that no
 *    rule accepts is "transport" when a listen rule of the destination has it on the other
 *    transport, else "port". Non-IP frames always pass.
 *  - flows are opened (refreshed) by a protected host's TCP/UDP packets when one of its
 *    outbound rules covers them: outbound-from by its own port, outbound-to by the peer's;
 *    a FIN or RST refreshes and closes a live flow, but never opens one. A packet from a
 *    port whose winning rule is one the host listens on is a reply: it touches no flow.
 *  - nat (site `nat PUBLIC PRIVATE`): the public address holds the private host's roles;
 *    flows are keyed by private addresses (a public destination is translated); a packet
 *    from a public address that would open, refresh or close a flow is "spoofed".
 *  - TCP closing (README, "TCP closing"): the host's packets with ACK set record their ACK
 *    number and window; its SYN without ACK records seq + 1 and clears the closing mark. A
 *    FIN or RST from the remote side closes the flow only when it fits: after the host's
 *    SYN, a RST with ACK acknowledging it; after the host's ACK, the RST's sequence number
 *    (a FIN's: sequence number plus payload length) in [ack, ack + max(window, 1)), modulo
 *    2^32; before either, nothing fits.
 *  - side: such a packet (one that would open, refresh or close a flow) arriving on an
 *    interface declared unprotected is "spoofed" (and touches no flow), unless its flow is
 *    live and was seen on that same interface before; the policy for a protected
 *    destination is then not asked.
 *  - tag: classified packets that pass leave with their rule's service DSCP (site override),
 *    ECN kept, IPv4 checksum updated (RFC 1624 eqn. 3). A media service whose DSCP is `-`
 *    (mixed) takes the DSCP of what its UDP packet carries, once an RTP stream is confirmed.
 *  - media (README "Media and call quality"): a media service's UDP payload is STUN, DTLS,
 *    RTCP, RTP of a maps/media payload type (audio, video, sharing) in a stream confirmed by
 *    two packets of one 5-tuple and SSRC in sequence, or other; TURN ChannelData is unwrapped.
 */
#include "reference.h"

#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAX_EXT_HDRS 6 /* IPv6 extension headers the program follows */

/* ---- a small hash table: fixed-size keys and values, linear probing, no deletion ---- */

struct ref_table {
	size_t keysize, valsize, cap, n;
	uint8_t *used, *keys, *vals;
};

static struct ref_table *table_new(size_t keysize, size_t valsize, size_t cap)
{
	struct ref_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->keysize = keysize;
	t->valsize = valsize;
	t->cap = cap;
	t->used = calloc(cap, 1);
	t->keys = calloc(cap, keysize);
	t->vals = calloc(cap, valsize);
	if (!t->used || !t->keys || !t->vals) {
		free(t->used);
		free(t->keys);
		free(t->vals);
		free(t);
		return NULL;
	}
	return t;
}

static void table_free(struct ref_table *t)
{
	if (!t)
		return;
	free(t->used);
	free(t->keys);
	free(t->vals);
	free(t);
}

static void table_clear(struct ref_table *t)
{
	memset(t->used, 0, t->cap);
	t->n = 0;
}

static size_t table_slot(const struct ref_table *t, const void *key)
{
	const uint8_t *k = key;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < t->keysize; i++) {
		h ^= k[i];
		h *= 0x100000001b3ULL;
	}
	size_t i = (size_t)(h % t->cap);
	while (t->used[i] && memcmp(t->keys + i * t->keysize, key, t->keysize))
		i = (i + 1) % t->cap;
	return i;
}

static void *table_get(const struct ref_table *t, const void *key)
{
	size_t i = table_slot(t, key);
	return t->used[i] ? t->vals + i * t->valsize : NULL;
}

/* Returns -1 when full (the caller keeps the tables far below their size). */
static int table_put(struct ref_table *t, const void *key, const void *val)
{
	size_t i = table_slot(t, key);
	if (!t->used[i]) {
		if (t->n + 1 >= t->cap)
			return -1;
		t->used[i] = 1;
		t->n++;
		memcpy(t->keys + i * t->keysize, key, t->keysize);
	}
	memcpy(t->vals + i * t->valsize, val, t->valsize);
	return 0;
}

/* ---- set up ---- */

int ref_init(struct ref *r, const struct matrix *m, const struct site *s,
	     const struct ref_timeouts *t)
{
	memset(r, 0, sizeof(*r));
	r->m = m;
	r->s = s;
	r->timeouts = *t;
	r->dscp = calloc((size_t)m->nrules + 1, sizeof(int));
	r->tally.rules = calloc(((size_t)m->nrules + 1) * LX_DIR_MAX, sizeof(struct ref_count));
	r->tally.remarked = calloc(((size_t)m->nrules + 1) * LX_DIR_MAX, sizeof(struct ref_count));
	r->flows = table_new(sizeof(struct ref_flow_key), sizeof(struct ref_flow), 1u << 17);
	r->frags = table_new(sizeof(struct ref_frag_key), sizeof(struct ref_frag), 1u << 15);
	r->streams = table_new(sizeof(struct ref_stream_key), sizeof(struct ref_stream), 1u << 17);
	if (!r->dscp || !r->tally.rules || !r->tally.remarked || !r->flows || !r->frags ||
	    !r->streams) {
		ref_free(r);
		return -1;
	}
	/* The service's DSCP, unless the site sets one for that service. */
	for (int i = 0; i < m->nrules; i++) {
		int service = m->rules[i].service;
		r->dscp[i] = m->services[service].dscp;
		for (int k = 0; k < s->ndscp; k++)
			if (s->dscp[k].service == service)
				r->dscp[i] = s->dscp[k].dscp;
	}
	return 0;
}

void ref_free(struct ref *r)
{
	free(r->dscp);
	free(r->tally.rules);
	free(r->tally.remarked);
	table_free(r->flows);
	table_free(r->frags);
	table_free(r->streams);
	memset(r, 0, sizeof(*r));
}

void ref_set_media(struct ref *r, const uint8_t *media_rule, const uint8_t *media_dscp,
		   const uint8_t *pt_kind)
{
	r->media_rule = media_rule;
	memcpy(r->media_dscp, media_dscp, sizeof(r->media_dscp));
	memcpy(r->pt_kind, pt_kind, sizeof(r->pt_kind));
}

void ref_set_mode(struct ref *r, uint32_t policy, uint32_t tag)
{
	r->policy = policy;
	r->tag = tag;
}

void ref_clear_state(struct ref *r)
{
	table_clear(r->flows);
	table_clear(r->frags);
	table_clear(r->streams);
}

size_t ref_nflows(const struct ref *r)
{
	return r->flows->n;
}

size_t ref_nstreams(const struct ref *r)
{
	return r->streams->n;
}

size_t ref_nfrags(const struct ref *r)
{
	return r->frags->n;
}

/* ---- the packet parser ---- */

static unsigned be16(const uint8_t *b)
{
	return (unsigned)b[0] << 8 | b[1];
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void malformed(struct ref_pkt *p, const char *why)
{
	p->kind = REF_MALFORMED;
	p->why = why;
}

/* The upper-layer header: l4 points at it, avail bytes of the datagram follow. */
static void parse_l4(struct ref_pkt *p, const uint8_t *l4, size_t avail)
{
	int proto = p->ipproto;
	if (proto == 6) { /* TCP */
		if (avail < 20)
			return malformed(p, "TCP header cut short");
		unsigned doff = l4[12] >> 4;
		if (doff < 5)
			return malformed(p, "TCP data offset below 5");
		if (doff * 4 > avail)
			return malformed(p, "TCP header (data offset) longer than the packet");
		p->kind = REF_PORTS;
		p->proto = LX_PROTO_TCP;
		p->sport = (uint16_t)be16(l4);
		p->dport = (uint16_t)be16(l4 + 2);
		p->tcp_flags = l4[13];
		p->tcp_seq = be32(l4 + 4);
		p->tcp_ack = be32(l4 + 8);
		p->tcp_win = (uint16_t)be16(l4 + 14);
		p->udp_payload = l4 + doff * 4;
		p->udp_payload_len = avail - doff * 4;
		return;
	}
	if (proto == 17) { /* UDP */
		if (avail < 8)
			return malformed(p, "UDP header cut short");
		p->kind = REF_PORTS;
		p->proto = LX_PROTO_UDP;
		p->udp_payload = l4 + 8;
		p->udp_payload_len = avail - 8;
		p->sport = (uint16_t)be16(l4);
		p->dport = (uint16_t)be16(l4 + 2);
		return;
	}
	if (proto == (p->family == 4 ? 1 : 58)) { /* ICMP in IPv4, ICMPv6 in IPv6 */
		if (avail < 4)			  /* type, code, checksum */
			return malformed(p, "ICMP header cut short");
		p->kind = REF_ICMP;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		p->icmp = l4;
		p->icmp_len = avail;
		return;
	}
	p->kind = REF_OTHER_L4;
}

static void parse_ipv4(struct ref_pkt *p, const uint8_t *ip, size_t avail)
{
	if (avail < 20)
		return malformed(p, "IPv4 header cut short");
	p->have_addrs = 1;
	p->family = 4;
	memcpy(p->saddr, ip + 12, 4);
	memcpy(p->daddr, ip + 16, 4);
	if (ip[0] >> 4 != 4)
		return malformed(p, "IP version is not 4");
	size_t hlen = (size_t)(ip[0] & 0x0f) * 4;
	size_t total = be16(ip + 2);
	if (hlen < 20)
		return malformed(p, "IHL below 5");
	if (total < hlen)
		return malformed(p, "total length shorter than the header");
	if (total > avail)
		return malformed(p, "total length beyond the frame");
	size_t end = total;

	p->ipproto = ip[9];
	p->frag_id = be16(ip + 4);
	p->frag_proto = ip[9];
	unsigned frag = be16(ip + 6);
	if (frag & 0x1fff) {
		p->kind = REF_LATER_FRAG;
		p->frag_len = total - hlen;
		return;
	}
	p->first_frag = (frag & 0x2000) != 0;
	parse_l4(p, ip + hlen, end - hlen);
}

static int is_ext_header(int nh)
{
	return nh == 0 || nh == 43 || nh == 60 ||
	       nh == 44; /* hop-by-hop, routing, dst opts, frag */
}

static void parse_ipv6(struct ref_pkt *p, const uint8_t *ip, size_t avail)
{
	if (avail < 40)
		return malformed(p, "IPv6 header cut short");
	p->have_addrs = 1;
	p->family = 6;
	memcpy(p->saddr, ip + 8, 16);
	memcpy(p->daddr, ip + 24, 16);
	p->hop_limit = ip[7];
	if (ip[0] >> 4 != 6)
		return malformed(p, "IP version is not 6");
	size_t plen = be16(ip + 4);
	if (40 + plen > avail)
		return malformed(p, "payload length beyond the frame");
	size_t end = 40 + plen;

	int nh = ip[6];
	size_t pos = 40;
	int next = 0; /* extension headers read */
	while (is_ext_header(nh)) {
		if (next == REF_MAX_EXT_HDRS)
			return malformed(p, "more than 6 IPv6 extension headers");
		if (pos > end || end - pos < 8)
			return malformed(p, "IPv6 extension header cut short");
		if (nh == 44) {
			unsigned off = be16(ip + pos + 2);
			p->frag_id = be32(ip + pos + 4);
			p->frag_proto = ip[pos];
			p->ipproto = ip[pos];
			if (off & 0xfff8) {
				p->kind = REF_LATER_FRAG;
				p->frag_len = end - pos - 8;
				return;
			}
			if (off & 1)
				p->first_frag = 1;
			nh = ip[pos];
			pos += 8;
		} else {
			size_t hlen = ((size_t)ip[pos + 1] + 1) * 8;
			if (hlen > end - pos)
				return malformed(p, "IPv6 extension header longer than the packet");
			nh = ip[pos];
			pos += hlen;
		}
		if (++next > REF_MAX_EXT_HDRS)
			return malformed(p, "more than 6 IPv6 extension headers");
	}
	p->ipproto = nh;
	parse_l4(p, ip + pos, end - pos);
}

void ref_parse(const uint8_t *f, size_t len, struct ref_pkt *p)
{
	memset(p, 0, sizeof(*p));
	p->frag_proto = -1;
	if (len < 14)
		return malformed(p, "shorter than an Ethernet header");
	size_t off = 14;
	unsigned type = be16(f + 12);
	int tags = 0;
	while (type == 0x8100 || type == 0x88a8) {
		if (tags == 2) {
			p->kind = REF_NON_IP; /* a third tag: not parsed */
			return;
		}
		if (len - off < 4)
			return malformed(p, "VLAN tag cut short");
		type = be16(f + off + 2);
		off += 4;
		tags++;
	}
	p->ip_off = off;
	if (type == 0x0800)
		parse_ipv4(p, f + off, len - off);
	else if (type == 0x86dd)
		parse_ipv6(p, f + off, len - off);
	else
		p->kind = REF_NON_IP;
}

/* ---- roles and rules ---- */

static int prefix_contains(const struct site_prefix *pfx, int family, const uint8_t *addr)
{
	if (pfx->family != family)
		return 0;
	for (int bit = 0; bit < pfx->len; bit++) {
		int mask = 0x80 >> (bit % 8);
		if ((pfx->addr[bit / 8] & mask) != (addr[bit / 8] & mask))
			return 0;
	}
	return 1;
}

uint64_t ref_roles_of(const struct ref *r, int family, const uint8_t *addr)
{
	/* A NAT'd public address is its private host (site `nat`), whatever prefix holds it. */
	const uint8_t *inside = site_nat_private(r->s, family, addr);
	if (inside)
		addr = inside;
	uint64_t roles = 0;
	for (int i = 0; i < r->s->nprefixes; i++)
		if (prefix_contains(&r->s->prefixes[i], family, addr))
			roles |= r->s->prefixes[i].roles;
	return matrix_role_closure(r->m, roles);
}

static int client_rule(const struct ref *r, uint32_t rule)
{
	return r->m->roles[r->m->rules[rule - 1].role].client;
}

/* 1 when rule a (1-based) goes before rule b: not a client rule, narrower, earlier line. */
static int better(const struct ref *r, uint32_t a, uint32_t b)
{
	const struct matrix_rule *x = &r->m->rules[a - 1], *y = &r->m->rules[b - 1];
	if (client_rule(r, a) != client_rule(r, b))
		return !client_rule(r, a);
	unsigned wa = (unsigned)x->port_hi - x->port_lo, wb = (unsigned)y->port_hi - y->port_lo;
	if (wa != wb)
		return wa < wb;
	return a < b;
}

/* The winning rule (1-based id) among the rules of `roles` in one table, 0 if none. */
static uint32_t best_rule(const struct ref *r, uint64_t roles, int proto, unsigned port,
			  int outbound_to)
{
	uint32_t best = 0;
	for (int i = 0; i < r->m->nrules; i++) {
		const struct matrix_rule *rule = &r->m->rules[i];
		if (rule->proto != proto || (rule->kind == LX_KIND_OUTBOUND_TO) != outbound_to ||
		    !(roles & (1ULL << rule->role)) || port < rule->port_lo || port > rule->port_hi)
			continue;
		if (!best || better(r, (uint32_t)i + 1, best))
			best = (uint32_t)i + 1;
	}
	return best;
}

/* Can this address be a client's peer: it holds a role and is one unicast host. */
int ref_is_peer(const struct ref *r, int family, const uint8_t *addr)
{
	if (!ref_roles_of(r, family, addr))
		return 0;
	if (site_nat_private(r->s, family, addr))
		return 1; /* a host the site named (never multicast) */
	if (family == 6)
		return addr[0] != 0xff;
	if (addr[0] >= 224)
		return 0;
	int broadcast = 0, named = 0;
	for (int i = 0; i < r->s->nprefixes; i++) {
		const struct site_prefix *p = &r->s->prefixes[i];
		if (!prefix_contains(p, 4, addr))
			continue;
		if (p->len > 30) {
			named = 1;
			continue;
		}
		int last = 1; /* every host bit of addr set */
		for (int bit = p->len; bit < 32; bit++)
			last &= (addr[bit / 8] >> (7 - bit % 8)) & 1;
		broadcast |= last;
	}
	return !broadcast || named;
}

static int any_rule(const struct ref *r, uint64_t roles, int proto, unsigned port, int kind)
{
	for (int i = 0; i < r->m->nrules; i++) {
		const struct matrix_rule *rule = &r->m->rules[i];
		if (rule->kind == kind && rule->proto == proto && (roles & (1ULL << rule->role)) &&
		    port >= rule->port_lo && port <= rule->port_hi)
			return 1;
	}
	return 0;
}

static int icmp_allowed(const struct matrix_icmp *list, int n, int family, int type, int code)
{
	for (int i = 0; i < n; i++)
		if (list[i].family == family && list[i].type == type &&
		    (list[i].code == MATRIX_ICMP_ANY || list[i].code == code))
			return 1;
	return 0;
}

void ref_rule_text(const struct ref *r, uint32_t rule, char *buf, size_t len)
{
	if (!rule || rule > (uint32_t)r->m->nrules) {
		snprintf(buf, len, "-");
		return;
	}
	const struct matrix_rule *x = &r->m->rules[rule - 1];
	snprintf(buf, len, "#%u %s %s %s %u-%u %s (line %d)", rule, r->m->roles[x->role].slug,
		 r->m->services[x->service].slug, matrix_proto_name(x->proto), x->port_lo,
		 x->port_hi, matrix_kind_name(x->kind), x->line);
}

/* ---- state: flows and fragments, with the updates of the packet being decided ---- */

static const struct ref_flow *flow_get(const struct ref *r, const struct ref_updates *u,
				       const struct ref_flow_key *k)
{
	for (int i = u->nflows - 1; i >= 0; i--)
		if (!memcmp(&u->flow_key[i], k, sizeof(*k)))
			return &u->flow[i];
	return table_get(r->flows, k);
}

static void flow_set(struct ref_updates *u, const struct ref_flow_key *k, const struct ref_flow *f)
{
	for (int i = 0; i < u->nflows; i++)
		if (!memcmp(&u->flow_key[i], k, sizeof(*k))) {
			u->flow[i] = *f;
			return;
		}
	u->flow_key[u->nflows] = *k;
	u->flow[u->nflows++] = *f;
}

/* Has the flow timed out at `now`? Ambiguous cases take the next bit of `choices`. */
static int flow_expired(const struct ref *r, const struct ref_flow *f, int proto,
			struct ref_time now, uint32_t choices, struct ref_decision *d)
{
	uint64_t timeout = f->closing		   ? r->timeouts.tcp_closing
			   : proto == LX_PROTO_TCP ? r->timeouts.tcp
						   : r->timeouts.udp;
	uint64_t least = now.lo > f->last.hi ? now.lo - f->last.hi : 0;
	uint64_t most = now.hi > f->last.lo ? now.hi - f->last.lo : 0;
	if (least > timeout)
		return 1;
	if (most <= timeout)
		return 0;
	return (choices >> d->ambiguous++) & 1;
}

/* Flows are keyed by private addresses: a NAT'd public destination is its private host (a
 * public source never gets this far: it is spoofed). r NULL: the addresses as they are (the
 * ICMP error's quoted packet translates its own source). */
static void flow_key(const struct ref *r, const struct ref_pkt *p, int local_is_src,
		     struct ref_flow_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)p->family;
	k->proto = (uint8_t)p->proto;
	k->lport = local_is_src ? p->sport : p->dport;
	k->rport = local_is_src ? p->dport : p->sport;
	const uint8_t *dst = r ? site_nat_private(r->s, p->family, p->daddr) : NULL;
	if (!dst)
		dst = p->daddr;
	memcpy(k->laddr, local_is_src ? p->saddr : dst, 16);
	memcpy(k->raddr, local_is_src ? dst : p->saddr, 16);
}

/* The host's own TCP packet: what it acknowledges and advertises, or its SYN. */
static void host_tcp(struct ref_flow *f, const struct ref_pkt *p)
{
	if (p->proto != LX_PROTO_TCP)
		return;
	if (p->tcp_flags & 0x10) { /* ACK */
		f->tcp_state = LX_TCP_SYNCED;
		f->rcv_nxt = p->tcp_ack;
		f->rcv_wnd = p->tcp_win;
	} else if (p->tcp_flags & 0x02) { /* SYN: a new connection */
		f->tcp_state = LX_TCP_SYN_SENT;
		f->rcv_nxt = p->tcp_seq + 1;
		f->closing = 0;
	}
}

/* Does the remote side's FIN or RST fit the connection the host's packets describe? */
static int remote_close_fits(const struct ref_flow *f, const struct ref_pkt *p)
{
	int rst = (p->tcp_flags & 0x04) != 0, ack = (p->tcp_flags & 0x10) != 0;
	if (f->tcp_state == LX_TCP_SYN_SENT)
		return rst && ack && p->tcp_ack == f->rcv_nxt;
	if (f->tcp_state != LX_TCP_SYNCED)
		return 0;
	uint32_t at = rst ? p->tcp_seq : p->tcp_seq + (uint32_t)p->udp_payload_len;
	uint64_t window = f->rcv_wnd ? f->rcv_wnd : 1;
	return (uint32_t)(at - f->rcv_nxt) < window;
}

/* 30 s, the kernel's ipfrag_time (a test run never comes near it: no ambiguity). */
static int frag_expired(const struct ref_frag *f, struct ref_time now)
{
	return now.lo > f->first.hi && now.lo - f->first.hi > 30000000000ULL;
}

static void frag_key(const struct ref_pkt *p, struct ref_frag_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)p->family;
	k->proto = (uint8_t)p->frag_proto;
	k->id = p->frag_id;
	memcpy(k->saddr, p->saddr, 16);
	memcpy(k->daddr, p->daddr, 16);
}

/* ---- ICMP to a protected host (README "ICMP errors and neighbour discovery") ---- */

/* IPv4 destination unreachable, time exceeded, parameter problem; ICMPv6 1-4. */
static int icmp_is_error(const struct ref_pkt *p)
{
	int t = p->icmp_type;
	return p->family == 4 ? t == 3 || t == 11 || t == 12 : t >= 1 && t <= 4;
}

/*
 * An error quoting a TCP/UDP packet the destination sent (its address the quoted source; the
 * IP header and 8 bytes of the transport header inside the message; IPv4 not a later
 * fragment, IPv6 without extension headers), from a port a listen rule of the destination
 * has (one with `from` only toward a peer holding one of those roles), or on a live flow
 * the destination opened (a NAT'd public source read as its private host). Nothing is
 * refreshed.
 */
static int icmp_related(const struct ref *r, const struct ref_pkt *p, uint64_t dst_roles,
			struct ref_time now, uint32_t choices, struct ref_decision *d,
			struct ref_updates *u)
{
	if (p->icmp_len < 8)
		return 0;
	const uint8_t *q = p->icmp + 8;
	size_t room = p->icmp_len - 8, hlen;
	struct ref_pkt in;
	memset(&in, 0, sizeof(in));
	in.family = p->family;
	if (p->family == 4) {
		if (room < 20 || q[0] >> 4 != 4 || (q[0] & 0x0f) < 5 || (be16(q + 6) & 0x1fff))
			return 0;
		hlen = (size_t)(q[0] & 0x0f) * 4;
		in.ipproto = q[9];
		memcpy(in.saddr, q + 12, 4);
		memcpy(in.daddr, q + 16, 4);
	} else {
		if (room < 40 || q[0] >> 4 != 6)
			return 0;
		hlen = 40;
		in.ipproto = q[6];
		memcpy(in.saddr, q + 8, 16);
		memcpy(in.daddr, q + 24, 16);
	}
	if (room < hlen + 8 || (in.ipproto != 6 && in.ipproto != 17))
		return 0;
	if (memcmp(in.saddr, p->daddr, 16))
		return 0;
	in.proto = in.ipproto == 6 ? LX_PROTO_TCP : LX_PROTO_UDP;
	in.sport = (uint16_t)be16(q + hlen);
	in.dport = (uint16_t)be16(q + hlen + 2);
	uint32_t own = best_rule(r, dst_roles, in.proto, in.sport, 0);
	if (own && r->m->rules[own - 1].kind == LX_KIND_LISTEN) {
		uint64_t from = r->m->rules[own - 1].from_roles;
		if (!from || (ref_roles_of(r, in.family, in.daddr) & from))
			return d->icmp_related = 1;
	}
	struct ref_flow_key k;
	flow_key(NULL, &in, 1, &k);
	/* Behind the 1:1 NAT the quote carries the public source; flows know the private one. */
	const uint8_t *inside = site_nat_private(r->s, in.family, in.saddr);
	if (inside)
		memcpy(k.laddr, inside, 16);
	const struct ref_flow *f = flow_get(r, u, &k);
	if (f && !flow_expired(r, f, in.proto, now, choices, d))
		return d->icmp_related = 2;
	return 0;
}

/* Errors by their relation; the rest by the allow lists, router advertisements and
 * redirects then only from the link (hop limit 255, source fe80::/10). */
static uint32_t icmp_policy(const struct ref *r, const struct ref_pkt *p, uint64_t dst_roles,
			    struct ref_time now, uint32_t choices, struct ref_decision *d,
			    struct ref_updates *u)
{
	if (icmp_is_error(p))
		return icmp_related(r, p, dst_roles, now, choices, d, u) ? LX_DROP_NONE
									 : LX_DROP_ICMP_UNRELATED;
	if (!icmp_allowed(r->m->icmp, r->m->nicmp, p->family, p->icmp_type, p->icmp_code) &&
	    !icmp_allowed(r->s->icmp, r->s->nicmp, p->family, p->icmp_type, p->icmp_code))
		return LX_DROP_TRANSPORT;
	int router = p->family == 6 && (p->icmp_type == 134 || p->icmp_type == 137);
	int link = p->hop_limit == 255 && p->saddr[0] == 0xfe && (p->saddr[1] & 0xc0) == 0x80;
	return router && !link ? LX_DROP_ICMP_OFFLINK : LX_DROP_NONE;
}

/* ---- DSCP ---- */

static unsigned dscp_of(const uint8_t *frame, const struct ref_pkt *p)
{
	const uint8_t *ip = frame + p->ip_off;
	if (p->family == 4)
		return ip[1] >> 2;
	return (((unsigned)(ip[0] & 0x0f) << 4) | ip[1] >> 4) >> 2;
}

/* Writes the DSCP into out, keeping ECN; returns 1 when a byte changed. */
static int rewrite_dscp(uint8_t *frame, const struct ref_pkt *p, unsigned dscp)
{
	uint8_t *ip = frame + p->ip_off;
	if (p->family == 4) {
		uint8_t tos = (uint8_t)(dscp << 2 | (ip[1] & 3));
		if (tos == ip[1])
			return 0;
		/* RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m'), m the 16-bit word holding the TOS. */
		uint32_t old_word = be16(ip), new_word = (uint32_t)ip[0] << 8 | tos;
		uint32_t sum = (~be16(ip + 10) & 0xffff) + (~old_word & 0xffff) + new_word;
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		sum = ~sum & 0xffff;
		ip[1] = tos;
		ip[10] = (uint8_t)(sum >> 8);
		ip[11] = (uint8_t)sum;
		return 1;
	}
	unsigned tc = (unsigned)(ip[0] & 0x0f) << 4 | ip[1] >> 4;
	unsigned new_tc = dscp << 2 | (tc & 3);
	if (new_tc == tc)
		return 0;
	ip[0] = (uint8_t)((ip[0] & 0xf0) | new_tc >> 4);
	ip[1] = (uint8_t)((new_tc & 0x0f) << 4 | (ip[1] & 0x0f));
	return 1;
}

/* ---- the decision ---- */

static const uint32_t counter_of_kind[] = {
	[REF_PORTS] = LX_CNT_UNCLASSIFIED,  [REF_NON_IP] = LX_CNT_NON_IP,
	[REF_LATER_FRAG] = LX_CNT_FRAGMENT, [REF_ICMP] = LX_CNT_ICMP,
	[REF_OTHER_L4] = LX_CNT_OTHER_L4,   [REF_MALFORMED] = LX_CNT_MALFORMED,
};

/* Why a packet to a protected address may not pass (LX_DROP_NONE: it may). */
static uint32_t policy(const struct ref *r, const struct ref_pkt *p, uint64_t dst_roles,
		       uint32_t dst_rule, uint64_t src_roles, struct ref_time now, uint32_t choices,
		       struct ref_decision *d, struct ref_updates *u)
{
	uint32_t reason = LX_DROP_NONE;
	switch (p->kind) {
	case REF_MALFORMED:
		return LX_DROP_MALFORMED;
	case REF_LATER_FRAG: {
		struct ref_frag_key k;
		frag_key(p, &k);
		/* Only a passing first fragment is stored; it counts for 30 s and 64 KiB. */
		const struct ref_frag *first = table_get(r->frags, &k);
		if (!first || frag_expired(first, now) || first->bytes + p->frag_len > 65535)
			return LX_DROP_FRAGMENT;
		d->frag_followed = 1;
		u->frag_key = k;
		u->frag = *first;
		u->frag.bytes += p->frag_len;
		u->nfrags = 1;
		return LX_DROP_NONE;
	}
	case REF_ICMP:
		reason = icmp_policy(r, p, dst_roles, now, choices, d, u);
		break;
	case REF_OTHER_L4:
		reason = LX_DROP_TRANSPORT;
		break;
	case REF_PORTS:
		if (dst_rule) { /* what the destination itself admits, whichever end counts it */
			if (r->m->rules[dst_rule - 1].kind == LX_KIND_LISTEN) {
				/* `from ROLE,...`: only addresses holding one of them. */
				uint64_t from = r->m->rules[dst_rule - 1].from_roles;
				if (from && !(src_roles & from))
					reason = LX_DROP_SOURCE;
				break;
			}
			/* An outbound rule of the destination: only a reply on its live flow. */
			struct ref_flow_key k;
			flow_key(r, p, 0, &k);
			const struct ref_flow *f = flow_get(r, u, &k);
			if (f && !flow_expired(r, f, p->proto, now, choices, d)) {
				struct ref_flow nf =
				    *f; /* not refreshed: only the host's packets */
				if (p->tcp_flags & 0x05) { /* FIN, RST */
					int fits = remote_close_fits(f, p);
					nf.closing = nf.closing || fits;
					d->remote_close = fits ? 1 : 2;
				}
				flow_set(u, &k, &nf);
				d->reply_passed = 1;
				d->nat_reply = site_nat_private(r->s, p->family, p->daddr) != NULL;
				break;
			}
			d->expired_flow = f != NULL;
			reason = LX_DROP_UNSOLICITED;
			break;
		}
		reason =
		    any_rule(r, dst_roles, p->proto == LX_PROTO_TCP ? LX_PROTO_UDP : LX_PROTO_TCP,
			     p->dport, LX_KIND_LISTEN)
			? LX_DROP_TRANSPORT
			: LX_DROP_PORT;
		break;
	default:
		return LX_DROP_NONE;
	}
	if (p->first_frag && reason == LX_DROP_NONE) { /* the later fragments follow it */
		struct ref_frag_key k;
		frag_key(p, &k);
		const struct ref_frag *old = table_get(r->frags, &k);
		if (!old || frag_expired(old, now)) { /* a live one is not replaced */
			u->frag_key = k;
			u->frag.first = now;
			u->frag.bytes = 0;
			u->nfrags = 1;
		}
	}
	return reason;
}

/* ---- media: what a media service's UDP payload carries (README "Media and call quality") ---- */

/* RFC 7983's first-byte ranges; RTP counts only in a stream confirmed by two packets in
 * sequence (RFC 3550 A.1). Returns the kind; a stream update, if any, goes into u. */
static int rtp_kind(const struct ref *r, const struct ref_pkt *p, const uint8_t *b, size_t n,
		    struct ref_updates *u);

/* STUN whose length field covers exactly n bytes. */
static int stun_exact(const uint8_t *b, size_t n)
{
	return n >= 20 && be16(b + 2) + 20 == n ? LX_MEDIA_STUN : LX_MEDIA_OTHER;
}

/* TCP: the segment's first frame, MS-TURN over TCP (0x02 control / 0x03 data, 0, length) or
 * RFC 4571 (length, then RTP, RTCP or STUN). */
static int media_kind_tcp(const struct ref *r, const struct ref_pkt *p, struct ref_updates *u)
{
	const uint8_t *b = p->udp_payload;
	size_t n = p->udp_payload_len;
	if (n < 4)
		return LX_MEDIA_OTHER;
	if ((b[0] == 2 || b[0] == 3) && b[1] == 0) {
		size_t len = be16(b + 2);
		if (len + 4 > n)
			return LX_MEDIA_OTHER;
		return b[0] == 2 ? stun_exact(b + 4, len) : rtp_kind(r, p, b + 4, len, u);
	}
	size_t len = be16(b);
	if (len + 2 > n)
		return LX_MEDIA_OTHER;
	return b[2] < 4 ? stun_exact(b + 2, len) : rtp_kind(r, p, b + 2, len, u);
}

static int media_kind(const struct ref *r, const struct ref_pkt *p, struct ref_updates *u)
{
	if (p->proto == LX_PROTO_TCP)
		return media_kind_tcp(r, p, u);
	const uint8_t *b = p->udp_payload;
	size_t n = p->udp_payload_len;
	if (n < 4)
		return LX_MEDIA_OTHER;
	if (b[0] == 0xff && b[1] == 0x10)
		return LX_MEDIA_STUN;
	if (b[0] < 4) /* STUN: the length field covers the rest exactly */
		return n >= 20 && be16(b + 2) + 20 == n ? LX_MEDIA_STUN : LX_MEDIA_OTHER;
	if (b[0] >= 20 && b[0] <= 63)
		return b[1] == 0xfe ? LX_MEDIA_DTLS : LX_MEDIA_OTHER;
	if (b[0] >= 64 && b[0] <= 79) { /* TURN ChannelData: what is inside */
		size_t len = be16(b + 2);
		if (len + 4 > n)
			return LX_MEDIA_OTHER;
		b += 4;
		n = len;
		if (n < 4)
			return LX_MEDIA_OTHER;
	}
	return rtp_kind(r, p, b, n, u);
}

/* RTP of a known payload type in a confirmed stream, or RTCP (payload types 192-223). */
static int rtp_kind(const struct ref *r, const struct ref_pkt *p, const uint8_t *b, size_t n,
		    struct ref_updates *u)
{
	if (n < 4 || b[0] >> 6 != 2)
		return LX_MEDIA_OTHER;
	if (b[1] >= 192 && b[1] <= 223)
		return n >= 8 && ((size_t)be16(b + 2) + 1) * 4 <= n ? LX_MEDIA_RTCP
								    : LX_MEDIA_OTHER;
	if (n < 12)
		return LX_MEDIA_OTHER;
	int kind = r->pt_kind[b[1] & 0x7f];
	if (kind == LX_MEDIA_OTHER)
		return LX_MEDIA_OTHER;
	struct ref_stream_key k;
	memset(&k, 0, sizeof(k));
	k.family = (uint8_t)p->family;
	k.proto = (uint8_t)p->proto;
	k.sport = p->sport;
	k.dport = p->dport;
	k.ssrc = (uint32_t)be16(b + 8) << 16 | be16(b + 10);
	memcpy(k.saddr, p->saddr, 16);
	memcpy(k.daddr, p->daddr, 16);
	uint16_t seq = (uint16_t)be16(b + 2);
	const struct ref_stream *old = table_get(r->streams, &k);
	struct ref_stream st = { .confirmed = 0, .last_seq = seq, .kind = kind };
	int result = LX_MEDIA_OTHER;
	if (old && old->confirmed) {
		st = *old;
		result = old->kind;
	} else if (old && (uint16_t)(old->last_seq + 1) == seq && old->kind == kind) {
		st = (struct ref_stream){ .confirmed = 1, .last_seq = seq, .kind = kind };
		result = kind;
	}
	u->nstreams = 1;
	u->stream_key = k;
	u->stream = st;
	return result;
}

void ref_decide(const struct ref *r, const uint8_t *frame, size_t len, struct ref_time now,
		uint32_t choices, struct ref_decision *d, struct ref_updates *u, uint8_t *out)
{
	struct ref_pkt p;
	memset(d, 0, sizeof(*d));
	memset(u, 0, sizeof(*u));
	memcpy(out, frame, len);
	ref_parse(frame, len, &p);
	d->counter = counter_of_kind[p.kind];

	uint64_t src_roles = 0, dst_roles = 0;
	uint32_t dst_rule = 0;
	if (p.have_addrs) {
		src_roles = ref_roles_of(r, p.family, p.saddr);
		dst_roles = ref_roles_of(r, p.family, p.daddr);
	}
	uint64_t protected_roles = r->s->protected_roles;

	if (p.kind == REF_PORTS) {
		/* Destination side, then source side; a protected destination that has no rule
		 * for it refuses the packet whatever the source is: judged by the destination
		 * alone, the source side is not classified (README, "Enforcement"). */
		uint32_t in = best_rule(r, dst_roles, p.proto, p.dport, 0), out = 0;
		if (!in)
			in = best_rule(r, dst_roles, p.proto, p.sport, 1);
		dst_rule = in;
		if (in || !(dst_roles & protected_roles)) {
			out = best_rule(r, src_roles, p.proto, p.sport, 0);
			if (!out)
				out = best_rule(r, src_roles, p.proto, p.dport, 1);
		}
		if (((in && client_rule(r, in)) || (out && client_rule(r, out))) &&
		    !(ref_is_peer(r, p.family, p.saddr) && ref_is_peer(r, p.family, p.daddr))) {
			d->no_peer = 1;
			if (in && client_rule(r, in))
				in = 0;
			if (out && client_rule(r, out))
				out = 0;
		}
		if (in && out)
			d->both_ends = better(r, out, in) ? 2 : 1;
		if (out && (!in || better(r, out, in))) {
			d->rule = out;
			d->dir = LX_DIR_OUT;
		} else {
			d->rule = in;
			d->dir = LX_DIR_IN;
		}
		/* A protected host opens (or refreshes) a flow its outbound rules cover. A FIN or
		 * RST closes a live flow but never opens one (a host's RST answering a forged
		 * packet must not let the next one in). */
		uint32_t own = (src_roles & protected_roles)
				   ? best_rule(r, src_roles, p.proto, p.sport, 0)
				   : 0;
		int own_kind = own ? (int)r->m->rules[own - 1].kind : LX_KIND_OUTBOUND_TO;
		if ((src_roles & protected_roles) && own_kind != LX_KIND_LISTEN &&
		    (own_kind == LX_KIND_OUTBOUND_FROM ||
		     any_rule(r, src_roles, p.proto, p.dport, LX_KIND_OUTBOUND_TO))) {
			struct ref_flow_key k;
			flow_key(r, &p, 1, &k);
			const struct ref_flow *old = flow_get(r, u, &k);
			int fin_rst = (p.tcp_flags & 0x05) != 0;
			struct ref_flow f = { .last = now };
			/* A live flow remembers the interface its host was seen on; every frame
			 * of a test run arrives on the same one, so it is never asked again. A
			 * NAT'd public address is never a source at the gateway: forged. */
			if (site_nat_private(r->s, p.family, p.saddr)) {
				d->reason = LX_DROP_SPOOFED;
				d->nat_spoofed = 1;
			} else if (old && !flow_expired(r, old, p.proto, now, choices, d)) {
				f = *old;
				f.last = now;
				host_tcp(&f, &p);
				f.closing = f.closing || fin_rst;
				flow_set(u, &k, &f);
				d->flow_opened = 1;
			} else if (r->side == LX_SIDE_UNPROTECTED) {
				d->reason = LX_DROP_SPOOFED;
			} else if (!fin_rst) {
				host_tcp(&f, &p);
				flow_set(u, &k, &f);
				d->flow_opened = 1;
			}
		}
	}

	if (!d->reason && p.have_addrs && (dst_roles & protected_roles))
		d->reason = policy(r, &p, dst_roles, dst_rule, src_roles, now, choices, d, u);
	d->verdict = d->reason && r->policy == LX_POLICY_ENFORCE ? XDP_DROP : XDP_PASS;

	/* A media service's UDP payload, inspected whatever the mode (the stream table), in
	 * every packet that goes on: a dropped one ends with its counters. */
	int mkind = -1;
	if (d->verdict == XDP_PASS && d->rule && p.kind == REF_PORTS && p.udp_payload &&
	    r->media_rule && r->media_rule[d->rule - 1])
		mkind = media_kind(r, &p, u);
	int dscp = d->rule ? r->dscp[d->rule - 1] : -1;
	d->media = mkind >= 0 ? (uint32_t)mkind : LX_MEDIA_MAX;
	int by_media = dscp < 0 && mkind >= 0 && r->media_dscp[mkind] != LX_DSCP_KEEP;
	if (by_media)
		dscp = r->media_dscp[mkind];
	if (r->tag && d->rule && d->verdict == XDP_PASS && dscp >= 0) {
		d->remarked = rewrite_dscp(out, &p, (unsigned)dscp);
		d->media_tagged = by_media && d->remarked;
	}
	d->dscp = p.have_addrs ? dscp_of(out, &p) : 0xff;
}

void ref_flow_put(struct ref *r, const struct ref_flow_key *k, const struct ref_flow *f)
{
	if (table_put(r->flows, k, f) < 0) {
		fprintf(stderr, "reference: flow table full\n");
		abort();
	}
}

static void add(struct ref_count *c, size_t len)
{
	c->packets++;
	c->bytes += len;
}

void ref_commit(struct ref *r, const struct ref_decision *d, const struct ref_updates *u,
		size_t len)
{
	if (u->nstreams && table_put(r->streams, &u->stream_key, &u->stream) < 0) {
		fprintf(stderr, "reference: stream table full\n");
		abort();
	}
	for (int i = 0; i < u->nflows; i++)
		if (table_put(r->flows, &u->flow_key[i], &u->flow[i]) < 0) {
			fprintf(stderr, "reference: flow table full\n");
			abort();
		}
	if (u->nfrags && table_put(r->frags, &u->frag_key, &u->frag) < 0) {
		fprintf(stderr, "reference: fragment table full\n");
		abort();
	}
	if (d->rule) {
		add(&r->tally.rules[d->rule * LX_DIR_MAX + d->dir], len);
		if (d->remarked)
			add(&r->tally.remarked[d->rule * LX_DIR_MAX + d->dir], len);
	} else {
		add(&r->tally.special[d->counter], len);
	}
	add(&r->tally.total, len);
	if (d->reason)
		add(r->policy == LX_POLICY_ENFORCE ? &r->tally.drops[d->reason]
						   : &r->tally.would_drop[d->reason],
		    len);
}

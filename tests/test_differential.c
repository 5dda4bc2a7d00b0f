// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Differential test: random and mutated frames through the real XDP program
 * (BPF_PROG_TEST_RUN on private instances, user/testrun.h) and through the reference
 * classifier (tests/reference.c); verdict, rule, direction, counter, reason, DSCP (lx_last
 * and the bytes that leave) must agree for every frame, and the program's counters must
 * equal the reference's tally at the end.
 *
 * Traffic: Lync traffic of maps/sfb2015.matrix between the addresses of
 * tests/data/differential/protected.site (protected Edge roles) and open.site (no
 * protection), with replies on flows the Edge opened, FIN/RST, flows that time out, ICMP
 * (errors quoting packets sent lately, as sent or altered; neighbour discovery from the link
 * or not),
 * other protocols, non-IP, VLAN tags (one, two, three), IPv4 options, IPv6 extension chains
 * of 0..7 headers, fragments (first and later, with and without the first), then mutated:
 * truncated at every header boundary, bad IHL, lengths, versions, data offsets, flags, bytes.
 * The policy (monitor, enforce), the tag mode and the side the frames arrive on (protected,
 * unprotected) change live (testrun_set, testrun_set_side) every few hundred frames. The flow
 * timeouts of the instances are shortened so that expiry happens in seconds.
 *
 * A difference is a mismatch, printed with the frame (the test stops after 20): the reference
 * is what the documentation says, and the program has no known deviation from it. The
 * instances are struct prog (tests/support.c), with the reference next to each.
 *
 *   test_differential [--long]     50,000 frames (--long: 1,000,000)
 *   LYNCXDP_SEED=N LYNCXDP_PACKETS=N replay a run
 *
 * Run from the repository top (tests/run.sh does). Needs root (BPF_PROG_TEST_RUN).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>

#include "check.h"
#include "support.h"
#include "compile.h"
#include "matrix.h"
#include "media.h"
#include "reference.h"
#include "site.h"
#include "stats.h"
#include "testrun.h"

#define MATRIX_PATH	 "maps/sfb2015.matrix"
#define SITE_PROTECTED	 "tests/data/differential/protected.site"
#define SITE_OPEN	 "tests/data/differential/open.site"
#define SHORT_PACKETS	 50000
#define LONG_PACKETS	 1000000
#define FRAME_MAX	 3520 /* what testrun takes: a page less head and tail room */
#define MAX_MISMATCHES	 20
#define FLOWS_RESET_AT	 20000 /* below LX_MAX_FLOWS; a full set evicting resets too */
#define FRAGS_RESET_AT	 3000  /* far below LX_MAX_FRAGS */
#define STREAMS_RESET_AT 20000 /* far below LX_MAX_STREAMS */
#define MEDIA_PATH	 "maps/media"

/*
 * Flow timeouts of the test instances (the program's defaults are 2 h 5 min, 10 s, 2 min): short,
 * so that a run of a few seconds (some 150,000 frames a second) sees flows expire.
 */
static const struct ref_timeouts TIMEOUTS = {
	.tcp = 250000000ULL,
	.tcp_closing = 20000000ULL,
	.udp = 100000000ULL,
};

/* ---- random numbers (splitmix64: one seed replays everything) ---- */

static uint64_t rng_state;

static uint64_t rnd64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint32_t n) /* 0..n-1 */
{
	return n ? (uint32_t)(rnd64() % n) : 0;
}

static int chance(unsigned percent)
{
	return rnd(100) < percent;
}

static void rnd_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd64();
}

/* ---- addresses ---- */

struct addr_entry {
	int family;
	uint8_t addr[16];
	int len;	/* a prefix: hosts inside it are drawn at random */
	uint64_t roles; /* of its network address, for aiming at rules */
};

#define MAX_ADDRS 64
static struct addr_entry addrs[MAX_ADDRS];
static int naddrs;

static const char *const PEERS[] = {
	"203.0.113.200",
	"203.0.113.201",
	"198.51.100.200",
	"192.0.2.1",
	"192.0.2.100",
	"2001:db8:ffff::200",
	"2001:db8:ffff::201",
	"2001:db8:30::5",
	/* multicast and broadcast: never a client's peer */
	"239.255.255.250",
	"255.255.255.255",
	"224.0.0.251",
	"ff02::c",
	"ff05::1:3",
	/* broadcast addresses of listed prefixes (clients /25, director /27, edge /28) */
	"192.0.2.255",
	"192.0.2.223",
	"203.0.113.47",
};

static void add_addr(int family, const uint8_t *a, int len, uint64_t roles)
{
	if (naddrs == MAX_ADDRS)
		die("too many addresses");
	struct addr_entry *e = &addrs[naddrs++];
	e->family = family;
	memset(e->addr, 0, 16);
	memcpy(e->addr, a, family == 4 ? 4 : 16);
	e->len = len;
	e->roles = roles;
}

static const struct site *nat_site; /* its `nat` lines: replies go to the public address */

static void setup_addrs(const struct ref *r, const struct site *s)
{
	for (int i = 0; i < s->nprefixes; i++) {
		const struct site_prefix *p = &s->prefixes[i];
		add_addr(p->family, p->addr, p->len, ref_roles_of(r, p->family, p->addr));
	}
	/* NAT'd public addresses: replies to them, and packets forged from them */
	for (int i = 0; i < s->nnat; i++) {
		const struct site_nat *n = &s->nat[i];
		add_addr(n->family, n->public_addr, n->family == 4 ? 32 : 128,
			 ref_roles_of(r, n->family, n->public_addr));
	}
	nat_site = s;
	for (size_t i = 0; i < sizeof(PEERS) / sizeof(PEERS[0]); i++) {
		uint8_t a[16] = { 0 };
		int fam = strchr(PEERS[i], ':') ? 6 : 4;
		if (inet_pton(fam == 4 ? AF_INET : AF_INET6, PEERS[i], a) != 1)
			die("bad peer %s", PEERS[i]);
		add_addr(fam, a, fam == 4 ? 32 : 128, 0);
	}
}

/* An address of the entry: itself, or a random host of its prefix. */
static void draw_addr(const struct addr_entry *e, uint8_t *out)
{
	int bits = e->family == 4 ? 32 : 128;
	memcpy(out, e->addr, 16);
	if (e->len < bits && chance(80))
		for (int bit = e->len; bit < bits; bit++)
			if (chance(50))
				out[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
}

static const struct addr_entry *pick_addr(int family)
{
	for (;;) {
		const struct addr_entry *e = &addrs[rnd((uint32_t)naddrs)];
		if (!family || e->family == family)
			return e;
	}
}

static const struct addr_entry *pick_addr_with_role(int family, int role)
{
	int candidates[MAX_ADDRS], n = 0;
	for (int i = 0; i < naddrs; i++)
		if (addrs[i].family == family && (addrs[i].roles & (1ULL << role)))
			candidates[n++] = i;
	return n ? &addrs[candidates[rnd((uint32_t)n)]] : NULL;
}

/* ---- frames: a description, built into bytes ---- */

enum { FRAG_NONE, FRAG_FIRST, FRAG_LATER, FRAG_ATOMIC };

struct desc {
	int l3;		    /* 4, 6, or 0: not IP (ethertype) */
	uint16_t ethertype; /* when l3 == 0 */
	int nvlan;
	uint16_t tpid[3];
	uint8_t src[16], dst[16];
	uint8_t tos;
	int ipproto;
	uint16_t sport, dport;
	uint8_t tcp_flags;
	uint32_t seq, ack; /* TCP */
	uint16_t win;
	int tcp_optwords;
	uint8_t icmp_type, icmp_code;
	int hop; /* TTL / hop limit; 0: 64 */
	/* An ICMP error's quoted packet (quote != 0): IPv4 or IPv6 as quote says, its header
	 * (IPv4 options of q_optlen bytes, a later fragment when q_later) and 8 bytes of the
	 * transport header, then the message's payload. */
	int quote;
	uint8_t q_src[16], q_dst[16];
	int q_proto, q_optlen, q_later;
	uint16_t q_sport, q_dport;
	int v4_optlen;
	int next; /* IPv6 extension headers */
	uint8_t ext_type[8];
	uint8_t ext_len[8]; /* hdr ext len */
	int frag;	    /* FRAG_* */
	uint16_t frag_off;  /* 8-byte units, later fragments */
	int frag_mf;
	uint32_t frag_id;
	size_t payload;
	size_t trailer;	  /* bytes after the IP datagram (Ethernet padding, trailers) */
	size_t media_len; /* > 0: the payload starts with media[] (RTP, STUN, ...) */
	size_t media_at;  /* where the RTP header starts in media[] */
	uint8_t media[20];
};

struct frame {
	uint8_t b[FRAME_MAX + 64];
	size_t len;
	size_t ip_off, l4_off; /* 0 when absent */
	size_t bound[48];      /* offsets where a header starts or ends */
	int nbound;
};

static void mark(struct frame *f, size_t off)
{
	if (f->nbound < (int)(sizeof(f->bound) / sizeof(f->bound[0])))
		f->bound[f->nbound++] = off;
}

static void fix_ipv4_checksum(struct frame *f)
{
	uint8_t *ip = f->b + f->ip_off;
	size_t hl = (size_t)(ip[0] & 0x0f) * 4;
	if (hl >= 20 && f->ip_off + hl <= f->len)
		ipv4_checksum_fix(ip);
}

/* An ICMP error's quoted packet at b + n; returns where it ends. */
static size_t build_quote(const struct desc *d, struct frame *f, size_t n)
{
	uint8_t *b = f->b;
	size_t hl;
	if (d->quote == 4) {
		hl = 20 + (size_t)d->q_optlen;
		memset(b + n, 0, hl);
		b[n] = (uint8_t)(0x40 | hl / 4);
		put16(b + n + 2, (unsigned)(hl + 8 + rnd(1400)));
		put16(b + n + 6, d->q_later ? 1 + (unsigned)rnd(100) : chance(50) ? 0x4000 : 0);
		b[n + 8] = 1;
		b[n + 9] = (uint8_t)d->q_proto;
		memcpy(b + n + 12, d->q_src, 4);
		memcpy(b + n + 16, d->q_dst, 4);
		for (size_t i = 20; i < hl; i++)
			b[n + i] = 1;
		ipv4_checksum_fix(b + n);
	} else {
		hl = 40;
		memset(b + n, 0, hl);
		b[n] = 0x60;
		put16(b + n + 4, (unsigned)(8 + rnd(1400)));
		b[n + 6] = (uint8_t)d->q_proto;
		b[n + 7] = 1;
		memcpy(b + n + 8, d->q_src, 16);
		memcpy(b + n + 24, d->q_dst, 16);
	}
	mark(f, n + hl);
	n += hl;
	rnd_bytes(b + n, 8);
	put16(b + n, d->q_sport);
	put16(b + n + 2, d->q_dport);
	mark(f, n + 4);
	mark(f, n + 8);
	return n + 8;
}

static void build(const struct desc *d, struct frame *f)
{
	uint8_t *b = f->b;
	size_t n = 12;
	f->nbound = 0;
	f->ip_off = f->l4_off = 0;
	memcpy(b, "\x02\x00\x5e\x00\x00\x01\x02\x00\x5e\x00\x00\x02", 12);
	for (int v = 0; v < d->nvlan; v++) {
		put16(b + n, d->tpid[v]);
		put16(b + n + 2, 100 + (unsigned)v);
		n += 4;
		mark(f, n);
	}
	put16(b + n, d->l3 == 4 ? 0x0800 : d->l3 == 6 ? 0x86dd : d->ethertype);
	n += 2;
	mark(f, n);
	if (!d->l3) {
		rnd_bytes(b + n, d->payload);
		f->len = n + d->payload;
		return;
	}
	f->ip_off = n;
	int later = d->frag == FRAG_LATER;
	if (d->l3 == 4) {
		size_t hl = 20 + (size_t)d->v4_optlen;
		b[n] = (uint8_t)(0x40 | hl / 4);
		b[n + 1] = d->tos;
		put16(b + n + 4, d->frag_id & 0xffff);
		unsigned frag = d->frag == FRAG_FIRST	 ? 0x2000
				: d->frag == FRAG_LATER	 ? (d->frag_mf ? 0x2000 : 0) | d->frag_off
				: d->frag == FRAG_ATOMIC ? 0x4000
							 : 0;
		put16(b + n + 6, frag);
		b[n + 8] = (uint8_t)(d->hop ? d->hop : 64);
		b[n + 9] = (uint8_t)d->ipproto;
		memcpy(b + n + 12, d->src, 4);
		memcpy(b + n + 16, d->dst, 4);
		mark(f, n + 20);
		for (size_t i = 20; i < hl; i++) /* NOPs, then end of options */
			b[n + i] = i + 1 == hl ? 0 : 1;
		n += hl;
		mark(f, n);
	} else {
		b[n] = (uint8_t)(0x60 | d->tos >> 4);
		b[n + 1] = (uint8_t)((d->tos & 0x0f) << 4 | 0x0a); /* flow label 0xa1234 */
		put16(b + n + 2, 0x1234);
		b[n + 6] = (uint8_t)(d->next ? d->ext_type[0] : d->ipproto);
		b[n + 7] = (uint8_t)(d->hop ? d->hop : 64);
		memcpy(b + n + 8, d->src, 16);
		memcpy(b + n + 24, d->dst, 16);
		n += 40;
		mark(f, n);
		for (int k = 0; k < d->next; k++) {
			uint8_t next = (uint8_t)(k + 1 < d->next ? d->ext_type[k + 1] : d->ipproto);
			if (d->ext_type[k] == 44) {
				b[n] = next;
				b[n + 1] = 0;
				unsigned off =
				    later ? (unsigned)d->frag_off << 3 | (d->frag_mf ? 1 : 0)
				    : d->frag == FRAG_FIRST ? 1
							    : 0;
				put16(b + n + 2, off);
				put32(b + n + 4, d->frag_id);
				n += 8;
				mark(f, n);
				if (later)
					break; /* the rest is the fragment's data */
				continue;
			}
			size_t len = ((size_t)d->ext_len[k] + 1) * 8;
			memset(b + n, 0, len); /* Pad1 options */
			b[n] = next;
			b[n + 1] = d->ext_len[k];
			n += len;
			mark(f, n);
		}
	}
	size_t l4 = n;
	if (!later) {
		switch (d->ipproto) {
		case 6: {
			size_t hl = 20 + (size_t)d->tcp_optwords * 4;
			memset(b + n, 0, hl);
			put16(b + n, d->sport);
			put16(b + n + 2, d->dport);
			put32(b + n + 4, d->seq);
			put32(b + n + 8, d->ack);
			b[n + 12] = (uint8_t)((5 + d->tcp_optwords) << 4);
			b[n + 13] = d->tcp_flags;
			put16(b + n + 14, d->win);
			for (size_t i = 20; i < hl; i++)
				b[n + i] = 1; /* NOP options */
			mark(f, n + 2);
			mark(f, n + 4);
			mark(f, n + 13);
			mark(f, n + 14);
			mark(f, n + 20);
			n += hl;
			break;
		}
		case 17:
			put16(b + n, d->sport);
			put16(b + n + 2, d->dport);
			put16(b + n + 4, (unsigned)(8 + d->payload));
			put16(b + n + 6, 0);
			mark(f, n + 2);
			mark(f, n + 4);
			n += 8;
			break;
		case 1:
		case 58:
			b[n] = d->icmp_type;
			b[n + 1] = d->icmp_code;
			memset(b + n + 2, 0, 6);
			mark(f, n + 1);
			mark(f, n + 2);
			mark(f, n + 3);
			mark(f, n + 4);
			n += 8;
			if (d->quote)
				n = build_quote(d, f, n);
			break;
		default:
			break;
		}
		mark(f, n);
	}
	f->l4_off = l4;
	rnd_bytes(b + n, d->payload);
	if (d->media_len && d->payload >= d->media_len)
		memcpy(b + n, d->media, d->media_len);
	n += d->payload;
	if (d->l3 == 4) {
		put16(b + f->ip_off + 2, (unsigned)(n - f->ip_off));
		ipv4_checksum_fix(b + f->ip_off);
	} else {
		put16(b + f->ip_off + 4, (unsigned)(n - f->ip_off - 40));
	}
	rnd_bytes(b + n, d->trailer);
	n += d->trailer;
	f->len = n;
}

/* ---- generation ---- */

struct gen {
	const struct matrix *m;
	struct desc recent[64]; /* TCP/UDP sent lately: their replies */
	int nrecent;
	struct desc old[256]; /* older ones: replies after a timeout */
	int nold;
	struct desc firsts[64]; /* first fragments: their later fragments */
	int nfirsts;
	struct desc media[16]; /* UDP with an RTP header: the next packets of their streams */
	int nmedia;
};

static const uint16_t WELL_KNOWN[] = { 53,    80,   443,   444,	  3478,	 5060,	5061,
				       5062,  5269, 8057,  50000, 59999, 49152, 57500,
				       57501, 1024, 65535, 1,	  0 };

static uint16_t ephemeral(void)
{
	switch (rnd(6)) {
	case 0:
		return WELL_KNOWN[rnd(sizeof(WELL_KNOWN) / sizeof(WELL_KNOWN[0]))];
	case 1:
		return (uint16_t)rnd(1024);
	default:
		return (uint16_t)(1024 + rnd(64512));
	}
}

/* A port of a rule: inside its range, mostly its ends, sometimes just outside. */
static uint16_t rule_port(const struct matrix_rule *r)
{
	unsigned lo = r->port_lo, hi = r->port_hi;
	switch (rnd(10)) {
	case 0:
		return (uint16_t)(lo - 1);
	case 1:
		return (uint16_t)(hi + 1);
	case 2:
		return (uint16_t)lo;
	case 3:
		return (uint16_t)hi;
	default:
		return (uint16_t)(lo + rnd(hi - lo + 1));
	}
}

static uint8_t tcp_flags(void)
{
	static const uint8_t f[] = { 0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x19, 0x01, 0x00 };
	return f[rnd(sizeof(f))];
}

static void remember(struct gen *g, const struct desc *d)
{
	if (d->ipproto != 6 && d->ipproto != 17)
		return;
	g->recent[g->nrecent++ % 64] = *d;
	if (chance(2))
		g->old[g->nold++ % 256] = *d;
}

static void basics(struct desc *d, int family)
{
	memset(d, 0, sizeof(*d));
	d->l3 = family;
	d->tos = chance(50) ? 0 : (uint8_t)rnd(256);
	d->payload = chance(90) ? rnd(200) : rnd(3000);
	d->tcp_flags = tcp_flags();
	d->seq = (uint32_t)rnd64();
	d->ack = (uint32_t)rnd64();
	int w = (int)rnd(10);
	d->win = w < 4	 ? 65535
		 : w < 5 ? 0
		 : w < 8 ? (uint16_t)(1 + rnd(3000))
			 : (uint16_t)rnd(65536);
	d->frag_id = (uint32_t)rnd(64);
}

/* TCP or UDP aimed at a rule: to the role's port, or from it, or an outbound connection. */
static void gen_rule_traffic(struct gen *g, struct desc *d)
{
	const struct matrix_rule *r = &g->m->rules[rnd((uint32_t)g->m->nrules)];
	int family = chance(60) ? 4 : 6;
	const struct addr_entry *role = pick_addr_with_role(family, r->role);
	if (!role)
		role = pick_addr(family);
	const struct addr_entry *peer = pick_addr(family);
	basics(d, family);
	d->ipproto =
	    chance(92) ? (r->proto == LX_PROTO_TCP ? 6 : 17) : (r->proto == LX_PROTO_TCP ? 17 : 6);
	uint16_t port = rule_port(r), other = ephemeral();
	uint8_t role_addr[16], peer_addr[16];
	draw_addr(role, role_addr);
	draw_addr(peer, peer_addr);
	int toward_role = chance(50);
	if (r->kind == LX_KIND_OUTBOUND_TO) {
		/* the role opens to the peer's port; or the peer answers */
		memcpy(d->src, toward_role ? peer_addr : role_addr, 16);
		memcpy(d->dst, toward_role ? role_addr : peer_addr, 16);
		d->sport = toward_role ? port : other;
		d->dport = toward_role ? other : port;
	} else {
		memcpy(d->src, toward_role ? peer_addr : role_addr, 16);
		memcpy(d->dst, toward_role ? role_addr : peer_addr, 16);
		d->sport = toward_role ? other : port;
		d->dport = toward_role ? port : other;
	}
}

static void gen_random_ports(struct desc *d)
{
	int family = chance(60) ? 4 : 6;
	basics(d, family);
	d->ipproto = chance(60) ? 6 : 17;
	draw_addr(pick_addr(family), d->src);
	draw_addr(pick_addr(family), d->dst);
	d->sport = ephemeral();
	d->dport = ephemeral();
}

/* The other end answers a packet sent earlier. */
static int gen_reply(const struct desc *from, struct desc *d)
{
	basics(d, from->l3);
	d->ipproto = from->ipproto;
	memcpy(d->src, from->dst, 16);
	memcpy(d->dst, from->src, 16);
	d->sport = from->dport;
	d->dport = from->sport;
	/* A host behind the gateway's 1:1 NAT gets its replies at its public address. */
	for (int i = 0; nat_site && i < nat_site->nnat; i++)
		if (!memcmp(nat_site->nat[i].private_addr, d->dst, 16) && chance(75))
			memcpy(d->dst, nat_site->nat[i].public_addr, 16);
	/* TCP: a sequence number at the edges of the window the packet answered advertised (a
	 * remote FIN or RST closes a flow only inside it), or an ACK of its SYN. */
	if (d->ipproto == 6 && chance(70)) {
		uint32_t w = from->win ? from->win : 1, fin_len = (uint32_t)d->payload;
		switch (rnd(7)) {
		case 0:
			d->seq = from->ack;
			break;
		case 1:
			d->seq = from->ack + (uint32_t)rnd(w);
			break;
		case 2:
			d->seq = from->ack + w;
			break;
		case 3:
			d->seq = from->ack - 1;
			break;
		case 4:
			d->seq = from->ack + w - 1;
			break;
		case 5: /* a FIN whose data end inside, or just past */
			d->seq = from->ack + (uint32_t)rnd(w) - fin_len + (chance(30) ? w : 0);
			break;
		default:
			d->seq = from->ack - fin_len;
			break;
		}
		if (chance(50))
			d->ack = from->seq + 1;
	}
	return 1;
}

static void gen_icmp(struct desc *d)
{
	static const uint8_t types4[][2] = { { 3, 4 }, { 3, 3 },  { 8, 0 }, { 8, 1 }, { 0, 0 },
					     { 0, 7 }, { 11, 0 }, { 5, 1 }, { 13, 0 } };
	static const uint8_t types6[][2] = { { 2, 0 },	 { 1, 4 },   { 1, 3 },	 { 128, 0 },
					     { 129, 0 }, { 133, 0 }, { 135, 0 }, { 136, 0 },
					     { 137, 0 }, { 143, 0 }, { 3, 0 },	 { 134, 0 } };
	int family = chance(50) ? 4 : 6;
	basics(d, family);
	d->ipproto = family == 4 ? 1 : 58;
	if (chance(5))
		d->ipproto = family == 4 ? 58 : 1; /* the other family's ICMP */
	draw_addr(pick_addr(family), d->src);
	draw_addr(pick_addr(family), d->dst);
	if (chance(15)) {
		d->icmp_type = (uint8_t)rnd(256);
		d->icmp_code = (uint8_t)rnd(4);
	} else if (family == 4) {
		const uint8_t *t = types4[rnd(sizeof(types4) / sizeof(types4[0]))];
		d->icmp_type = t[0];
		d->icmp_code = t[1];
	} else {
		const uint8_t *t = types6[rnd(sizeof(types6) / sizeof(types6[0]))];
		d->icmp_type = t[0];
		d->icmp_code = t[1];
	}
	/* neighbour discovery: from the link (hop limit 255, fe80::/10) or not */
	if (chance(50))
		d->hop = chance(80) ? 255 : (int)rnd(256);
	if (family == 6 && chance(40)) {
		memset(d->src, 0, 16);
		d->src[0] = 0xfe;
		d->src[1] = (uint8_t)(chance(80) ? 0x80 : rnd(256));
		d->src[15] = (uint8_t)rnd(256);
	}
}

/*
 * An ICMP error about a TCP/UDP packet sent lately (or its answer), to its sender, from a
 * router or its peer: the quote as sent, or with another port, address, protocol, family,
 * as a later fragment; now and then about a packet that timed out.
 */
static int gen_icmp_error(struct gen *g, struct desc *d)
{
	static const uint8_t types4[][2] = { { 3, 4 }, { 3, 3 },  { 3, 1 }, { 3, 13 },
					     { 3, 0 }, { 11, 0 }, { 12, 0 } };
	static const uint8_t types6[][2] = { { 2, 0 }, { 1, 4 }, { 1, 1 }, { 3, 0 }, { 4, 0 } };
	const struct desc *sent;
	if (g->nold && chance(10))
		sent = &g->old[rnd((uint32_t)(g->nold < 256 ? g->nold : 256))];
	else if (g->nrecent)
		sent = &g->recent[rnd((uint32_t)(g->nrecent < 64 ? g->nrecent : 64))];
	else
		return 0;
	int family = sent->l3, answer = chance(50); /* quote the answer to it instead */
	basics(d, family);
	d->payload = chance(80) ? rnd(64) : rnd(1200);
	d->ipproto = family == 4 ? 1 : 58;
	d->quote = family;
	d->q_proto = sent->ipproto;
	memcpy(d->q_src, answer ? sent->dst : sent->src, 16);
	memcpy(d->q_dst, answer ? sent->src : sent->dst, 16);
	d->q_sport = answer ? sent->dport : sent->sport;
	d->q_dport = answer ? sent->sport : sent->dport;
	/* A host behind the gateway's 1:1 NAT was seen, and is quoted, by its public address. */
	for (int i = 0; nat_site && i < nat_site->nnat; i++)
		if (!memcmp(nat_site->nat[i].private_addr, d->q_src, 16) && chance(75))
			memcpy(d->q_src, nat_site->nat[i].public_addr, 16);
	memcpy(d->dst, d->q_src, 16);
	if (chance(50))
		memcpy(d->src, d->q_dst, 16);
	else
		draw_addr(pick_addr(family), d->src);
	const uint8_t *t = family == 4 ? types4[rnd(sizeof(types4) / sizeof(types4[0]))]
				       : types6[rnd(sizeof(types6) / sizeof(types6[0]))];
	d->icmp_type = t[0];
	d->icmp_code = t[1];
	switch (rnd(16)) {
	case 0:
		d->q_sport = ephemeral();
		break;
	case 1:
		d->q_dport = ephemeral();
		break;
	case 2:
		draw_addr(pick_addr(family), d->q_src);
		break;
	case 3:
		draw_addr(pick_addr(family), d->q_dst);
		break;
	case 4:
		d->q_proto = (uint8_t[]){ 1, 58, 6, 17, 47 }[rnd(5)];
		break;
	case 5:
		d->quote = family == 4 ? 6 : 4;
		break;
	case 6:
		d->q_later = family == 4;
		break;
	case 7:
		d->q_optlen = family == 4 ? 4 * (int)(1 + rnd(10)) : 0;
		break;
	default:
		break;
	}
	return 1;
}

static void gen_other_l4(struct desc *d)
{
	static const uint8_t protos[] = { 47, 50, 51, 132, 59, 4, 41, 0, 2, 89, 255 };
	int family = chance(50) ? 4 : 6;
	basics(d, family);
	d->ipproto = protos[rnd(sizeof(protos))];
	if (family == 6 && (d->ipproto == 0))
		d->ipproto = 59; /* 0 is hop-by-hop in IPv6 */
	draw_addr(pick_addr(family), d->src);
	draw_addr(pick_addr(family), d->dst);
}

static void gen_non_ip(struct desc *d)
{
	static const uint16_t types[] = { 0x0806, 0x88cc, 0x8035, 0x9000, 0x88e5, 0x0801, 0x86de };
	memset(d, 0, sizeof(*d));
	d->ethertype = types[rnd(sizeof(types) / sizeof(types[0]))];
	if (chance(5))
		d->ethertype = (uint16_t)rnd(65536);
	if (d->ethertype == 0x0800 || d->ethertype == 0x86dd || d->ethertype == 0x8100 ||
	    d->ethertype == 0x88a8)
		d->ethertype = 0x0806;
	d->payload = 28 + rnd(60);
}

/* IPv6 extension headers: 0..7 of hop-by-hop, routing, destination options, fragment. */
static void add_ext_chain(struct desc *d)
{
	static const uint8_t types[] = { 0, 43, 60, 60 };
	int n = chance(70) ? 1 + (int)rnd(3) : (int)rnd(8);
	d->next = 0;
	for (int k = 0; k < n; k++) {
		d->ext_type[d->next] = types[rnd(sizeof(types))];
		d->ext_len[d->next] = (uint8_t)(chance(70) ? 0 : rnd(4));
		d->next++;
	}
}

/* Places a fragment header in an IPv6 chain (keeping it at most 8 long). */
static void add_frag_header(struct desc *d)
{
	int pos = d->next ? (int)rnd((uint32_t)d->next + 1) : 0;
	if (d->next == 8)
		d->next = 7;
	if (pos > d->next)
		pos = d->next;
	memmove(d->ext_type + pos + 1, d->ext_type + pos, (size_t)(d->next - pos));
	memmove(d->ext_len + pos + 1, d->ext_len + pos, (size_t)(d->next - pos));
	d->ext_type[pos] = 44;
	d->ext_len[pos] = 0;
	d->next++;
}

static int frag_pos(const struct desc *d)
{
	for (int k = 0; k < d->next; k++)
		if (d->ext_type[k] == 44)
			return k;
	return -1;
}

/* Extras that any IP packet can carry. */
static void add_extras(struct desc *d)
{
	int v = (int)rnd(100);
	d->nvlan = v < 70 ? 0 : v < 90 ? 1 : v < 98 ? 2 : 3;
	for (int i = 0; i < d->nvlan; i++)
		d->tpid[i] = chance(50) ? 0x8100 : 0x88a8;
	if (d->l3 == 4 && chance(15))
		d->v4_optlen = 4 * (int)(1 + rnd(10));
	if (d->l3 == 6 && d->next == 0 && chance(25))
		add_ext_chain(d);
	if (d->ipproto == 6 && chance(20))
		d->tcp_optwords = (int)rnd(11);
	if (chance(15))
		d->trailer = rnd(40);
}

/* A first fragment (remembered), or a later one: of a remembered first, or of none. */
static void gen_fragment(struct gen *g, struct desc *d)
{
	if (g->nfirsts && chance(60)) {
		*d = g->firsts[rnd((uint32_t)(g->nfirsts < 64 ? g->nfirsts : 64))];
		d->frag = FRAG_LATER;
		d->frag_off = (uint16_t)(1 + rnd(chance(90) ? 200 : 8191));
		d->frag_mf = chance(50);
		d->payload = 8 + rnd(200);
		d->tos = chance(50) ? d->tos : (uint8_t)rnd(256);
		if (d->l3 == 6 && frag_pos(d) >= 0)
			d->next = frag_pos(d) + 1;
		return;
	}
	switch (rnd(4)) {
	case 0:
		gen_icmp(d);
		break;
	case 1:
		gen_other_l4(d);
		break;
	default:
		gen_rule_traffic(g, d);
		break;
	}
	add_extras(d);
	d->frag = chance(75) ? FRAG_FIRST : chance(50) ? FRAG_LATER : FRAG_ATOMIC;
	d->frag_id = (uint32_t)rnd(64);
	d->frag_off = (uint16_t)(1 + rnd(100));
	d->frag_mf = chance(50);
	if (d->l3 == 6)
		add_frag_header(d);
	if (d->frag == FRAG_FIRST)
		g->firsts[g->nfirsts++ % 64] = *d;
}

/* Payload types: of maps/media (audio, video, sharing, comfort noise, events) and not. */
static const uint8_t MEDIA_PTS[] = { 0, 8, 9, 13, 101, 104, 111, 114, 121, 122, 127, 120, 96 };

/* The start of a media payload: RTP (maybe inside TURN ChannelData), STUN, RTCP, DTLS. */
static void media_header(struct desc *d, uint16_t seq, uint8_t pt, uint32_t ssrc)
{
	uint8_t *m = d->media;
	size_t at = 0;
	int x = (int)rnd(100);
	d->media_at = 0;
	if (x < 8) { /* STUN with the cookie, length covering the rest */
		memset(m, 0, 8);
		put16(m, 1);
		put16(m + 2, (unsigned)(d->payload >= 20 ? d->payload - 20 : 0));
		put32(m + 4, 0x2112A442);
		d->media_len = 8;
		return;
	}
	if (x < 14) { /* RTCP receiver report */
		m[0] = 0x80, m[1] = 201;
		put16(m + 2, (unsigned)(d->payload / 4 > 0 ? d->payload / 4 - 1 : 0));
		d->media_len = 4;
		return;
	}
	if (x < 18) { /* DTLS */
		m[0] = 22, m[1] = 0xfe, m[2] = 0xfd;
		d->media_len = 3;
		return;
	}
	if (d->ipproto == 6 && chance(50)) { /* MS-TURN over TCP, data frame */
		m[0] = 3, m[1] = 0;
		put16(m + 2, (unsigned)(d->payload - 4 - rnd(3)));
		at = 4;
	} else if (d->ipproto == 6) { /* RFC 4571 */
		put16(m, (unsigned)(d->payload - 2 - rnd(3)));
		at = 2;
	} else if (x < 30 && d->payload >= 4) { /* TURN ChannelData around the RTP */
		put16(m, 0x4001);
		put16(m + 2, (unsigned)(d->payload - 4 - rnd(3)));
		at = 4;
	}
	m[at] = 0x80;
	m[at + 1] = (uint8_t)(pt | (chance(5) ? 0x80 : 0));
	put16(m + at + 2, seq);
	put32(m + at + 4, (uint32_t)seq * 160);
	put32(m + at + 8, ssrc);
	d->media_len = at + 12;
	d->media_at = at;
}

/* UDP rule traffic becomes the first packet of a media stream now and then. */
static void maybe_media(struct gen *g, struct desc *d)
{
	if ((d->ipproto != 17 && d->ipproto != 6) || !chance(30))
		return;
	if (d->payload < 16)
		d->payload = 16 + rnd(200);
	uint8_t pt = MEDIA_PTS[rnd(sizeof(MEDIA_PTS))];
	media_header(d, (uint16_t)rnd(65536), pt, (uint32_t)rnd64());
	g->media[g->nmedia++ % 16] = *d;
}

/* The next packet of a stream: in sequence mostly, sometimes a jump or a repeat. */
static int gen_media_next(struct gen *g, struct desc *d)
{
	if (!g->nmedia)
		return 0;
	struct desc *s = &g->media[rnd((uint32_t)(g->nmedia < 16 ? g->nmedia : 16))];
	size_t at = s->media_at;
	if (s->media_len < at + 12)
		return 0;
	uint16_t seq = (uint16_t)(s->media[at + 2] << 8 | s->media[at + 3]);
	seq = (uint16_t)(chance(85) ? seq + 1 : chance(50) ? seq : rnd(65536));
	uint8_t pt =
	    chance(90) ? (uint8_t)(s->media[at + 1] & 0x7f) : MEDIA_PTS[rnd(sizeof(MEDIA_PTS))];
	uint32_t ssrc = (uint32_t)s->media[at + 8] << 24 | (uint32_t)s->media[at + 9] << 16 |
			(uint32_t)s->media[at + 10] << 8 | s->media[at + 11];
	s->payload = 16 + rnd(300);
	media_header(s, seq, pt, ssrc);
	*d = *s;
	return 1;
}

static void gen_packet(struct gen *g, struct desc *d)
{
	int x = (int)rnd(100);
	if (x < 6 && gen_media_next(g, d))
		return;
	if (x < 38) {
		gen_rule_traffic(g, d);
		maybe_media(g, d);
	} else if (x < 50 && g->nrecent) {
		gen_reply(&g->recent[rnd((uint32_t)(g->nrecent < 64 ? g->nrecent : 64))], d);
	} else if (x < 54 && g->nold) {
		gen_reply(&g->old[rnd((uint32_t)(g->nold < 256 ? g->nold : 256))], d);
	} else if (x < 62) {
		gen_random_ports(d);
	} else if (x < 70) {
		if (!chance(50) || !gen_icmp_error(g, d))
			gen_icmp(d);
	} else if (x < 75) {
		gen_other_l4(d);
	} else if (x < 87) {
		gen_fragment(g, d);
		return;
	} else {
		gen_non_ip(d);
		if (chance(20)) {
			d->nvlan = 1 + (int)rnd(3);
			for (int i = 0; i < d->nvlan; i++)
				d->tpid[i] = chance(50) ? 0x8100 : 0x88a8;
		}
		return;
	}
	add_extras(d);
	remember(g, d);
}

/* ---- mutation ---- */

static void set_ip_length(struct frame *f, size_t end)
{
	uint8_t *ip = f->b + f->ip_off;
	if (!f->ip_off || end < f->ip_off)
		return;
	if ((ip[0] >> 4) == 4 && f->ip_off + 20 <= end) {
		put16(ip + 2, (unsigned)(end - f->ip_off));
		fix_ipv4_checksum(f);
	} else if ((ip[0] >> 4) == 6 && f->ip_off + 40 <= end) {
		put16(ip + 4, (unsigned)(end - f->ip_off - 40));
	}
}

static size_t pick_bound(const struct frame *f)
{
	size_t b = f->nbound ? f->bound[rnd((uint32_t)f->nbound)] : 14;
	if (chance(40))
		b = b + rnd(4) - (chance(50) ? 2 : 0);
	return b;
}

static void mutate(struct frame *f)
{
	int rounds = 1 + (chance(25) ? (int)rnd(3) : 0);
	for (int i = 0; i < rounds; i++) {
		uint8_t *ip = f->ip_off ? f->b + f->ip_off : NULL;
		int op = (int)rnd(15);
		switch (op) {
		case 0: /* truncated at a header boundary */
			f->len = pick_bound(f);
			break;
		case 1: /* truncated anywhere */
			f->len = 14 + rnd((uint32_t)f->len);
			break;
		case 2: /* a short datagram whose lengths say so */
		case 3: /* ... followed by padding */
		{
			size_t end = pick_bound(f);
			if (end > f->len)
				end = f->len;
			f->len = end;
			set_ip_length(f, end);
			if (op == 3) {
				size_t pad = 1 + rnd(46);
				rnd_bytes(f->b + f->len, pad);
				f->len += pad;
			}
			break;
		}
		case 4: /* IHL */
			if (ip && f->ip_off < f->len) {
				ip[0] = (uint8_t)((ip[0] & 0xf0) | rnd(16));
				if (chance(50))
					fix_ipv4_checksum(f);
			}
			break;
		case 5: /* total length / payload length */
			if (ip && f->ip_off + 6 <= f->len) {
				size_t at = (ip[0] >> 4) == 6 ? 4 : 2;
				unsigned v = (unsigned)(ip[at] << 8 | ip[at + 1]);
				v = chance(50) ? v + rnd(9) - 4 : chance(50) ? rnd(65536) : 0;
				put16(ip + at, v & 0xffff);
			}
			break;
		case 6: /* IP version */
			if (ip && f->ip_off < f->len)
				ip[0] = (uint8_t)((ip[0] & 0x0f) | (chance(50)	 ? 0x40
								    : chance(50) ? 0x60
										 : rnd(16) << 4));
			break;
		case 7: /* bytes anywhere */
		case 8: {
			int n = 1 + (int)rnd(4);
			for (int k = 0; k < n && f->len; k++)
				f->b[rnd((uint32_t)f->len)] ^= (uint8_t)(1 + rnd(255));
			break;
		}
		case 9: /* bytes in the headers */
			for (int k = 0; k < 2; k++) {
				size_t end = f->l4_off ? f->l4_off + 20 : 80;
				if (end > f->len)
					end = f->len;
				if (end > 12)
					f->b[12 + rnd((uint32_t)(end - 12))] = (uint8_t)rnd(256);
			}
			break;
		case 10: /* TCP data offset */
			if (f->l4_off && f->l4_off + 13 <= f->len)
				f->b[f->l4_off + 12] = (uint8_t)(rnd(16) << 4);
			break;
		case 11: /* an IPv6 extension header length, or its next header */
			if (ip && (ip[0] >> 4) == 6 && f->l4_off > f->ip_off + 40) {
				size_t at = f->ip_off + 40 +
					    8 * rnd((uint32_t)((f->l4_off - f->ip_off - 40) / 8));
				if (at + 2 <= f->len)
					f->b[at + (chance(50) ? 1 : 0)] =
					    (uint8_t)(chance(50) ? rnd(256) : rnd(4));
			}
			break;
		case 12: /* fragment fields */
			if (ip && (ip[0] >> 4) == 4 && f->ip_off + 8 <= f->len) {
				put16(ip + 6, chance(50) ? rnd(65536) : (chance(50) ? 0x2000 : 0));
				if (chance(50))
					fix_ipv4_checksum(f);
			} else if (f->l4_off && f->l4_off >= 8 && f->l4_off <= f->len) {
				f->b[f->l4_off - 5] = (uint8_t)rnd(256);
			}
			break;
		case 13: /* ethertype */
		{
			static const uint16_t types[] = { 0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806 };
			size_t at = 12 + 4 * rnd(3);
			if (at + 2 <= f->len)
				put16(f->b + at, types[rnd(5)]);
			break;
		}
		case 14: /* protocol */
			if (ip && (ip[0] >> 4) == 4 && f->ip_off + 10 <= f->len)
				ip[9] =
				    (uint8_t)(chance(50) ? rnd(256)
							 : (uint8_t[]){ 1, 6, 17, 58, 47 }[rnd(5)]);
			else if (ip && f->ip_off + 7 <= f->len)
				ip[6] = (uint8_t)(chance(50) ? rnd(256)
							     : (uint8_t[]){ 0, 43, 44, 60, 6, 17,
									    58 }[rnd(7)]);
			break;
		}
		if (f->len < 14)
			f->len = 14;
		if (f->len > FRAME_MAX)
			f->len = FRAME_MAX;
	}
}

/* Random bytes behind an Ethernet header. */
static void gen_garbage(struct frame *f)
{
	static const uint16_t types[] = { 0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806 };
	f->len = 14 + rnd(120);
	rnd_bytes(f->b, f->len);
	if (chance(80))
		put16(f->b + 12, types[rnd(5)]);
	f->nbound = 0;
	f->ip_off = f->l4_off = 0;
}

/* ---- directed cases: each edge the random run reaches only now and then, every run ---- */

#define MAX_DIRECTED 32

static void directed_desc(struct desc *d, int family, int ipproto, uint16_t dport)
{
	static const uint8_t peer4[4] = { 203, 0, 113, 200 }, edge4[4] = { 203, 0, 113, 10 };
	static const uint8_t peer6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, [14] = 2 };
	static const uint8_t edge6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff, [15] = 0x10 };
	memset(d, 0, sizeof(*d));
	d->l3 = family;
	d->ipproto = ipproto;
	d->sport = 40000;
	d->dport = dport;
	d->tcp_flags = 0x02;
	d->frag_id = 4242;
	d->payload = 16;
	memcpy(d->src, family == 4 ? peer4 : peer6, family == 4 ? 4 : 16);
	memcpy(d->dst, family == 4 ? edge4 : edge6, family == 4 ? 4 : 16);
}

/* Frames toward the protected Edge (203.0.113.10, 2001:db8:ff::10) from a peer. */
static int directed_frames(struct frame *out)
{
	struct desc d;
	int n = 0;

	/* six destination-options headers, then a later fragment's header (a 7th) */
	directed_desc(&d, 6, 17, 3478);
	for (d.next = 0; d.next < 6; d.next++)
		d.ext_type[d.next] = 60;
	d.ext_type[d.next++] = 44;
	d.frag = FRAG_LATER;
	d.frag_off = 5;
	build(&d, &out[n++]);
	/* seven extension headers before UDP */
	directed_desc(&d, 6, 17, 3478);
	for (d.next = 0; d.next < 7; d.next++)
		d.ext_type[d.next] = 60;
	build(&d, &out[n++]);
	/* six, then UDP: the most the program follows */
	d.next = 6;
	build(&d, &out[n++]);
	/* TCP whose data offset (15 words) runs past the datagram */
	directed_desc(&d, 4, 6, 443);
	d.payload = 0;
	build(&d, &out[n]);
	out[n].b[out[n].l4_off + 12] = 0xf0;
	n++;
	/* ICMP messages of 2 and 3 bytes (IPv4 fragmentation needed, ICMPv6 packet too big) */
	for (int fam = 4; fam <= 6; fam += 2)
		for (size_t len = 2; len <= 4; len++) {
			directed_desc(&d, fam, fam == 4 ? 1 : 58, 0);
			d.icmp_type = fam == 4 ? 3 : 2;
			d.icmp_code = fam == 4 ? 4 : 0;
			d.payload = 0;
			build(&d, &out[n]);
			out[n].len = out[n].l4_off + len;
			set_ip_length(&out[n], out[n].len);
			n++;
		}
	/* a UDP header cut to 4 bytes by the IP length, Ethernet padding after it */
	for (int fam = 4; fam <= 6; fam += 2) {
		directed_desc(&d, fam, 17, 3478);
		build(&d, &out[n]);
		set_ip_length(&out[n], out[n].l4_off + 4);
		memset(out[n].b + out[n].l4_off + 4, 0x0d, 40);
		out[n].len = out[n].l4_off + 44;
		n++;
	}
	/* an extension header longer than the payload, then no next header */
	directed_desc(&d, 6, 59, 0);
	d.next = 1;
	d.ext_type[0] = 60;
	build(&d, &out[n]);
	out[n].b[out[n].ip_off + 40 + 1] = 10; /* 88 bytes, of the 24 there are */
	n++;
	/* the other family's ICMP protocol number, with an allowed type */
	directed_desc(&d, 4, 58, 0);
	d.icmp_type = 3;
	d.icmp_code = 4;
	build(&d, &out[n++]);
	directed_desc(&d, 6, 1, 0);
	d.icmp_type = 2;
	build(&d, &out[n++]);
	/* IPv6 first fragment with destination options after the fragment header, to a
	 * listening port (passes); then its later fragment, which must follow it */
	directed_desc(&d, 6, 6, 443);
	d.next = 2;
	d.ext_type[0] = 44;
	d.ext_type[1] = 60;
	d.frag = FRAG_FIRST;
	build(&d, &out[n++]);
	d.frag = FRAG_LATER;
	d.frag_off = 8;
	build(&d, &out[n++]);
	/* a later fragment whose first was never seen; the same over IPv4 */
	d.frag_id = 4343;
	build(&d, &out[n++]);
	directed_desc(&d, 4, 17, 3478);
	d.frag = FRAG_LATER;
	d.frag_off = 8;
	build(&d, &out[n++]);
	/* three VLAN tags; a VLAN tag cut short; an Ethernet header alone; the largest frame */
	directed_desc(&d, 4, 17, 3478);
	d.nvlan = 3;
	d.tpid[0] = d.tpid[1] = d.tpid[2] = 0x8100;
	build(&d, &out[n++]);
	d.nvlan = 1;
	build(&d, &out[n]);
	out[n++].len = 16;
	build(&d, &out[n]);
	out[n++].len = 14;
	d.nvlan = 2;
	d.tpid[0] = 0x88a8;
	d.payload = FRAME_MAX - 14 - 8 - 20 - 8;
	build(&d, &out[n++]);
	/* TCP closing: the Edge connects to a peer's 5061; the peer's RST that does not
	 * acknowledge the SYN, then (once the Edge acknowledged 7001, window 1000) a RST just past
	 * the window, and a FIN with data that ends inside it */
	struct desc edge;
	directed_desc(&d, 4, 6, 40000);
	edge = d;
	memcpy(edge.src, d.dst, 4);
	memcpy(edge.dst, d.src, 4);
	edge.sport = 40000;
	edge.dport = 5061;
	edge.payload = 0;
	edge.seq = 1000;
	build(&edge, &out[n++]);
	d.sport = 5061;
	d.payload = 0;
	d.tcp_flags = 0x14;
	d.ack = 5555;
	build(&d, &out[n++]);
	edge.tcp_flags = 0x10;
	edge.seq = 1001;
	edge.ack = 7001;
	edge.win = 1000;
	build(&edge, &out[n++]);
	d.tcp_flags = 0x04;
	d.seq = 8001;
	build(&d, &out[n++]);
	d.tcp_flags = 0x11;
	d.seq = 7900;
	d.payload = 16;
	build(&d, &out[n++]);
	return n;
}

/* ---- instances: the program and the reference ---- */

struct instance {
	const char *name;
	struct prog p; /* the program, with its site and tables (tests/support.c) */
	struct ref ref;
	int flows_fd, frags_fd, streams_fd;
	uint64_t runs, mismatches;
	uint64_t resets;
	uint64_t evicted, eviction_resets; /* the program's evictions, resets they caused */
	/* coverage, from the reference's decisions */
	uint64_t reasons[2][LX_DROP_MAX]; /* [enforced] */
	uint64_t counters[LX_CNT_MAX];
	uint64_t replies, flows_opened, expired, frags_followed, remarked, ambiguous;
	uint64_t nat_replies, nat_spoofed;   /* to / from a NAT'd public address (site `nat`) */
	uint64_t icmp_by_rule, icmp_by_flow; /* ICMP errors that passed as related */
	uint64_t remote_close[3];	     /* remote FIN/RST on live TCP flows: by ref_decision */
	uint64_t dst_won, src_won, no_peer;
	uint64_t rewrites_valid_sum, rewrites_bad_sum;
	uint64_t media_tagged, media_kinds[LX_MEDIA_MAX];
	uint64_t *rule_hits; /* [rule][dir] */
};

static struct matrix M;
static struct media_table MEDIA; /* maps/media: the instances inspect media as attach does */

/* A map of the instance's program, by name (nothing pinned: through the program's map ids). */
static int map_fd(int prog_fd, const char *name)
{
	__u32 ids[64];
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = 64;
	info.map_ids = (__u64)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		die("reading the program's maps: %s", strerror(errno));
	for (__u32 i = 0; i < info.nr_map_ids && i < 64; i++) {
		int fd = bpf_map_get_fd_by_id(ids[i]);
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi);
		memset(&mi, 0, sizeof(mi));
		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &mi, &mlen) && !strcmp(mi.name, name))
			return fd;
		if (fd >= 0)
			close(fd);
	}
	die("the program has no map %s", name);
	return -1;
}

static void map_clear(int fd, size_t keysize)
{
	uint8_t key[64], next[64];
	if (keysize > sizeof(key))
		die("key too large");
	while (!bpf_map_get_next_key(fd, NULL, next)) {
		memcpy(key, next, keysize);
		if (bpf_map_delete_elem(fd, key))
			die("clearing a map: %s", strerror(errno));
	}
}

/* Shorter flow timeouts, so that flows expire within the run. */
static void short_timeouts(struct lx_config *cfg)
{
	cfg->tcp_timeout_ns = TIMEOUTS.tcp;
	cfg->tcp_closing_ns = TIMEOUTS.tcp_closing;
	cfg->udp_timeout_ns = TIMEOUTS.udp;
}

static void open_instance(struct instance *in, const char *name, const char *site_path)
{
	const struct prog_opts o = { .media = &MEDIA, .config = short_timeouts };
	memset(in, 0, sizeof(*in));
	in->name = name;
	prog_open_file(&in->p, name, &M, site_path, &o, NULL);
	if (ref_init(&in->ref, &M, &in->p.site, &TIMEOUTS) < 0)
		die("out of memory");
	uint8_t pt_kind[LX_PAYLOAD_TYPES];
	for (int i = 0; i < LX_PAYLOAD_TYPES; i++)
		pt_kind[i] = (uint8_t)MEDIA.pt[i].kind;
	ref_set_media(&in->ref, in->p.comp.media, in->p.comp.media_dscp, pt_kind);
	in->rule_hits = calloc(((size_t)M.nrules + 1) * LX_DIR_MAX, sizeof(uint64_t));
	if (!in->rule_hits)
		die("out of memory");
	in->flows_fd = map_fd(in->p.t.prog_fd, "lx_flows");
	in->frags_fd = map_fd(in->p.t.prog_fd, "lx_frags");
	in->streams_fd = map_fd(in->p.t.prog_fd, "lx_streams");
}

/* Live flows the program's flow table evicted so far (lx_flow_stats, every CPU). */
static uint64_t flows_evicted(struct instance *in)
{
	struct lx_flow_stats sum;
	if (pins_flow_stats(in->p.t.fds.flow_stats, &sum) < 0)
		die("reading lx_flow_stats");
	return sum.evicted;
}

static void set_mode(struct instance *in, uint32_t policy, uint32_t tag, uint32_t side)
{
	prog_set(&in->p, policy, tag);
	prog_side(&in->p, side);
	ref_set_mode(&in->ref, policy, tag);
	in->ref.side = side;
}

/* Both the program's flow and fragment tables and the references' start empty again. */
static void reset_state(struct instance *in)
{
	if (pins_flows_clear(in->flows_fd) < 0)
		die("clearing lx_flows: %s", strerror(errno));
	map_clear(in->frags_fd, sizeof(struct lx_frag_key));
	map_clear(in->streams_fd, sizeof(struct lx_stream_key));
	ref_clear_state(&in->ref);
	in->resets++;
}

/* ---- comparing ---- */

static uint64_t coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t tick_ns;

static int agrees(const struct testrun_result *res, const struct ref_decision *d,
		  const uint8_t *expect, size_t len)
{
	const struct lx_last *l = &res->last;
	return res->retval == d->verdict && l->verdict == d->verdict && l->rule == d->rule &&
	       (!d->rule || l->dir == d->dir) && (d->rule || l->counter == d->counter) &&
	       l->reason == d->reason && l->dscp == d->dscp && l->media == d->media &&
	       res->out_len == len && !memcmp(res->out, expect, len);
}

static int flows_fd_now = -1;		  /* the program's lx_flows, of the instance being run */
static const struct testrun *flows_t_now; /* and that instance */

/* The flows a decision writes are in the program's table with the same closing flag. */
static int flows_agree(const struct ref_updates *u)
{
	for (int i = 0; i < u->nflows && flows_fd_now >= 0; i++) {
		const struct ref_flow_key *k = &u->flow_key[i];
		struct lx_flow_key key;
		struct lx_flow flow;
		memset(&key, 0, sizeof(key));
		key.family = k->family;
		key.proto = k->proto;
		key.local_port = k->lport;
		key.remote_port = k->rport;
		memcpy(key.local_addr, k->laddr, 16);
		memcpy(key.remote_addr, k->raddr, 16);
		if (testrun_flow(flows_t_now, &key, &flow) ||
		    !flow.closing != !u->flow[i].closing ||
		    flow.tcp_state != u->flow[i].tcp_state || flow.rcv_nxt != u->flow[i].rcv_nxt ||
		    flow.rcv_wnd != u->flow[i].rcv_wnd)
			return 0;
	}
	return 1;
}

/* The flows a decision wrote, as the reference and the program have them. */
static void print_flows(const struct ref_updates *u)
{
	for (int i = 0; i < u->nflows; i++) {
		struct lx_flow_key key;
		struct lx_flow flow;
		const struct ref_flow *f = &u->flow[i];
		memset(&key, 0, sizeof(key));
		key.family = u->flow_key[i].family;
		key.proto = u->flow_key[i].proto;
		key.local_port = u->flow_key[i].lport;
		key.remote_port = u->flow_key[i].rport;
		memcpy(key.local_addr, u->flow_key[i].laddr, 16);
		memcpy(key.remote_addr, u->flow_key[i].raddr, 16);
		printf("    flow %u -> %u: reference closing %d state %d rcv_nxt %u rcv_wnd %u",
		       key.local_port, key.remote_port, f->closing, f->tcp_state, f->rcv_nxt,
		       f->rcv_wnd);
		if (flows_fd_now >= 0 && !testrun_flow(flows_t_now, &key, &flow))
			printf("; program closing %u state %u rcv_nxt %u rcv_wnd %u\n",
			       flow.closing, flow.tcp_state, flow.rcv_nxt, flow.rcv_wnd);
		else
			printf("; not in the program's table\n");
	}
}

/*
 * After a decision whose flow expiry the clock could not settle, the flows of the frame's
 * 5-tuple (both ways) are taken as the program's table holds them: two outcomes may look
 * alike on the wire (a refresh or none) yet leave different times behind.
 */
static void sync_flows(struct ref *r, const uint8_t *frame, size_t len)
{
	struct ref_pkt p;
	ref_parse(frame, len, &p);
	if (p.kind != REF_PORTS || flows_fd_now < 0)
		return;
	for (int local_is_src = 0; local_is_src < 2; local_is_src++) {
		struct lx_flow_key key;
		struct lx_flow flow;
		struct ref_flow_key k;
		memset(&key, 0, sizeof(key));
		memset(&k, 0, sizeof(k));
		k.family = key.family = (uint8_t)p.family;
		k.proto = key.proto = (uint8_t)p.proto;
		k.lport = key.local_port = local_is_src ? p.sport : p.dport;
		k.rport = key.remote_port = local_is_src ? p.dport : p.sport;
		const uint8_t *dst = site_nat_private(r->s, p.family, p.daddr); /* flows: private */
		if (!dst)
			dst = p.daddr;
		memcpy(key.local_addr, local_is_src ? p.saddr : dst, 16);
		memcpy(key.remote_addr, local_is_src ? dst : p.saddr, 16);
		memcpy(k.laddr, key.local_addr, 16);
		memcpy(k.raddr, key.remote_addr, 16);
		if (testrun_flow(flows_t_now, &key, &flow))
			continue;
		struct ref_flow f = { .last = { flow.last_seen_ns, flow.last_seen_ns },
				      .closing = flow.closing != 0,
				      .tcp_state = flow.tcp_state,
				      .rcv_nxt = flow.rcv_nxt,
				      .rcv_wnd = flow.rcv_wnd };
		ref_flow_put(r, &k, &f);
	}
}

/*
 * Decides like the program did when the clock leaves a flow's expiry open: of the possible
 * outcomes, the one that gives the program's decision and leaves its flow table as it is.
 */
static void decide(const struct ref *r, const uint8_t *frame, size_t len, struct ref_time now,
		   const struct testrun_result *res, struct ref_decision *d, struct ref_updates *u,
		   uint8_t *out)
{
	ref_decide(r, frame, len, now, 0, d, u, out);
	int n = d->ambiguous;
	for (uint32_t c = 1; n && n < 8 && c < (1u << n); c++) {
		if (agrees(res, d, out, len) && flows_agree(u))
			return;
		ref_decide(r, frame, len, now, c, d, u, out);
	}
	if (n && !(agrees(res, d, out, len) && flows_agree(u)))
		ref_decide(r, frame, len, now, 0, d, u, out);
}

static const char *verdict_name(uint32_t v)
{
	return v == XDP_PASS ? "pass" : v == XDP_DROP ? "drop" : "?";
}

static const char *kind_name(int k)
{
	static const char *const names[] = { "tcp/udp", "non-ip",   "later-fragment",
					     "icmp",	"other-l4", "malformed" };
	return k >= 0 && k <= REF_MALFORMED ? names[k] : "?";
}

static void print_hex(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		printf("%s%02x%s", i % 32 ? "" : "    ", b[i],
		       i % 32 == 31 || i + 1 == len ? "\n" : "");
}

static void print_decisions(const struct instance *in, const struct ref *r, const uint8_t *frame,
			    size_t len, const struct testrun_result *res,
			    const struct ref_decision *d, const uint8_t *expect)
{
	char a[160], b[160], sa[64] = "-", da[64] = "-";
	struct ref_pkt p;
	ref_parse(frame, len, &p);
	if (p.have_addrs) {
		inet_ntop(p.family == 4 ? AF_INET : AF_INET6, p.saddr, sa, sizeof(sa));
		inet_ntop(p.family == 4 ? AF_INET : AF_INET6, p.daddr, da, sizeof(da));
	}
	printf("    instance %s, policy %s, tag %s, %zu bytes: %s%s%s, proto %d, %s:%u -> %s:%u, "
	       "flags 0x%02x%s\n",
	       in->name, r->policy == LX_POLICY_ENFORCE ? "enforce" : "monitor",
	       r->tag ? "on" : "off", len, kind_name(p.kind), p.why ? ": " : "", p.why ? p.why : "",
	       p.ipproto, sa, p.sport, da, p.dport, p.tcp_flags,
	       p.first_frag ? ", first fragment" : "");
	print_hex(frame, len);
	ref_rule_text(r, res->last.rule, a, sizeof(a));
	ref_rule_text(r, d->rule, b, sizeof(b));
	printf(
	    "    program:   verdict %s (retval %u), rule %s, dir %u, counter %s, reason %s, dscp "
	    "%u\n",
	    verdict_name(res->last.verdict), res->retval, a, res->last.dir,
	    stats_counter_name((int)res->last.counter), stats_reason_name(res->last.reason),
	    res->last.dscp);
	printf("    reference: verdict %s, rule %s, dir %u, counter %s, reason %s, dscp %u%s%s\n",
	       verdict_name(d->verdict), b, d->dir, stats_counter_name((int)d->counter),
	       stats_reason_name(d->reason), d->dscp,
	       d->reply_passed ? ", reply on a live flow" : "",
	       d->expired_flow ? ", flow expired" : "");
	if (res->out_len != len || memcmp(res->out, expect, len)) {
		size_t i = 0;
		while (i < len && i < res->out_len && res->out[i] == expect[i])
			i++;
		printf(
		    "    output bytes differ from offset %zu (program %zu bytes, expected %zu)\n",
		    i, res->out_len, len);
		if (i < len && i < res->out_len)
			printf("    at %zu: program %02x, expected %02x\n", i, res->out[i],
			       expect[i]);
	}
}

static void note_coverage(struct instance *in, const struct ref_decision *d, const uint8_t *frame,
			  const struct testrun_result *res)
{
	int enforced = in->ref.policy == LX_POLICY_ENFORCE;
	if (d->reason)
		in->reasons[enforced][d->reason]++;
	if (d->rule)
		in->rule_hits[d->rule * LX_DIR_MAX + d->dir]++;
	else
		in->counters[d->counter]++;
	in->replies += (uint64_t)d->reply_passed;
	in->nat_replies += (uint64_t)d->nat_reply;
	in->nat_spoofed += (uint64_t)d->nat_spoofed;
	if (d->remote_close > 0 && d->remote_close < 3)
		in->remote_close[d->remote_close]++;
	in->flows_opened += (uint64_t)d->flow_opened;
	in->expired += (uint64_t)d->expired_flow;
	in->frags_followed += (uint64_t)d->frag_followed;
	in->icmp_by_rule += d->icmp_related == 1;
	in->icmp_by_flow += d->icmp_related == 2;
	in->dst_won += d->both_ends == 1;
	in->src_won += d->both_ends == 2;
	in->no_peer += (uint64_t)d->no_peer;
	in->ambiguous += d->ambiguous ? 1 : 0;
	in->media_tagged += (uint64_t)d->media_tagged;
	if (d->media < LX_MEDIA_MAX)
		in->media_kinds[d->media]++;
	if (d->remarked) {
		in->remarked++;
		/* A valid IPv4 header checksum must stay valid (RFC 1624). */
		struct ref_pkt p;
		ref_parse(frame, res->out_len, &p);
		if (p.family == 4) {
			const uint8_t *ip_in = frame + p.ip_off, *ip_out = res->out + p.ip_off;
			if (ipv4_checksum_ok(ip_in))
				ipv4_checksum_ok(ip_out) ? in->rewrites_valid_sum++
							 : in->rewrites_bad_sum++;
		}
	}
}

static uint64_t total_mismatches;

/* One frame through the program and the reference. Returns -1 on a test-run error. */
static int run_frame(struct instance *in, const uint8_t *frame, size_t len)
{
	static struct testrun_result res;
	static uint8_t out[FRAME_MAX];
	struct ref_decision d;
	struct ref_updates u;
	struct text_error err;

	uint64_t t0 = coarse_ns();
	int rc = testrun_frame(&in->p.t, frame, len, &res, &err);
	uint64_t t1 = coarse_ns();
	if (rc) {
		printf("FAIL %s: testrun_frame on a %zu-byte frame: %s\n", in->name, len,
		       rc < 0 ? err.msg : "refused for its size");
		return -1;
	}
	in->runs++;
	flows_fd_now = in->flows_fd;
	flows_t_now = &in->p.t;
	struct ref_time now = { .lo = t0 - tick_ns, .hi = t1 + tick_ns };

	decide(&in->ref, frame, len, now, &res, &d, &u, out);
	if (!agrees(&res, &d, out, len)) {
		in->mismatches++;
		total_mismatches++;
		if (total_mismatches <= MAX_MISMATCHES) {
			printf("mismatch %llu (frame %llu of %s):\n",
			       (unsigned long long)total_mismatches, (unsigned long long)in->runs,
			       in->name);
			print_decisions(in, &in->ref, frame, len, &res, &d, out);
		}
	}
	/* The flows the decision wrote: the same closing mark and TCP window state. */
	if (!flows_agree(&u)) {
		in->mismatches++;
		total_mismatches++;
		if (total_mismatches <= MAX_MISMATCHES) {
			printf("mismatch %llu (frame %llu of %s): flow state differs\n",
			       (unsigned long long)total_mismatches, (unsigned long long)in->runs,
			       in->name);
			print_flows(&u);
			print_decisions(in, &in->ref, frame, len, &res, &d, out);
		}
	}
	note_coverage(in, &d, frame, &res);
	ref_commit(&in->ref, &d, &u, len);
	if (d.ambiguous)
		sync_flows(&in->ref, frame, len);

	/* A full set of the program's flow table evicted a live flow, which the reference (one
	 * table without sets) keeps: both start empty again. Rare (see FLOWS_RESET_AT). */
	uint64_t evicted = u.nflows ? flows_evicted(in) : in->evicted;
	if (evicted != in->evicted) {
		in->evicted = evicted;
		in->eviction_resets++;
		reset_state(in);
	} else if (ref_nflows(&in->ref) > FLOWS_RESET_AT || ref_nfrags(&in->ref) > FRAGS_RESET_AT ||
		   ref_nstreams(&in->ref) > STREAMS_RESET_AT)
		reset_state(in);
	return 0;
}

/* ---- the counters at the end ---- */

static int count_eq(const struct lx_count *a, const struct ref_count *b)
{
	return a->packets == b->packets && a->bytes == b->bytes;
}

static void compare_report(struct instance *in)
{
	struct stats_report rep;
	const struct ref_tally *t = &in->ref.tally;
	char text[160];
	prog_report(&in->p, &rep);

	int bad = 0, seen[LX_MAX_RULES] = { 0 };
	for (int i = 0; i < rep.nrows; i++) {
		const struct stats_row *row = &rep.rows[i];
		const struct ref_count *c = &t->rules[row->rule * LX_DIR_MAX + row->dir];
		const struct ref_count *rm = &t->remarked[row->rule * LX_DIR_MAX + row->dir];
		seen[row->rule] = 1;
		if (!count_eq(&row->count, c) || !count_eq(&row->remarked, rm)) {
			if (bad++ < 5) {
				ref_rule_text(&in->ref, row->rule, text, sizeof(text));
				printf("    rule %s %s: program %llu/%llu (re-marked %llu/%llu), "
				       "reference %llu/%llu (re-marked %llu/%llu)\n",
				       text, stats_dir_name(row->dir),
				       (unsigned long long)row->count.packets,
				       (unsigned long long)row->count.bytes,
				       (unsigned long long)row->remarked.packets,
				       (unsigned long long)row->remarked.bytes,
				       (unsigned long long)c->packets, (unsigned long long)c->bytes,
				       (unsigned long long)rm->packets,
				       (unsigned long long)rm->bytes);
			}
		}
	}
	for (int rule = 1; rule <= M.nrules; rule++)
		for (int dir = 0; dir < LX_DIR_MAX; dir++)
			if (!seen[rule] && t->rules[rule * LX_DIR_MAX + dir].packets && bad++ < 5)
				printf("    rule %d counted by the reference, not in the report\n",
				       rule);
	CHECK(bad == 0,
	      "%s: per-rule and per-direction counters (packets, bytes, re-marked) equal "
	      "the reference's (%d rows)",
	      in->name, rep.nrows);

	bad = 0;
	for (int c = 0; c < LX_CNT_MAX; c++)
		if (!count_eq(&rep.special[c], &t->special[c])) {
			bad++;
			printf("    %s: program %llu/%llu, reference %llu/%llu\n",
			       stats_counter_name(c), (unsigned long long)rep.special[c].packets,
			       (unsigned long long)rep.special[c].bytes,
			       (unsigned long long)t->special[c].packets,
			       (unsigned long long)t->special[c].bytes);
		}
	CHECK(bad == 0,
	      "%s: unclassified/non_ip/fragments/icmp/other_l4/malformed counters equal "
	      "the reference's",
	      in->name);

	bad = 0;
	for (int r = 1; r < LX_DROP_MAX; r++)
		for (int e = 0; e < 2; e++) {
			const struct lx_count *pc = e ? &rep.drops[r] : &rep.would_drop[r];
			const struct ref_count *rc = e ? &t->drops[r] : &t->would_drop[r];
			if (!count_eq(pc, rc)) {
				bad++;
				printf(
				    "    %s %s: program %llu/%llu, reference %llu/%llu\n",
				    e ? "dropped" : "would drop", stats_reason_name((uint32_t)r),
				    (unsigned long long)pc->packets, (unsigned long long)pc->bytes,
				    (unsigned long long)rc->packets, (unsigned long long)rc->bytes);
			}
		}
	CHECK(bad == 0, "%s: drops and would-drops per reason equal the reference's", in->name);
	CHECK(count_eq(&rep.total, &t->total) && t->total.packets == in->runs,
	      "%s: total %llu packets / %llu bytes (reference %llu / %llu, frames run %llu)",
	      in->name, (unsigned long long)rep.total.packets, (unsigned long long)rep.total.bytes,
	      (unsigned long long)t->total.packets, (unsigned long long)t->total.bytes,
	      (unsigned long long)in->runs);
	stats_free(&rep);
}

/* The run exercised what it claims to (so that "no mismatch" means something). */
static void check_coverage(const struct instance *in, int is_protected, int long_run)
{
	(void)long_run;
	int missing = 0;
	for (int c = 0; c < LX_CNT_MAX; c++)
		if (!in->counters[c]) {
			missing++;
			printf("    %s: no frame counted as %s\n", in->name, stats_counter_name(c));
		}
	CHECK(missing == 0, "%s: every special counter was exercised", in->name);

	int active = 0, hit = 0, both = 0;
	for (int i = 0; i < M.nrules; i++) {
		if (!in->p.comp.active[i])
			continue;
		active++;
		uint64_t a = in->rule_hits[(i + 1) * LX_DIR_MAX],
			 b = in->rule_hits[(i + 1) * LX_DIR_MAX + 1];
		hit += a || b;
		both += a && b;
		if (!a && !b) {
			char text[160];
			ref_rule_text(&in->ref, (uint32_t)i + 1, text, sizeof(text));
			printf("    %s: active rule never matched: %s\n", in->name, text);
		}
	}
	CHECK(hit == active, "%s: every active rule matched (%d of %d; %d in both directions)",
	      in->name, hit, active, both);
	if (!is_protected) {
		uint64_t any = 0;
		for (int r = 0; r < LX_DROP_MAX; r++)
			any += in->reasons[0][r] + in->reasons[1][r];
		CHECK(any == 0, "%s: no protected role, no drop reason", in->name);
	} else {
		missing = 0;
		for (int e = 0; e < 2; e++)
			for (int r = 1; r < LX_DROP_MAX; r++)
				if (!in->reasons[e][r]) {
					missing++;
					printf("    %s: no %s for reason %s\n", in->name,
					       e ? "drop" : "would-drop",
					       stats_reason_name((uint32_t)r));
				}
		CHECK(missing == 0, "%s: every drop reason happened, in enforce and in monitor",
		      in->name);
		CHECK(
		    in->replies && in->flows_opened && in->expired && in->frags_followed,
		    "%s: flows opened %llu, replies passed on them %llu, replies on expired flows "
		    "%llu, later fragments that followed their first %llu",
		    in->name, (unsigned long long)in->flows_opened, (unsigned long long)in->replies,
		    (unsigned long long)in->expired, (unsigned long long)in->frags_followed);
		if (in->p.site.nnat)
			CHECK(in->nat_replies && in->nat_spoofed,
			      "%s: replies to a NAT'd public address passed on its private host's "
			      "flows %llu times; flows forged from a public address were spoofed "
			      "%llu times",
			      in->name, (unsigned long long)in->nat_replies,
			      (unsigned long long)in->nat_spoofed);
		CHECK(in->remote_close[1] && in->remote_close[2],
		      "%s: FIN or RST from the remote side on a live TCP flow: %llu fit the "
		      "window and closed it, %llu did not and changed nothing",
		      in->name, (unsigned long long)in->remote_close[1],
		      (unsigned long long)in->remote_close[2]);
		CHECK(in->icmp_by_rule && in->icmp_by_flow &&
			  in->reasons[0][LX_DROP_ICMP_UNRELATED] &&
			  in->reasons[0][LX_DROP_ICMP_OFFLINK],
		      "%s: ICMP errors related to a listen rule's connection %llu, to a flow %llu; "
		      "would-drop icmp-unrelated %llu, icmp-offlink %llu",
		      in->name, (unsigned long long)in->icmp_by_rule,
		      (unsigned long long)in->icmp_by_flow,
		      (unsigned long long)in->reasons[0][LX_DROP_ICMP_UNRELATED],
		      (unsigned long long)in->reasons[0][LX_DROP_ICMP_OFFLINK]);
	}
	CHECK(
	    in->dst_won && in->src_won && in->no_peer,
	    "%s: both ends had a rule %llu times (the destination's won %llu, the source's %llu); "
	    "a client rule without a unicast peer holding a role did not count %llu times",
	    in->name, (unsigned long long)(in->dst_won + in->src_won),
	    (unsigned long long)in->dst_won, (unsigned long long)in->src_won,
	    (unsigned long long)in->no_peer);
	CHECK(
	    in->remarked > 0 && in->rewrites_valid_sum > 0 && in->rewrites_bad_sum == 0,
	    "%s: DSCP re-marked %llu frames; a valid IPv4 checksum stayed valid %llu times, broke "
	    "%llu times",
	    in->name, (unsigned long long)in->remarked, (unsigned long long)in->rewrites_valid_sum,
	    (unsigned long long)in->rewrites_bad_sum);
	const uint64_t *k = in->media_kinds;
	/* open.site gives client-media, edge-media-relay and stun DSCPs of their own: there the
	 * mixed services are tagged by the site, not by what they carry. */
	int by_site = !strcmp(in->name, "open");
	CHECK(k[LX_MEDIA_STUN] && k[LX_MEDIA_AUDIO] && k[LX_MEDIA_VIDEO] && k[LX_MEDIA_SHARING] &&
		  k[LX_MEDIA_RTCP] && k[LX_MEDIA_DTLS] && k[LX_MEDIA_OTHER] &&
		  (in->media_tagged || by_site),
	      "%s: media services' UDP packets, as the program and the reference both saw them: "
	      "stun %llu, audio %llu, video %llu, sharing %llu, rtcp %llu, dtls %llu, other %llu; "
	      "mixed services tagged by what they carried %llu",
	      in->name, (unsigned long long)k[LX_MEDIA_STUN], (unsigned long long)k[LX_MEDIA_AUDIO],
	      (unsigned long long)k[LX_MEDIA_VIDEO], (unsigned long long)k[LX_MEDIA_SHARING],
	      (unsigned long long)k[LX_MEDIA_RTCP], (unsigned long long)k[LX_MEDIA_DTLS],
	      (unsigned long long)k[LX_MEDIA_OTHER], (unsigned long long)in->media_tagged);
}

/*
 * The reference is the documented semantics, without a known deviation of the program left
 * to imitate: across the instances, every frame agreed and no run stopped early.
 */
static void check_documented(const struct instance *inst, int n, uint64_t want_runs, int failed)
{
	uint64_t runs = 0, mismatches = 0;
	int complete = !failed;
	for (int k = 0; k < n; k++) {
		runs += inst[k].runs;
		mismatches += inst[k].mismatches;
		complete = complete && inst[k].runs == want_runs;
	}
	CHECK(complete && mismatches == 0 && mismatches == total_mismatches,
	      "strict reference (documented semantics): none of the %llu frames of %d instances "
	      "departs from it (%llu mismatches, %s)",
	      (unsigned long long)runs, n, (unsigned long long)mismatches,
	      complete ? "every frame run" : "the run stopped early");
}

int main(int argc, char **argv)
{
	struct text_error err;
	int long_run = argc > 1 && !strcmp(argv[1], "--long");
	uint64_t packets = long_run ? LONG_PACKETS : SHORT_PACKETS;
	uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16;
	const char *env;

	support_name("test_differential");
	if ((env = getenv("LYNCXDP_SEED")) && *env)
		seed = strtoull(env, NULL, 0);
	if ((env = getenv("LYNCXDP_PACKETS")) && *env)
		packets = strtoull(env, NULL, 0);
	rng_state = seed;
	printf(
	    "seed: %llu, %llu frames (LYNCXDP_SEED=%llu LYNCXDP_PACKETS=%llu replays this run)\n",
	    (unsigned long long)seed, (unsigned long long)packets, (unsigned long long)seed,
	    (unsigned long long)packets);
	fflush(stdout);

	struct timespec res;
	clock_getres(CLOCK_MONOTONIC_COARSE, &res);
	tick_ns = (uint64_t)res.tv_sec * 1000000000ULL + (uint64_t)res.tv_nsec;

	if (matrix_load(MATRIX_PATH, &M, &err) < 0 || media_load(MEDIA_PATH, &MEDIA, &err) < 0)
		die("%s", err.msg);
	static struct instance inst[2];
	open_instance(&inst[0], "protected", SITE_PROTECTED);
	open_instance(&inst[1], "open", SITE_OPEN);
	setup_addrs(&inst[0].ref, &inst[0].p.site);

	static struct gen g;
	g.m = &M;
	static struct frame f;
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	uint64_t next_switch = 0, switches = 0;
	int failed = 0;

	/* The directed cases first, in both policies, with tagging. */
	static struct frame directed[MAX_DIRECTED];
	int ndirected = directed_frames(directed);
	for (uint32_t policy = LX_POLICY_MONITOR; policy <= LX_POLICY_ENFORCE; policy++)
		for (int k = 0; k < 2 && !failed; k++) {
			for (uint32_t side = LX_SIDE_PROTECTED; side <= LX_SIDE_UNPROTECTED;
			     side += LX_SIDE_UNPROTECTED - LX_SIDE_PROTECTED) {
				set_mode(&inst[k], policy, 1, side);
				for (int j = 0; j < ndirected && !failed; j++)
					failed =
					    run_frame(&inst[k], directed[j].b, directed[j].len) < 0;
			}
		}

	for (uint64_t i = 0; i < packets && !failed && total_mismatches < MAX_MISMATCHES; i++) {
		if (i == next_switch) {
			uint32_t policy = chance(50) ? LX_POLICY_ENFORCE : LX_POLICY_MONITOR;
			uint32_t tag = (uint32_t)chance(50);
			/* Now and then the frames arrive where no protected host is. */
			uint32_t side = chance(20) ? LX_SIDE_UNPROTECTED : LX_SIDE_PROTECTED;
			for (int k = 0; k < 2; k++)
				set_mode(&inst[k], policy, tag, side);
			next_switch = i + 1 + rnd(400);
			switches++;
		}
		if (chance(2)) {
			gen_garbage(&f);
		} else {
			struct desc d;
			gen_packet(&g, &d);
			build(&d, &f);
			if (d.l3 && chance(1)) { /* as large as a test run takes */
				d.payload += FRAME_MAX - f.len;
				build(&d, &f);
			}
			if (chance(35))
				mutate(&f);
		}
		for (int k = 0; k < 2 && !failed; k++)
			failed = run_frame(&inst[k], f.b, f.len) < 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	double secs =
	    (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;

	for (int k = 0; k < 2; k++) {
		struct instance *in = &inst[k];
		CHECK(
		    !failed && in->runs == packets + 4 * (uint64_t)ndirected && in->mismatches == 0,
		    "%s: %llu frames (%d directed cases in both policies and both sides, then %llu "
		    "random) "
		    "through the program and the reference, %llu mismatches (seed %llu)",
		    in->name, (unsigned long long)in->runs, ndirected, (unsigned long long)packets,
		    (unsigned long long)in->mismatches, (unsigned long long)seed);
		compare_report(in);
		check_coverage(in, k == 0, long_run);
		printf("info %s: %llu flow/fragment table resets (%llu after an eviction in a full "
		       "set), %llu frames with an expiry the clock could not settle\n",
		       in->name, (unsigned long long)in->resets,
		       (unsigned long long)in->eviction_resets, (unsigned long long)in->ambiguous);
	}
	check_documented(inst, 2, packets + 4 * (uint64_t)ndirected, failed);
	printf("info: %llu frames x 2 instances in %.1f s (%.0f test runs/s), %llu policy/tag "
	       "switches\n",
	       (unsigned long long)packets, secs, secs > 0 ? 2.0 * (double)packets / secs : 0.0,
	       (unsigned long long)switches);
	for (int k = 0; k < 2; k++) {
		prog_close(&inst[k].p);
		ref_free(&inst[k].ref);
		free(inst[k].rule_hits);
	}
	matrix_free(&M);
	return check_done();
}

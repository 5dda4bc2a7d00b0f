// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF_PROG_TEST_RUN tests of the enforce policy and the DSCP tag mode, on private instances
 * of the real XDP program (nothing attached, nothing pinned): the Edge's listening rules,
 * forbidden ports and transports, flows opened by protected hosts, ICMP (errors related to
 * connections or not, router advertisements and redirects from the link or not), fragments,
 * malformed packets, monitor versus enforce, the DSCP rewrite and a randomised checksum run.
 *
 * Matrix maps/sfb2015.matrix; sites tests/data/policy/ (edge-external and edge-internal
 * protected, a Front End and a clients prefix not). Run from the repository top, as
 * tests/run.sh does. LYNCXDP_SEED=N replays the randomised part with seed N. Instances
 * (struct prog), frames and checksums: tests/support.c.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <sched.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "support.h"
#include "compile.h"
#include "matrix.h"
#include "packet.h"
#include "site.h"
#include "stats.h"
#include "testrun.h"

#include "lyncxdp.skel.h" /* after the shared header it needs */

#define MATRIX_PATH "maps/sfb2015.matrix"
#define SITE_BASE   "tests/data/policy/base.site"
#define SITE_ICMP   "tests/data/policy/icmp.site"
#define SITE_DSCP   "tests/data/policy/dscp.site"
#define SITE_ER	    "tests/data/policy/expressroute.site"

#define V_DROP XDP_DROP /* 1 */
#define V_PASS XDP_PASS /* 2 */

#define RANDOM_PACKETS 20000

/* ---- addresses of the site (tests/data/policy/base.site) ---- */

struct host {
	const char *name;
	const char *v4;
	const char *v6;
};

static const struct host EXT = { "edge-external", "203.0.113.10", "2001:db8:ff::10" };
static const struct host INT = { "edge-internal", "198.51.100.10", "2001:db8:100::10" };
static const struct host FE = { "frontend", "192.0.2.11", "2001:db8:10::11" };
static const struct host CLIENT = { "client", "192.0.2.130", "2001:db8:20::30" };
/* Another listed client: a client rule counts only toward a peer holding a role. */
static const struct host CLIENT2 = { "client2", "192.0.2.131", "2001:db8:20::31" };
/* No role: peers on the Internet, a DNS server, a federation partner, a perimeter server. */
static const struct host PEER = { "peer", "203.0.113.200", "2001:db8:ffff::200" };
static const struct host PEER2 = { "peer2", "203.0.113.201", "2001:db8:ffff::201" };
static const struct host DNS = { "dns-server", "203.0.113.53", "2001:db8:ffff::53" };
static const struct host DNS2 = { "other-dns-server", "203.0.113.54", "2001:db8:ffff::54" };
static const struct host PARTNER = { "federation-partner", "203.0.113.61", "2001:db8:ffff::61" };
static const struct host PARTNER2 = { "other-partner", "203.0.113.62", "2001:db8:ffff::62" };
static const struct host PERIM = { "perimeter-server", "198.51.100.60", "2001:db8:100::60" };

static const char *addr_of(const struct host *h, int fam)
{
	return fam == 4 ? h->v4 : h->v6;
}

/* ---- shared state ---- */

static struct matrix M;
static struct site S_base, S_icmp, S_dscp;
static struct compiled C_base, C_icmp, C_dscp;

static const char *verdict_name(uint32_t v)
{
	return v == XDP_PASS ? "XDP_PASS" : v == XDP_DROP ? "XDP_DROP" : "XDP_?";
}

/* ---- frames ---- */

struct frame {
	uint8_t b[1600];
	size_t len;
};

static struct packet_spec spec(uint8_t ipproto, const struct host *src, uint16_t sport,
			       const struct host *dst, uint16_t dport, int fam)
{
	struct packet_spec s;
	memset(&s, 0, sizeof(s));
	s.ipproto = ipproto;
	s.src = endpoint_at(addr_of(src, fam), sport);
	s.dst = endpoint_at(addr_of(dst, fam), dport);
	s.tcp_flags = 0x02;
	return s;
}

static struct frame build(const struct packet_spec *s)
{
	struct frame f;
	f.len = frame_build(s, f.b, sizeof(f.b));
	return f;
}

static struct frame pkt(uint8_t ipproto, const struct host *src, uint16_t sport,
			const struct host *dst, uint16_t dport, int fam, uint8_t tcp_flags,
			size_t payload)
{
	struct packet_spec s = spec(ipproto, src, sport, dst, dport, fam);
	if (tcp_flags)
		s.tcp_flags = tcp_flags;
	s.payload_len = payload;
	return build(&s);
}

/* Offset of the IP header (after Ethernet and any VLAN tags). */
static size_t ip_off(const struct frame *f)
{
	size_t off = 12;
	while (f->b[off] == 0x81 || f->b[off] == 0x88)
		off += 4;
	return off + 2;
}

static int frame_family(const struct frame *f)
{
	return f->b[ip_off(f)] >> 4;
}

/* Offset of the L4 header: after the IPv4 options or IPv6 extension headers. */
static size_t l4_off(const struct frame *f)
{
	size_t ip = ip_off(f);
	if (frame_family(f) == 4)
		return ip + (size_t)(f->b[ip] & 0x0f) * 4;
	uint8_t next = f->b[ip + 6];
	size_t off = ip + 40;
	while (next == 0 || next == 43 || next == 60 || next == 44) {
		uint8_t n = f->b[off];
		off += next == 44 ? 8 : ((size_t)f->b[off + 1] + 1) * 8;
		next = n;
	}
	return off;
}

/* An ICMP or ICMPv6 message of another type than echo: patch type and code. */
static struct frame icmp_pkt(const struct host *src, const struct host *dst, int fam, uint8_t type,
			     uint8_t code)
{
	struct frame f = pkt(fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, src, 0, dst, 0, fam, 0, 16);
	size_t l4 = l4_off(&f);
	f.b[l4] = type;
	f.b[l4 + 1] = code;
	return f;
}

/*
 * An ICMP error from src to dst quoting the start of another frame: its IP header and the
 * first l4_bytes of its transport header (RFC 792 / RFC 4443 quote at least 8).
 */
static struct frame icmp_error_pkt(const struct host *src, const struct host *dst, int fam,
				   uint8_t type, uint8_t code, const struct frame *quoted,
				   size_t l4_bytes)
{
	size_t qip = ip_off(quoted), qlen = l4_off(quoted) - qip + l4_bytes;
	struct frame f =
	    pkt(fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, src, 0, dst, 0, fam, 0, qlen);
	size_t l4 = l4_off(&f);
	f.b[l4] = type;
	f.b[l4 + 1] = code;
	memcpy(f.b + l4 + 8, quoted->b + qip, qlen);
	return f;
}

/* Sets the IPv6 hop limit of a frame. */
static void set_hop_limit(struct frame *f, uint8_t hop)
{
	f->b[ip_off(f) + 7] = hop;
}

/* A fragment: first (offset 0, MF) or later (offset 8 bytes x off); id patched in. */
static struct frame frag_pkt(uint8_t ipproto, const struct host *src, const struct host *dst,
			     uint16_t dport, int fam, int first, uint32_t id)
{
	struct packet_spec s = spec(ipproto, src, 40000, dst, dport, fam);
	s.payload_len = 64;
	s.more_fragments = first;
	s.frag_offset = first ? 0 : 9;
	s.ipv6_fragment = fam == 6;
	struct frame f = build(&s);
	size_t ip = ip_off(&f);
	if (fam == 4) {
		f.b[ip + 4] = (uint8_t)(id >> 8);
		f.b[ip + 5] = (uint8_t)id;
		ipv4_checksum_fix(f.b + ip);
	} else {
		uint8_t *fh = f.b + ip + 40; /* packet_build: no other extension header */
		fh[4] = (uint8_t)(id >> 24);
		fh[5] = (uint8_t)(id >> 16);
		fh[6] = (uint8_t)(id >> 8);
		fh[7] = (uint8_t)id;
	}
	return f;
}

static struct frame arp_frame(int nvlans)
{
	struct frame f;
	memset(&f, 0, sizeof(f));
	memset(f.b, 0xff, 6);
	const uint8_t src_mac[6] = { 0x02, 0, 0, 0, 0, 9 };
	memcpy(f.b + 6, src_mac, 6);
	size_t off = 12;
	for (int i = 0; i < nvlans; i++, off += 4) {
		f.b[off] = i == 0 && nvlans == 2 ? 0x88 : 0x81;
		f.b[off + 1] = i == 0 && nvlans == 2 ? 0xa8 : 0x00;
		f.b[off + 3] = 7;
	}
	f.b[off] = 0x08;
	f.b[off + 1] = 0x06;
	uint8_t *a = f.b + off + 2;
	const uint8_t arp[28] = {
		0,   1, 8,   0,	  6, 4, 0, 1, 2, 0, 0,	 0, 0,	 9,
		203, 0, 113, 200, 0, 0, 0, 0, 0, 0, 203, 0, 113, 10
	}; /* who has the Edge? */
	memcpy(a, arp, sizeof(arp));
	f.len = off + 2 + sizeof(arp) + 18; /* padded to the Ethernet minimum */
	return f;
}

/* ---- instances ---- */

static struct testrun_result R; /* the last frame's result */

/* An instance of the program for site s, tables c (struct prog, tests/support.c). */
static void inst_open(struct prog *in, const char *name, const struct site *s,
		      const struct compiled *c, uint32_t policy, uint32_t tag)
{
	const struct prog_opts o = { .policy = policy, .tag = tag, .comp = c };
	prog_open(in, name, &M, s, &o, NULL);
}

static void run(struct prog *in, const struct frame *f)
{
	if (prog_run(in, f->b, f->len, &R) > 0)
		die("%s: the kernel refused a frame of %zu bytes", in->name, f->len);
}

/* Drop and would-drop counters of an instance, per reason. */
struct drops {
	struct lx_count drops[LX_DROP_MAX];
	struct lx_count would[LX_DROP_MAX];
};

static void drops_read(struct prog *in, struct drops *d)
{
	struct stats_report r;
	prog_report(in, &r);
	memcpy(d->drops, r.drops, sizeof(d->drops));
	memcpy(d->would, r.would_drop, sizeof(d->would));
	stats_free(&r);
}

/* What a section expects the drop counters to grow by. */
struct expect_drops {
	struct lx_count add[2][LX_DROP_MAX]; /* [enforced][reason] */
};

/*
 * Runs one frame and checks verdict and reason. The name is printf-like; the check line
 * says what was expected and, on failure, what came instead.
 */
__attribute__((format(printf, 6, 7))) static int expect(struct prog *in, const struct frame *f,
							uint32_t verdict, uint32_t reason,
							struct expect_drops *ed, const char *fmt,
							...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	run(in, f);
	if (ed && reason) {
		int enforced = in->policy == LX_POLICY_ENFORCE;
		ed->add[enforced][reason].packets++;
		ed->add[enforced][reason].bytes += f->len;
	}
	int ok = R.retval == verdict && R.last.reason == reason;
	return CHECK(ok, "%s [%s]: %s, reason %s%s%s%s%s", in->name, name, verdict_name(verdict),
		     stats_reason_name(reason), ok ? "" : " -- got ",
		     ok ? "" : verdict_name(R.retval), ok ? "" : ", reason ",
		     ok ? "" : stats_reason_name(R.last.reason));
}

/* The counters grew by exactly what the section expected, reason by reason. */
static void check_drops_delta(struct prog *in, const struct drops *before,
			      const struct expect_drops *ed, const char *section)
{
	struct drops after;
	drops_read(in, &after);
	for (int reason = 1; reason < LX_DROP_MAX; reason++)
		for (int enforced = 0; enforced < 2; enforced++) {
			const struct lx_count *a =
			    enforced ? &after.drops[reason] : &after.would[reason];
			const struct lx_count *b =
			    enforced ? &before->drops[reason] : &before->would[reason];
			const struct lx_count *e = &ed->add[enforced][reason];
			uint64_t dp = a->packets - b->packets, db = a->bytes - b->bytes;
			CHECK(dp == e->packets && db == e->bytes,
			      "%s [%s]: %s[%s] grew by %llu packets, %llu bytes (got %llu, %llu)",
			      in->name, section, enforced ? "drops" : "would_drop",
			      stats_reason_name((uint32_t)reason), (unsigned long long)e->packets,
			      (unsigned long long)e->bytes, (unsigned long long)dp,
			      (unsigned long long)db);
		}
}

/* ---- the matrix ---- */

/* The id of a matrix's rule (the first of its kind, role, service and transport), -1: none. */
static int rule_in(const struct matrix *m, int kind, const char *role, const char *service,
		   int proto)
{
	int r = matrix_find_role(m, role), s = matrix_find_service(m, service);
	for (int i = 0; i < m->nrules; i++)
		if (m->rules[i].kind == kind && m->rules[i].role == r && m->rules[i].service == s &&
		    m->rules[i].proto == proto)
			return i + 1;
	return -1;
}

static int find_rule(int kind, const char *role, const char *service, int proto)
{
	int id = rule_in(&M, kind, role, service, proto);
	if (id < 0)
		die("no rule %s %s %s in %s", role, service, matrix_proto_name(proto), MATRIX_PATH);
	return id;
}

/* The group of an address in a compiled site: the longest prefix that holds it. */
static uint32_t group_of(const struct compiled *c, const char *addr)
{
	struct endpoint e = endpoint_at(addr, 0);
	int best = -1;
	uint32_t group = 0;
	for (int i = 0; i < c->naddrs; i++) {
		const struct compiled_addr *a = &c->addrs[i];
		if (a->family != e.family || a->len <= best)
			continue;
		int full = a->len / 8, rest = a->len % 8;
		if (memcmp(a->addr, e.addr, (size_t)full))
			continue;
		if (rest && ((a->addr[full] ^ e.addr[full]) & (uint8_t)(0xff << (8 - rest))))
			continue;
		best = a->len;
		group = a->group;
	}
	return group;
}

/* ---- 1. every Edge listening rule passes ---- */

static void test_edge_listen(void)
{
	struct prog in;
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	int nrules[2] = { 0, 0 }, nrestricted[2] = { 0, 0 };
	const char *roles[2] = { "edge-external", "edge-internal" };
	const struct host *hosts[2] = { &EXT, &INT };
	for (int k = 0; k < 2; k++) {
		int role = matrix_find_role(&M, roles[k]);
		for (int i = 0; i < M.nrules; i++) {
			const struct matrix_rule *r = &M.rules[i];
			if (r->kind != LX_KIND_LISTEN || r->role != role)
				continue;
			nrules[k]++;
			uint16_t ports[3] = { r->port_lo, (uint16_t)((r->port_lo + r->port_hi) / 2),
					      r->port_hi };
			for (int p = 0; p < 3; p++) {
				if (p && ports[p] == ports[p - 1])
					continue;
				for (int fam = 4; fam <= 6; fam += 2) {
					uint8_t ipproto =
					    r->proto == LX_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
					/* A rule `from ROLE,...`: from a Front End (every
					 * restriction of the matrix names frontend), and
					 * refused to anyone else with reason source. */
					const struct host *src = r->from_roles ? &FE : &PEER;
					struct frame f = pkt(ipproto, src, 40000, hosts[k],
							     ports[p], fam, 0, 10);
					expect(&in, &f, V_PASS, LX_DROP_NONE, NULL,
					       "listen %s %s %s %u (rule line %d) from %s IPv%d",
					       roles[k], M.services[r->service].slug,
					       matrix_proto_name(r->proto), ports[p], r->line,
					       src->name, fam);
					CHECK(
					    R.last.rule == (uint32_t)i + 1 &&
						R.last.dir == LX_DIR_IN,
					    "%s [listen %s %s %u IPv%d]: classified as rule %d, in "
					    "(got rule %u, dir %u)",
					    in.name, roles[k], matrix_proto_name(r->proto),
					    ports[p], fam, i + 1, R.last.rule, R.last.dir);
					if (!r->from_roles)
						continue;
					nrestricted[k]++;
					static const struct host *const others[] = { &PEER, &PERIM,
										     &CLIENT };
					for (int o = 0; o < 3; o++) {
						f = pkt(ipproto, others[o], 40000, hosts[k],
							ports[p], fam, 0, 10);
						expect(&in, &f, V_DROP, LX_DROP_SOURCE, NULL,
						       "listen %s %s %u from %s, not a Front End "
						       "IPv%d",
						       roles[k], M.services[r->service].slug,
						       ports[p], others[o]->name, fam);
					}
				}
			}
		}
	}
	CHECK(nrules[0] == 4, "matrix: edge-external has 4 listening rules (got %d)", nrules[0]);
	CHECK(nrules[1] == 8, "matrix: edge-internal has 8 listening rules (got %d)", nrules[1]);
	/* 5062, 8057, 4443, 23456: one port each, both families. */
	CHECK(nrestricted[0] == 0 && nrestricted[1] == 4 * 2,
	      "matrix: the edge-internal rules restricted to Front Ends (5062, 8057, 4443, 23456) "
	      "were checked from other sources (%d, %d)",
	      nrestricted[0], nrestricted[1]);
	prog_close(&in);
}

/* ---- 2. forbidden ports and wrong transports ---- */

static void test_forbidden(void)
{
	struct prog in;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	drops_read(&in, &before);

	struct {
		const struct host *h;
		uint8_t ipproto;
		uint16_t port;
		uint32_t reason;
	} cases[] = {
		{ &EXT, IPPROTO_TCP, 22, LX_DROP_PORT },
		{ &EXT, IPPROTO_TCP, 1, LX_DROP_PORT },
		{ &EXT, IPPROTO_TCP, 80, LX_DROP_PORT },
		{ &EXT, IPPROTO_TCP, 3389, LX_DROP_PORT },
		{ &EXT, IPPROTO_TCP, 5062, LX_DROP_PORT },
		{ &EXT, IPPROTO_TCP, 8080, LX_DROP_PORT },
		{ &EXT, IPPROTO_TCP, 65535, LX_DROP_PORT },
		{ &EXT, IPPROTO_UDP, 53, LX_DROP_PORT },
		{ &EXT, IPPROTO_UDP, 161, LX_DROP_PORT },
		{ &EXT, IPPROTO_UDP, 5060, LX_DROP_PORT },
		{ &INT, IPPROTO_TCP, 22, LX_DROP_PORT },
		{ &INT, IPPROTO_TCP, 445, LX_DROP_PORT },
		{ &INT, IPPROTO_TCP, 5063, LX_DROP_PORT },
		{ &INT, IPPROTO_TCP, 50000, LX_DROP_PORT },
		{ &INT, IPPROTO_TCP, 50004, LX_DROP_PORT },
		{ &INT, IPPROTO_UDP, 161, LX_DROP_PORT },
		{ &EXT, IPPROTO_UDP, 443, LX_DROP_TRANSPORT },
		{ &EXT, IPPROTO_TCP, 3478, LX_DROP_TRANSPORT },
		{ &EXT, IPPROTO_UDP, 5061, LX_DROP_TRANSPORT },
		{ &INT, IPPROTO_UDP, 443, LX_DROP_TRANSPORT },
		{ &INT, IPPROTO_TCP, 3478, LX_DROP_TRANSPORT },
		{ &INT, IPPROTO_UDP, 8057, LX_DROP_TRANSPORT },
	};
	size_t payload = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int fam = 4; fam <= 6; fam += 2) {
			struct frame f = pkt(cases[i].ipproto, &PEER, 40000, cases[i].h,
					     cases[i].port, fam, 0, payload);
			payload = (payload + 37) % 300; /* different sizes: bytes are checked */
			expect(&in, &f, V_DROP, cases[i].reason, &ed, "%s to %s %s %u IPv%d",
			       cases[i].reason == LX_DROP_PORT ? "forbidden port"
							       : "wrong transport",
			       cases[i].h->name, cases[i].ipproto == IPPROTO_TCP ? "tcp" : "udp",
			       cases[i].port, fam);
		}
	check_drops_delta(&in, &before, &ed, "forbidden ports and transports");
	prog_close(&in);
}

/* ---- 3. flows opened by protected hosts ---- */

static void test_flows(void)
{
	struct prog in;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	drops_read(&in, &before);
	int dns_udp = find_rule(LX_KIND_OUTBOUND_TO, "edge-external", "dns", LX_PROTO_UDP);
	int fed_tcp = find_rule(LX_KIND_OUTBOUND_TO, "edge-external", "sip-tls", LX_PROTO_TCP);
	int relay_udp =
	    find_rule(LX_KIND_OUTBOUND_FROM, "edge-external", "edge-media-relay", LX_PROTO_UDP);

	for (int fam = 4; fam <= 6; fam += 2) {
		/* DNS over UDP: the Edge asks first. */
		struct frame f = pkt(IPPROTO_UDP, &EXT, 33000, &DNS, 53, fam, 0, 30);
		expect(&in, &f, V_PASS, 0, &ed, "udp dns query edge-external:33000 -> dns:53 IPv%d",
		       fam);
		CHECK(R.last.rule == (uint32_t)dns_udp && R.last.dir == LX_DIR_OUT,
		      "%s [udp dns query IPv%d]: rule %d (outbound to 53), out (got %u, %u)",
		      in.name, fam, dns_udp, R.last.rule, R.last.dir);
		f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33000, fam, 0, 90);
		expect(&in, &f, V_PASS, 0, &ed, "udp dns reply dns:53 -> edge-external:33000 IPv%d",
		       fam);
		CHECK(R.last.rule == (uint32_t)dns_udp && R.last.dir == LX_DIR_IN,
		      "%s [udp dns reply IPv%d]: rule %d (outbound to 53), in (got %u, %u)",
		      in.name, fam, dns_udp, R.last.rule, R.last.dir);
		f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33000, fam, 0, 10);
		expect(&in, &f, V_PASS, 0, &ed, "udp dns second reply on the same flow IPv%d", fam);
		f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33001, fam, 0, 90);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "udp dns reply to another Edge port (33001) IPv%d", fam);
		f = pkt(IPPROTO_UDP, &DNS2, 53, &EXT, 33000, fam, 0, 90);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "udp dns reply from another server IPv%d", fam);
		f = pkt(IPPROTO_UDP, &DNS, 54, &EXT, 33000, fam, 0, 90);
		expect(&in, &f, V_DROP, LX_DROP_PORT, &ed,
		       "udp from dns server port 54 to the query's port IPv%d", fam);

		/* TCP federation to 5061. */
		f = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, fam, 0x02, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp SYN edge-external:40100 -> partner:5061 IPv%d",
		       fam);
		CHECK(R.last.rule == (uint32_t)fed_tcp && R.last.dir == LX_DIR_OUT,
		      "%s [tcp 5061 SYN IPv%d]: rule %d (outbound to 5061), out (got %u, %u)",
		      in.name, fam, fed_tcp, R.last.rule, R.last.dir);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x12, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp SYN-ACK partner:5061 -> edge-external:40100 IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x18, 200);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp data partner:5061 -> edge-external:40100 IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40101, fam, 0x12, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "tcp forged partner:5061 -> edge-external ephemeral 40101 IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PARTNER2, 5061, &EXT, 40100, fam, 0x12, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "tcp from another partner's 5061 to the flow's Edge port IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PEER, 5061, &EXT, 45000, fam, 0x10, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "tcp forged ACK from source port 5061 to Edge port 45000 IPv%d", fam);
		f = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, fam, 0x11, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp FIN from the Edge IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x10, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp ACK from partner right after the Edge's FIN IPv%d", fam);
		/* Some milliseconds later: still within the closing timeout (10 s). A clock
		 * tick passes, so a closing timeout of 0 would show. */
		struct timespec pause = { 0, 30 * 1000 * 1000 };
		nanosleep(&pause, NULL);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x11, 0);
		expect(
		    &in, &f, V_PASS, 0, &ed,
		    "tcp FIN from partner 30 ms after the Edge's FIN (closing timeout 10 s) IPv%d",
		    fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x10, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp last ACK from partner (closing flow) IPv%d",
		       fam);
		/* RST from the partner ends another flow: what follows right away still passes. */
		f = pkt(IPPROTO_TCP, &EXT, 40200, &PARTNER, 5061, fam, 0x02, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp SYN edge-external:40200 -> partner:5061 IPv%d",
		       fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40200, fam, 0x14, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp RST-ACK from partner on the flow IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40200, fam, 0x10, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp ACK from partner right after RST IPv%d", fam);
		/* The Edge's own RST. */
		f = pkt(IPPROTO_TCP, &EXT, 40300, &PARTNER, 5061, fam, 0x02, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp SYN edge-external:40300 -> partner:5061 IPv%d",
		       fam);
		f = pkt(IPPROTO_TCP, &EXT, 40300, &PARTNER, 5061, fam, 0x04, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp RST from the Edge IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40300, fam, 0x10, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp ACK from partner right after the Edge's RST IPv%d", fam);

		/* Media relay: the Edge sends from its 50000-59999. */
		struct {
			uint8_t ipproto;
			uint16_t edge, next, peer;
		} media[] = {
			{ IPPROTO_UDP, 50010, 50011, 61000 }, { IPPROTO_UDP, 50000, 50001, 61001 },
			{ IPPROTO_UDP, 59999, 59998, 61002 }, { IPPROTO_TCP, 50020, 50021, 61003 },
			{ IPPROTO_TCP, 59990, 59991, 61004 },
		};
		for (size_t i = 0; i < sizeof(media) / sizeof(media[0]); i++) {
			const char *t = media[i].ipproto == IPPROTO_TCP ? "tcp" : "udp";
			f = pkt(media[i].ipproto, &EXT, media[i].edge, &PEER, media[i].peer, fam,
				0x02, 160);
			expect(&in, &f, V_PASS, 0, &ed,
			       "%s media edge-external:%u -> peer:%u IPv%d", t, media[i].edge,
			       media[i].peer, fam);
			if (media[i].ipproto == IPPROTO_UDP && media[i].edge == 50010)
				CHECK(R.last.rule == (uint32_t)relay_udp &&
					  R.last.dir == LX_DIR_OUT,
				      "%s [udp media out IPv%d]: rule %d (outbound from "
				      "50000-59999), "
				      "out (got %u, %u)",
				      in.name, fam, relay_udp, R.last.rule, R.last.dir);
			f = pkt(media[i].ipproto, &PEER, media[i].peer, &EXT, media[i].edge, fam,
				0x12, 160);
			expect(&in, &f, V_PASS, 0, &ed,
			       "%s media reply peer:%u -> edge-external:%u IPv%d", t, media[i].peer,
			       media[i].edge, fam);
			f = pkt(media[i].ipproto, &PEER, media[i].peer, &EXT, media[i].next, fam,
				0x12, 160);
			expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
			       "%s media unsolicited peer:%u -> edge-external:%u IPv%d", t,
			       media[i].peer, media[i].next, fam);
			f = pkt(media[i].ipproto, &PEER2, media[i].peer, &EXT, media[i].edge, fam,
				0x12, 160);
			expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
			       "%s media from another peer to edge-external:%u IPv%d", t,
			       media[i].edge, fam);
			f = pkt(media[i].ipproto, &PEER, 62000, &EXT, media[i].edge, fam, 0x12,
				160);
			expect(
			    &in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
			    "%s media from the peer's other port 62000 to edge-external:%u IPv%d",
			    t, media[i].edge, fam);
		}

		/* Edge internal -> a perimeter server's 5061 (no role there): tracked. */
		f = pkt(IPPROTO_TCP, &INT, 41000, &PERIM, 5061, fam, 0x02, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp SYN edge-internal:41000 -> perimeter server:5061 (no role) IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PERIM, 5061, &INT, 41000, fam, 0x12, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp SYN-ACK perimeter server:5061 -> edge-internal:41000 IPv%d", fam);

		/* Edge internal -> the Front End's 5061: the Front End's rule wins (in), yet the
		 * Edge opened the connection: its reply must pass. */
		f = pkt(IPPROTO_TCP, &INT, 41100, &FE, 5061, fam, 0x02, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "tcp SYN edge-internal:41100 -> frontend:5061 IPv%d", fam);
		CHECK(R.last.rule == (uint32_t)find_rule(LX_KIND_LISTEN, "frontend", "sip-tls",
							 LX_PROTO_TCP) &&
			  R.last.dir == LX_DIR_IN,
		      "%s [tcp SYN edge-internal -> frontend:5061 IPv%d]: classified as the "
		      "frontend's sip-tls rule, in (got rule %u, dir %u)",
		      in.name, fam, R.last.rule, R.last.dir);
		f = pkt(IPPROTO_TCP, &FE, 5061, &INT, 41100, fam, 0x12, 0);
		expect(
		    &in, &f, V_PASS, 0, &ed,
		    "tcp SYN-ACK frontend:5061 -> edge-internal:41100 (flow the Edge opened) IPv%d",
		    fam);
		f = pkt(IPPROTO_TCP, &FE, 5061, &INT, 41101, fam, 0x12, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "tcp frontend:5061 -> edge-internal:41101 (no flow) IPv%d", fam);
	}
	check_drops_delta(&in, &before, &ed, "flows");
	prog_close(&in);
}

/* ---- 4. ICMP and other transports ---- */

static void test_icmp(void)
{
	struct prog in, ping;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	inst_open(&ping, "enforce+allow-icmp-8", &S_icmp, &C_icmp, LX_POLICY_ENFORCE, 0);
	drops_read(&in, &before);
	const struct host *edges[2] = { &EXT, &INT };
	for (int k = 0; k < 2; k++) {
		const struct host *h = edges[k];
		/* Errors quoting nothing (16 bytes of text): related to no connection (section
		 * 4b has the ones that quote a packet of the Edge). */
		struct frame f = icmp_pkt(&PEER, h, 4, 3, 4);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "icmp 3:4 (fragmentation needed) quoting nothing to %s", h->name);
		CHECK(R.last.counter == LX_CNT_ICMP && R.last.rule == 0,
		      "%s [icmp 3:4 to %s]: counted as icmp, no rule (got counter %u, rule %u)",
		      in.name, h->name, R.last.counter, R.last.rule);
		f = icmp_pkt(&PEER, h, 4, 3, 3);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "icmp 3:3 (port unreachable) quoting nothing to %s", h->name);
		f = icmp_pkt(&PEER, h, 4, 3, 1);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "icmp 3:1 (host unreachable) quoting nothing to %s", h->name);
		f = pkt(IPPROTO_ICMP, &PEER, 0, h, 0, 4, 0, 56);
		expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "icmp 8 (echo request) to %s",
		       h->name);
		f = icmp_pkt(&PEER, h, 4, 0, 0);
		expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "icmp 0 (echo reply) to %s",
		       h->name);
		f = icmp_pkt(&PEER, h, 6, 2, 0);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "icmpv6 2 (packet too big) quoting nothing to %s", h->name);
		f = icmp_pkt(&PEER, h, 6, 135, 0);
		expect(&in, &f, V_PASS, 0, &ed, "icmpv6 135 (neighbour solicitation) to %s",
		       h->name);
		f = icmp_pkt(&PEER, h, 6, 136, 0);
		expect(&in, &f, V_PASS, 0, &ed, "icmpv6 136 (neighbour advertisement) to %s",
		       h->name);
		f = pkt(IPPROTO_ICMPV6, &PEER, 0, h, 0, 6, 0, 56);
		expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "icmpv6 128 (echo request) to %s",
		       h->name);
		f = icmp_pkt(&PEER, h, 6, 1, 4);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "icmpv6 1:4 (port unreachable) quoting nothing to %s", h->name);
		for (int fam = 4; fam <= 6; fam += 2) {
			f = pkt(47, &PEER, 0, h, 0, fam, 0, 40);
			expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "gre (47) to %s IPv%d",
			       h->name, fam);
			CHECK(R.last.counter == LX_CNT_OTHER_L4,
			      "%s [gre to %s IPv%d]: counted as other_l4 (got counter %u)", in.name,
			      h->name, fam, R.last.counter);
			f = pkt(132, &PEER, 0, h, 0, fam, 0, 40);
			expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "sctp (132) to %s IPv%d",
			       h->name, fam);
		}

		/* `allow-icmp ipv4 8` in the site. */
		f = pkt(IPPROTO_ICMP, &PEER, 0, h, 0, 4, 0, 56);
		expect(&ping, &f, V_PASS, 0, NULL,
		       "icmp 8 (echo request) to %s, site allows ipv4 8", h->name);
		f = icmp_pkt(&PEER, h, 4, 8, 1);
		expect(&ping, &f, V_PASS, 0, NULL,
		       "icmp 8 code 1 to %s, site allows ipv4 8 (every code)", h->name);
		f = icmp_pkt(&PEER, h, 4, 3, 4);
		expect(&ping, &f, V_DROP, LX_DROP_ICMP_UNRELATED, NULL,
		       "icmp 3:4 quoting nothing to %s still drops with a site allowance", h->name);
		f = icmp_pkt(&PEER, h, 4, 3, 3);
		expect(&ping, &f, V_DROP, LX_DROP_ICMP_UNRELATED, NULL,
		       "icmp 3:3 quoting nothing to %s still drops with allow-icmp ipv4 8",
		       h->name);
		f = pkt(IPPROTO_ICMPV6, &PEER, 0, h, 0, 6, 0, 56);
		expect(&ping, &f, V_DROP, LX_DROP_TRANSPORT, NULL,
		       "icmpv6 128 to %s still drops with allow-icmp ipv4 8 (ipv4 only)", h->name);
	}
	check_drops_delta(&in, &before, &ed, "icmp and other transports");
	prog_close(&in);
	prog_close(&ping);
}

/* ---- 4b. ICMP errors related to connections; router advertisements and redirects ---- */

/* Routers on the path, and a router on the Edge's own link (IPv6 link-local). */
static const struct host ROUTER = { "router", "203.0.113.254", "2001:db8:ffff::fe" };
static const struct host LINK_ROUTER = { "link-router", "203.0.113.1", "fe80::1" };

static void test_icmp_related(void)
{
	struct prog in, mon;
	struct drops before, mon_before;
	struct expect_drops ed, med;
	memset(&ed, 0, sizeof(ed));
	memset(&med, 0, sizeof(med));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	inst_open(&mon, "monitor", &S_base, &C_base, LX_POLICY_MONITOR, 0);
	drops_read(&in, &before);
	drops_read(&mon, &mon_before);
	for (int fam = 4; fam <= 6; fam += 2) {
		uint8_t too_big = fam == 4 ? 3 : 2, code_big = fam == 4 ? 4 : 0;
		uint8_t unreach = fam == 4 ? 3 : 1, port_unreach = fam == 4 ? 3 : 4;
		uint8_t exceeded = fam == 4 ? 11 : 3, problem = fam == 4 ? 12 : 4;

		/* (a) the Edge's answer on a connection its listen rule admitted (PMTUD for a
		 * client's TLS session to 443): every error type passes */
		struct frame sent = pkt(IPPROTO_TCP, &EXT, 443, &CLIENT, 40001, fam, 0x18, 1400);
		struct frame f = icmp_error_pkt(&ROUTER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&in, &f, V_PASS, 0, &ed,
		       "IPv%d packet too big quoting edge-external:443 -> client (admitted)", fam);
		CHECK(
		    R.last.counter == LX_CNT_ICMP && R.last.rule == 0,
		    "%s [related error IPv%d]: counted as icmp, no rule (got counter %u, rule %u)",
		    in.name, fam, R.last.counter, R.last.rule);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, unreach, port_unreach, &sent, 8);
		expect(&in, &f, V_PASS, 0, &ed, "IPv%d port unreachable quoting the admitted one",
		       fam);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, exceeded, 0, &sent, 8);
		expect(&in, &f, V_PASS, 0, &ed, "IPv%d time exceeded quoting the admitted one",
		       fam);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, problem, 0, &sent, 8);
		expect(&in, &f, V_PASS, 0, &ed, "IPv%d parameter problem quoting the admitted one",
		       fam);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, unreach, 1, &sent, 20);
		expect(&in, &f, V_PASS, 0, &ed,
		       "IPv%d host unreachable quoting the whole TCP header of the admitted one",
		       fam);
		/* `from frontend` (5062 of the internal Edge): toward a Front End only */
		sent = pkt(IPPROTO_TCP, &INT, 5062, &FE, 40002, fam, 0x12, 0);
		f = icmp_error_pkt(&ROUTER, &INT, fam, too_big, code_big, &sent, 8);
		expect(
		    &in, &f, V_PASS, 0, &ed,
		    "IPv%d packet too big quoting edge-internal:5062 -> frontend (from frontend)",
		    fam);
		sent = pkt(IPPROTO_TCP, &INT, 5062, &PEER, 40002, fam, 0x12, 0);
		f = icmp_error_pkt(&ROUTER, &INT, fam, too_big, code_big, &sent, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d packet too big quoting edge-internal:5062 -> a peer `from` refuses",
		       fam);

		/* (b) on a flow the Edge opened (its DNS query over TCP), and not before */
		sent = pkt(IPPROTO_TCP, &EXT, 41000, &DNS, 53, fam, 0x18, 600);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d packet too big quoting edge-external -> dns:53 before the flow", fam);
		struct frame open = pkt(IPPROTO_TCP, &EXT, 41000, &DNS, 53, fam, 0x02, 0);
		expect(&in, &open, V_PASS, 0, &ed, "IPv%d the Edge opens tcp to dns:53", fam);
		expect(&in, &f, V_PASS, 0, &ed,
		       "IPv%d packet too big quoting edge-external -> dns:53 on its flow", fam);
		f = icmp_error_pkt(&DNS, &EXT, fam, unreach, port_unreach, &sent, 8);
		expect(&in, &f, V_PASS, 0, &ed,
		       "IPv%d port unreachable from the DNS server itself on the flow", fam);
		struct frame udp = pkt(IPPROTO_UDP, &EXT, 41000, &DNS, 53, fam, 0, 40);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, unreach, port_unreach, &udp, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d the same ports over udp: no flow", fam);
		sent = pkt(IPPROTO_TCP, &EXT, 41000, &DNS2, 53, fam, 0x18, 600);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d quoting the same ports toward another server: no flow", fam);

		/* forged: a random tuple, another host's packet, a quote cut short, not TCP/UDP */
		sent = pkt(IPPROTO_TCP, &EXT, 33333, &PEER, 44444, fam, 0x18, 1400);
		f = icmp_error_pkt(&PEER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d forged packet too big for a random tuple", fam);
		sent = pkt(IPPROTO_TCP, &INT, 443, &CLIENT, 40001, fam, 0x18, 1400);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d packet too big to edge-external quoting edge-internal's packet", fam);
		sent = pkt(IPPROTO_TCP, &EXT, 443, &CLIENT, 40001, fam, 0x18, 1400);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, too_big, code_big, &sent, 4);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d quote with 4 bytes of the TCP header (below 8)", fam);
		sent = pkt(fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, &EXT, 0, &PEER, 0, fam, 0, 56);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, unreach, 1, &sent, 8);
		expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed,
		       "IPv%d quoting the Edge's echo request (no connection is tracked for it)",
		       fam);

		/* monitor: the same forged error passes, would-drop icmp-unrelated */
		sent = pkt(IPPROTO_TCP, &EXT, 33333, &PEER, 44444, fam, 0x18, 1400);
		f = icmp_error_pkt(&PEER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&mon, &f, V_PASS, LX_DROP_ICMP_UNRELATED, &med,
		       "IPv%d forged packet too big: passes, would-drop icmp-unrelated", fam);
		sent = pkt(IPPROTO_TCP, &EXT, 443, &CLIENT, 40001, fam, 0x18, 1400);
		f = icmp_error_pkt(&ROUTER, &EXT, fam, too_big, code_big, &sent, 8);
		expect(&mon, &f, V_PASS, 0, &med, "IPv%d related packet too big: no reason", fam);
	}

	/* IPv4 errors quoting an IPv6 packet and the other way round: unrelated */
	struct frame sent6 = pkt(IPPROTO_TCP, &EXT, 443, &CLIENT, 40001, 6, 0x18, 0);
	struct frame f = icmp_error_pkt(&ROUTER, &EXT, 4, 3, 4, &sent6, 8);
	expect(&in, &f, V_DROP, LX_DROP_ICMP_UNRELATED, &ed, "icmp 3:4 quoting an IPv6 packet");

	/* Router advertisements and redirects: hop limit 255 from a link-local source only */
	const struct host *edges[2] = { &EXT, &INT };
	for (int k = 0; k < 2; k++) {
		const struct host *h = edges[k];
		for (int type = 134; type <= 137; type += 3) {
			const char *what = type == 134 ? "router advertisement" : "redirect";
			f = icmp_pkt(&LINK_ROUTER, h, 6, (uint8_t)type, 0);
			set_hop_limit(&f, 255);
			expect(&in, &f, V_PASS, 0, &ed, "%s from fe80::1, hop limit 255, to %s",
			       what, h->name);
			set_hop_limit(&f, 64);
			expect(&in, &f, V_DROP, LX_DROP_ICMP_OFFLINK, &ed,
			       "%s from fe80::1, hop limit 64 (forwarded), to %s", what, h->name);
			set_hop_limit(&f, 254);
			expect(&in, &f, V_DROP, LX_DROP_ICMP_OFFLINK, &ed,
			       "%s from fe80::1, hop limit 254, to %s", what, h->name);
			f = icmp_pkt(&ROUTER, h, 6, (uint8_t)type, 0);
			set_hop_limit(&f, 255);
			expect(&in, &f, V_DROP, LX_DROP_ICMP_OFFLINK, &ed,
			       "%s from a global source, hop limit 255, to %s", what, h->name);
			expect(&mon, &f, V_PASS, LX_DROP_ICMP_OFFLINK, &med,
			       "%s from a global source: passes, would-drop icmp-offlink", what);
		}
		/* neighbour solicitation and advertisement as before: the kernel checks them */
		f = icmp_pkt(&LINK_ROUTER, h, 6, 135, 0);
		set_hop_limit(&f, 255);
		expect(&in, &f, V_PASS, 0, &ed, "neighbour solicitation from fe80::1 to %s",
		       h->name);
		f = icmp_pkt(&ROUTER, h, 6, 136, 0);
		set_hop_limit(&f, 255);
		expect(&in, &f, V_PASS, 0, &ed,
		       "neighbour advertisement from a global source to %s", h->name);
		/* IPv4 redirects: not in the matrix (a site may allow-icmp ipv4 5) */
		f = icmp_pkt(&ROUTER, h, 4, 5, 1);
		expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "icmp 5:1 (redirect) to %s",
		       h->name);
	}
	check_drops_delta(&in, &before, &ed, "icmp errors and router messages");
	check_drops_delta(&mon, &mon_before, &med, "icmp errors and router messages");
	prog_close(&in);
	prog_close(&mon);
}

/* ---- 5. fragments ---- */

static void test_fragments(void)
{
	struct prog in;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	drops_read(&in, &before);
	for (int fam = 4; fam <= 6; fam += 2) {
		struct frame f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 1, 0x1001);
		expect(&in, &f, V_PASS, 0, &ed, "first fragment to edge-external udp 3478 IPv%d",
		       fam);
		CHECK(R.last.rule != 0 && R.last.dir == LX_DIR_IN,
		      "%s [first fragment udp 3478 IPv%d]: classified by its ports (got rule %u)",
		      in.name, fam, R.last.rule);
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 0, 0x1001);
		expect(&in, &f, V_PASS, 0, &ed, "later fragment after an allowed first IPv%d", fam);
		CHECK(R.last.counter == LX_CNT_FRAGMENT && R.last.rule == 0,
		      "%s [later fragment IPv%d]: counted as fragments (got counter %u, rule %u)",
		      in.name, fam, R.last.counter, R.last.rule);
		f = frag_pkt(IPPROTO_TCP, &PEER, &INT, 5061, fam, 1, 0x1002);
		expect(&in, &f, V_PASS, 0, &ed, "first fragment to edge-internal tcp 5061 IPv%d",
		       fam);
		f = frag_pkt(IPPROTO_TCP, &PEER, &INT, 5061, fam, 0, 0x1002);
		expect(&in, &f, V_PASS, 0, &ed, "later fragment after an allowed tcp first IPv%d",
		       fam);

		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 161, fam, 1, 0x2001);
		expect(&in, &f, V_DROP, LX_DROP_PORT, &ed,
		       "first fragment to forbidden udp 161 IPv%d", fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 161, fam, 0, 0x2001);
		expect(&in, &f, V_DROP, LX_DROP_FRAGMENT, &ed,
		       "later fragment after a forbidden first: nothing was stored, fragment IPv%d",
		       fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 443, fam, 1, 0x2002);
		expect(&in, &f, V_DROP, LX_DROP_TRANSPORT, &ed, "first fragment to udp 443 IPv%d",
		       fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 443, fam, 0, 0x2002);
		expect(&in, &f, V_DROP, LX_DROP_FRAGMENT, &ed,
		       "later fragment after a wrong-transport first: fragment IPv%d", fam);

		/* A second first fragment of the same datagram does not replace a passing one. */
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 1, 0x2003);
		expect(&in, &f, V_PASS, 0, &ed, "first fragment to udp 3478 (id 0x2003) IPv%d",
		       fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 161, fam, 1, 0x2003);
		expect(&in, &f, V_DROP, LX_DROP_PORT, &ed,
		       "a second first fragment, same id, to forbidden 161 IPv%d", fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 0, 0x2003);
		expect(&in, &f, V_PASS, 0, &ed,
		       "the later fragment still follows the passing first IPv%d", fam);

		/* At most 64 KiB of later fragments per datagram. */
		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 1, 0x2004);
		expect(&in, &f, V_PASS, 0, &ed, "first fragment of a long datagram IPv%d", fam);
		struct packet_spec ls = spec(IPPROTO_UDP, &PEER, 40000, &EXT, 3478, fam);
		ls.payload_len = 1400;
		ls.frag_offset = 9;
		ls.more_fragments = 1;
		ls.ipv6_fragment = fam == 6;
		struct frame big = build(&ls);
		size_t ipo = ip_off(&big);
		if (fam == 4) {
			big.b[ipo + 4] = 0x20;
			big.b[ipo + 5] = 0x04;
			ipv4_checksum_fix(big.b + ipo);
		} else {
			uint8_t *fh = big.b + ipo + 40;
			memcpy(fh + 4, "\0\0\x20\x04", 4);
		}
		size_t len = fam == 4 ? (size_t)(big.b[ipo + 2] << 8 | big.b[ipo + 3]) -
					    (size_t)(big.b[ipo] & 0x0f) * 4
				      : (size_t)(big.b[ipo + 4] << 8 | big.b[ipo + 5]) - 8;
		int passed = 0;
		for (int k = 0; k < 60; k++) {
			run(&in, &big);
			if (R.retval != V_PASS)
				break;
			passed++;
		}
		ed.add[1][LX_DROP_FRAGMENT].packets++;
		ed.add[1][LX_DROP_FRAGMENT].bytes += big.len;
		CHECK(passed == (int)(65535 / len) && R.retval == V_DROP &&
			  R.last.reason == LX_DROP_FRAGMENT,
		      "%s [64 KiB cap IPv%d]: %d later fragments of %zu bytes pass (want %zu), the "
		      "next drops as fragment",
		      in.name, fam, passed, len, 65535 / len);

		f = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 0, 0x3001);
		expect(&in, &f, V_DROP, LX_DROP_FRAGMENT, &ed,
		       "later fragment with no first fragment seen IPv%d", fam);
		f = frag_pkt(IPPROTO_UDP, &PEER2, &EXT, 3478, fam, 0, 0x1001);
		expect(&in, &f, V_DROP, LX_DROP_FRAGMENT, &ed,
		       "later fragment, allowed first's id but another source IPv%d", fam);
		f = frag_pkt(IPPROTO_TCP, &PEER, &EXT, 3478, fam, 0, 0x1001);
		expect(&in, &f, V_DROP, LX_DROP_FRAGMENT, &ed,
		       "later fragment, allowed first's id but another protocol IPv%d", fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &INT, 3478, fam, 0, 0x1001);
		expect(&in, &f, V_DROP, LX_DROP_FRAGMENT, &ed,
		       "later fragment, allowed first's id but another destination IPv%d", fam);
	}
	check_drops_delta(&in, &before, &ed, "fragments");
	prog_close(&in);
}

/* ---- 6. malformed, ARP, the unprotected Front End ---- */

static struct frame malformed(int kind, const struct host *dst, int fam)
{
	struct frame f = pkt(kind == 2 ? IPPROTO_UDP : IPPROTO_TCP, &PEER, 40000, dst,
			     kind == 2 ? 3478 : 443, fam, 0, 40);
	size_t ip = ip_off(&f), l4 = l4_off(&f);
	switch (kind) {
	case 0: /* TCP data offset 4 (< 5) */
		f.b[l4 + 12] = 4 << 4;
		break;
	case 1: /* IP length beyond the frame */
		if (fam == 4) {
			uint16_t tot = (uint16_t)((f.b[ip + 2] << 8 | f.b[ip + 3]) + 100);
			f.b[ip + 2] = (uint8_t)(tot >> 8);
			f.b[ip + 3] = (uint8_t)tot;
			ipv4_checksum_fix(f.b + ip);
		} else {
			uint16_t pl = (uint16_t)((f.b[ip + 4] << 8 | f.b[ip + 5]) + 100);
			f.b[ip + 4] = (uint8_t)(pl >> 8);
			f.b[ip + 5] = (uint8_t)pl;
		}
		break;
	case 2: /* UDP header cut after 4 bytes, IP length saying so */
		f.len = l4 + 4;
		if (fam == 4) {
			f.b[ip + 2] = 0;
			f.b[ip + 3] = (uint8_t)(l4 + 4 - ip);
			ipv4_checksum_fix(f.b + ip);
		} else {
			f.b[ip + 4] = 0;
			f.b[ip + 5] = 4;
		}
		break;
	case 3: /* IPv4 header length 4 words; IPv6: version 4 in an IPv6 ethertype */
		if (fam == 4) {
			f.b[ip] = 0x44;
			ipv4_checksum_fix(f.b + ip);
		} else {
			f.b[ip] = (uint8_t)(0x40 | (f.b[ip] & 0x0f));
		}
		break;
	}
	return f;
}

static const char *const malformed_names[4] = {
	"tcp data offset 4",
	"ip length beyond the frame",
	"udp header cut short",
	"bad ip header length or version",
};

static void test_malformed_arp_frontend(void)
{
	struct prog in;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	drops_read(&in, &before);
	const struct host *edges[2] = { &EXT, &INT };
	for (int fam = 4; fam <= 6; fam += 2)
		for (int k = 0; k < 2; k++)
			for (int kind = 0; kind < 4; kind++) {
				struct frame f = malformed(kind, edges[k], fam);
				expect(&in, &f, V_DROP, LX_DROP_MALFORMED, &ed, "%s to %s IPv%d",
				       malformed_names[kind], edges[k]->name, fam);
				CHECK(R.last.counter == LX_CNT_MALFORMED,
				      "%s [%s to %s IPv%d]: counted as malformed (got counter %u)",
				      in.name, malformed_names[kind], edges[k]->name, fam,
				      R.last.counter);
			}
	for (int v = 0; v <= 2; v++) {
		struct frame f = arp_frame(v);
		expect(&in, &f, V_PASS, 0, &ed, "arp request for the Edge, %d VLAN tag(s)", v);
		CHECK(R.last.counter == LX_CNT_NON_IP && R.last.dscp == 0xff,
		      "%s [arp, %d VLAN tag(s)]: counted as non_ip, dscp 0xff (got counter %u, "
		      "dscp %u)",
		      in.name, v, R.last.counter, R.last.dscp);
	}

	/* The Front End is not protected: nothing toward it drops, whatever the port. */
	int fe_fail = 0, fe_runs = 0;
	char first_fail[160] = "";
	static const uint16_t ports[] = { 1,	 22,	53,    80,    135,  161,   443,
					  445,	 3389,	5060,  5061,  8080, 23456, 40000,
					  49152, 50001, 57501, 60000, 65535 };
	for (int fam = 4; fam <= 6; fam += 2)
		for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
			for (int t = 0; t < 2; t++)
				for (int sport_kind = 0; sport_kind < 2; sport_kind++) {
					/* also from port 5061/53: would look like a reply */
					uint16_t sport = sport_kind ? (t ? 53 : 5061) : 40000;
					struct frame f = pkt(t ? IPPROTO_UDP : IPPROTO_TCP, &PEER,
							     sport, &FE, ports[i], fam, 0, 20);
					run(&in, &f);
					fe_runs++;
					if (R.retval != V_PASS || R.last.reason != 0) {
						if (!fe_fail++)
							snprintf(
							    first_fail, sizeof(first_fail),
							    "; first: %s %u->%u IPv%d gave %s, "
							    "reason %s",
							    t ? "udp" : "tcp", sport, ports[i], fam,
							    verdict_name(R.retval),
							    stats_reason_name(R.last.reason));
					}
				}
	CHECK(fe_fail == 0,
	      "%s [frontend not protected]: %d tcp/udp packets to every kind of port all "
	      "XDP_PASS, reason none (%d did not)%s",
	      in.name, fe_runs, fe_fail, first_fail);
	for (int fam = 4; fam <= 6; fam += 2) {
		struct frame f =
		    pkt(fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, &PEER, 0, &FE, 0, fam, 0, 56);
		expect(&in, &f, V_PASS, 0, &ed, "echo request to the frontend IPv%d", fam);
		f = pkt(47, &PEER, 0, &FE, 0, fam, 0, 40);
		expect(&in, &f, V_PASS, 0, &ed, "gre to the frontend IPv%d", fam);
		f = frag_pkt(IPPROTO_UDP, &PEER, &FE, 161, fam, 0, 0x4001);
		expect(&in, &f, V_PASS, 0, &ed, "orphan later fragment to the frontend IPv%d", fam);
		for (int kind = 0; kind < 4; kind++) {
			f = malformed(kind, &FE, fam);
			expect(&in, &f, V_PASS, 0, &ed, "%s to the frontend IPv%d",
			       malformed_names[kind], fam);
		}
		f = pkt(IPPROTO_TCP, &PEER, 40000, &CLIENT, 22, fam, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "tcp 22 to a client (not protected) IPv%d", fam);
	}
	check_drops_delta(&in, &before, &ed, "malformed, arp, frontend");
	prog_close(&in);
}

/* ---- 7. monitor versus enforce ---- */

#define SEQ_MAX 256

static int seq_outside_from; /* index of the first frame arriving on the outside leg */

static int build_sequence(struct frame *seq)
{
	int n = 0;
	for (int fam = 4; fam <= 6; fam += 2) {
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 443, fam, 0, 100);
		seq[n++] = pkt(IPPROTO_UDP, &PEER, 40000, &EXT, 3478, fam, 0, 60);
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 40000, &INT, 50002, fam, 0, 0);
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 22, fam, 0, 10);
		seq[n++] = pkt(IPPROTO_UDP, &PEER, 40000, &INT, 161, fam, 0, 77);
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 3389, fam, 0, 0);
		seq[n++] = pkt(IPPROTO_UDP, &PEER, 40000, &EXT, 443, fam, 0, 33);
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 40000, &INT, 3478, fam, 0, 0);
		seq[n++] = pkt(IPPROTO_UDP, &EXT, 33000, &DNS, 53, fam, 0, 30);
		seq[n++] = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33000, fam, 0, 90);
		seq[n++] = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33001, fam, 0, 90);
		seq[n++] = pkt(IPPROTO_UDP, &DNS2, 53, &EXT, 33000, fam, 0, 91);
		seq[n++] = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, fam, 0x02, 0);
		seq[n++] = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x12, 0);
		seq[n++] = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40101, fam, 0x12, 0);
		seq[n++] = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, fam, 0x11, 0);
		seq[n++] = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x10, 0);
		seq[n++] = pkt(IPPROTO_UDP, &EXT, 50010, &PEER, 61000, fam, 0, 160);
		seq[n++] = pkt(IPPROTO_UDP, &PEER, 61000, &EXT, 50010, fam, 0, 160);
		seq[n++] = pkt(IPPROTO_UDP, &PEER, 61000, &EXT, 50011, fam, 0, 161);
		seq[n++] = pkt(IPPROTO_TCP, &INT, 41000, &PERIM, 5061, fam, 0x02, 0);
		seq[n++] = pkt(IPPROTO_TCP, &PERIM, 5061, &INT, 41000, fam, 0x12, 0);
		seq[n++] = icmp_pkt(&PEER, &EXT, fam, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0);
		seq[n++] = icmp_pkt(&PEER, &EXT, fam, fam == 4 ? 3 : 1, fam == 4 ? 3 : 4);
		struct frame quoted = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, fam, 0x18, 0);
		seq[n++] = icmp_error_pkt(&ROUTER, &EXT, fam, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0,
					  &quoted, 8); /* on the flow opened above */
		if (fam == 6) {
			seq[n] = icmp_pkt(&LINK_ROUTER, &EXT, 6, 134, 0);
			set_hop_limit(&seq[n++], 255);
			seq[n] = icmp_pkt(&LINK_ROUTER, &EXT, 6, 134, 0);
			set_hop_limit(&seq[n++], 64);
		}
		seq[n++] =
		    pkt(fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, &PEER, 0, &INT, 0, fam, 0, 56);
		seq[n++] = pkt(47, &PEER, 0, &EXT, 0, fam, 0, 40);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 1, 0x5001);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 0, 0x5001);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 161, fam, 1, 0x5002);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 161, fam, 0, 0x5002);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 443, fam, 1, 0x5003);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &EXT, 443, fam, 0, 0x5003);
		seq[n++] = frag_pkt(IPPROTO_UDP, &PEER, &INT, 3478, fam, 0, 0x5004);
		for (int kind = 0; kind < 4; kind++)
			seq[n++] = malformed(kind, fam == 4 ? &EXT : &INT, fam);
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 40000, &FE, 22, fam, 0, 0);
		seq[n++] = malformed(0, &FE, fam);
	}
	for (int fam = 4; fam <= 6; fam += 2) { /* restricted to Front Ends (`from`) */
		seq[n++] = pkt(IPPROTO_TCP, &PERIM, 41000, &INT, 5062, fam, 0x02, 0);
		seq[n++] = pkt(IPPROTO_TCP, &FE, 41000, &INT, 5062, fam, 0x02, 0);
	}
	seq[n++] = arp_frame(0);
	seq[n++] = arp_frame(2);
	/* From here on the frames arrive where no protected host is (the outside leg). */
	seq_outside_from = n;
	for (int fam = 4; fam <= 6; fam += 2) {
		seq[n++] = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, fam, 0x02, 0);
		seq[n++] = pkt(IPPROTO_TCP, &PEER, 53, &EXT, 3389, fam, 0x02, 0);
		seq[n++] = pkt(IPPROTO_UDP, &EXT, 50020, &PEER, 3478, fam, 0, 30);
		seq[n++] = pkt(IPPROTO_UDP, &PEER, 3478, &EXT, 50020, fam, 0, 30);
		seq[n++] = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x10, 0);
	}
	if (n > SEQ_MAX)
		die("sequence too long");
	return n;
}

static void test_monitor_vs_enforce(void)
{
	static struct frame seq[SEQ_MAX];
	int n = build_sequence(seq);
	struct prog mon, enf;
	inst_open(&mon, "monitor", &S_base, &C_base, LX_POLICY_MONITOR, 0);
	inst_open(&enf, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	int mon_not_pass = 0, reason_diff = 0, enf_wrong = 0, drops_seen = 0;
	char first[3][160] = { "", "", "" };
	for (int i = 0; i < n; i++) {
		if (i == seq_outside_from) {
			prog_side(&mon, LX_SIDE_UNPROTECTED);
			prog_side(&enf, LX_SIDE_UNPROTECTED);
		}
		run(&mon, &seq[i]);
		struct lx_last ml = R.last;
		uint32_t mv = R.retval;
		run(&enf, &seq[i]);
		struct lx_last el = R.last;
		uint32_t ev = R.retval;
		if (mv != V_PASS && !mon_not_pass++)
			snprintf(first[0], sizeof(first[0]), "; first: packet %d gave %s", i,
				 verdict_name(mv));
		if (ml.reason != el.reason && !reason_diff++)
			snprintf(first[1], sizeof(first[1]),
				 "; first: packet %d monitor %s, enforce %s", i,
				 stats_reason_name(ml.reason), stats_reason_name(el.reason));
		if (ev != (el.reason ? V_DROP : V_PASS) && !enf_wrong++)
			snprintf(first[2], sizeof(first[2]), "; first: packet %d %s with reason %s",
				 i, verdict_name(ev), stats_reason_name(el.reason));
		drops_seen += el.reason != 0;
	}
	CHECK(mon_not_pass == 0, "monitor vs enforce: all %d monitor verdicts are XDP_PASS%s", n,
	      first[0]);
	CHECK(reason_diff == 0,
	      "monitor vs enforce: lx_last.reason is the same in both, packet by packet%s",
	      first[1]);
	CHECK(enf_wrong == 0,
	      "monitor vs enforce: enforce drops exactly the packets with a reason%s", first[2]);
	CHECK(drops_seen >= 20, "monitor vs enforce: the sequence has packets to drop (%d)",
	      drops_seen);
	struct drops dm, de;
	drops_read(&mon, &dm);
	drops_read(&enf, &de);
	for (int r = 1; r < LX_DROP_MAX; r++) {
		CHECK(dm.would[r].packets == de.drops[r].packets &&
			  dm.would[r].bytes == de.drops[r].bytes,
		      "monitor vs enforce: monitor would_drop[%s] = enforce drops[%s] (%llu/%llu "
		      "packets, %llu/%llu bytes)",
		      stats_reason_name((uint32_t)r), stats_reason_name((uint32_t)r),
		      (unsigned long long)dm.would[r].packets,
		      (unsigned long long)de.drops[r].packets,
		      (unsigned long long)dm.would[r].bytes, (unsigned long long)de.drops[r].bytes);
		CHECK(dm.drops[r].packets == 0 && de.would[r].packets == 0,
		      "monitor vs enforce: monitor drops[%s] and enforce would_drop[%s] are 0",
		      stats_reason_name((uint32_t)r), stats_reason_name((uint32_t)r));
	}
	for (int r = 1; r < LX_DROP_MAX; r++)
		CHECK(dm.would[r].packets > 0,
		      "monitor vs enforce: the sequence exercises reason %s",
		      stats_reason_name((uint32_t)r));
	prog_close(&mon);
	prog_close(&enf);

	/* testrun_set on one instance: counters and flows survive the switch. */
	struct prog sw;
	struct drops d0, d1, d2;
	inst_open(&sw, "monitor->enforce", &S_base, &C_base, LX_POLICY_MONITOR, 0);
	struct frame bad = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 22, 4, 0, 12);
	struct frame query = pkt(IPPROTO_UDP, &EXT, 33500, &DNS, 53, 4, 0, 30);
	struct frame reply = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33500, 4, 0, 90);
	struct frame query6 = pkt(IPPROTO_TCP, &EXT, 40500, &PARTNER, 5061, 6, 0x02, 0);
	struct frame reply6 = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40500, 6, 0x12, 0);
	struct frame listen = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 443, 4, 0, 0);
	expect(&sw, &bad, V_PASS, LX_DROP_PORT, NULL, "monitor: tcp 22 to edge-external");
	expect(&sw, &bad, V_PASS, LX_DROP_PORT, NULL, "monitor: tcp 22 to edge-external again");
	expect(&sw, &listen, V_PASS, 0, NULL, "monitor: tcp 443 to edge-external");
	expect(&sw, &query, V_PASS, 0, NULL, "monitor: the Edge opens udp to dns:53");
	expect(&sw, &query6, V_PASS, 0, NULL, "monitor: the Edge opens tcp to partner:5061 IPv6");
	drops_read(&sw, &d0);
	struct stats_report r0, r1;
	prog_report(&sw, &r0);
	prog_set(&sw, LX_POLICY_ENFORCE, 0);
	drops_read(&sw, &d1);
	prog_report(&sw, &r1);
	CHECK(!memcmp(&d0, &d1, sizeof(d0)),
	      "testrun_set monitor->enforce keeps the drop counters (would_drop[port] %llu)",
	      (unsigned long long)d1.would[LX_DROP_PORT].packets);
	int rows_same =
	    r0.nrows == r1.nrows && r0.total.packets == r1.total.packets && r0.total.packets == 5;
	for (int i = 0; rows_same && i < r0.nrows; i++)
		rows_same = !memcmp(&r0.rows[i].count, &r1.rows[i].count, sizeof(r0.rows[i].count));
	CHECK(rows_same, "testrun_set monitor->enforce keeps the rule counters (total %llu, 5 run)",
	      (unsigned long long)r1.total.packets);
	stats_free(&r0);
	stats_free(&r1);
	expect(&sw, &reply, V_PASS, 0, NULL,
	       "enforce after switch: dns reply on the flow opened in monitor mode passes");
	expect(&sw, &reply6, V_PASS, 0, NULL,
	       "enforce after switch: partner's SYN-ACK on the flow opened in monitor mode passes "
	       "IPv6");
	expect(&sw, &bad, V_DROP, LX_DROP_PORT, NULL, "enforce after switch: tcp 22 drops");
	drops_read(&sw, &d2);
	CHECK(d2.drops[LX_DROP_PORT].packets == 1 && d2.drops[LX_DROP_PORT].bytes == bad.len &&
		  d2.would[LX_DROP_PORT].packets == 2 &&
		  d2.would[LX_DROP_PORT].bytes == 2 * bad.len,
	      "after switch: drops[port] = 1 packet, would_drop[port] still 2 (got %llu, %llu)",
	      (unsigned long long)d2.drops[LX_DROP_PORT].packets,
	      (unsigned long long)d2.would[LX_DROP_PORT].packets);
	prog_set(&sw, LX_POLICY_MONITOR, 0);
	expect(&sw, &bad, V_PASS, LX_DROP_PORT, NULL, "monitor again: tcp 22 passes");
	drops_read(&sw, &d2);
	CHECK(d2.drops[LX_DROP_PORT].packets == 1 && d2.would[LX_DROP_PORT].packets == 3,
	      "back to monitor: drops[port] 1, would_drop[port] 3 (got %llu, %llu)",
	      (unsigned long long)d2.drops[LX_DROP_PORT].packets,
	      (unsigned long long)d2.would[LX_DROP_PORT].packets);
	prog_close(&sw);
}

/* ---- 8. the DSCP tag mode ---- */

struct tag_class {
	int dscp;
	int rule; /* id */
	int proto;
	uint16_t port;
	const struct host *dst;
};

/*
 * A listening rule of a service with this DSCP (preferably of that service and transport), on
 * the Front End or the clients, that wins its lowest port on both address families.
 */
static int find_tag_class(int dscp, const char *service, int proto, struct tag_class *tc)
{
	const struct host *hosts[2] = { &FE, &CLIENT };
	int svc = matrix_find_service(&M, service);
	for (int i = 0; i < 2 * M.nrules; i++) {
		const struct matrix_rule *r = &M.rules[i % M.nrules];
		int preferred = r->service == svc && r->proto == proto;
		if (r->kind != LX_KIND_LISTEN || C_base.dscp[i % M.nrules] != dscp ||
		    (i < M.nrules && !preferred))
			continue;
		for (int h = 0; h < 2; h++) {
			for (int fam = 4; fam <= 6; fam += 2) {
				uint32_t g = group_of(&C_base, addr_of(hosts[h], fam));
				if (!g || compiled_rule_at(&C_base, g, r->proto, r->port_lo) !=
					      i % M.nrules + 1)
					goto next_host;
			}
			tc->dscp = dscp;
			tc->rule = i % M.nrules + 1;
			tc->proto = r->proto;
			tc->port = r->port_lo;
			tc->dst = hosts[h];
			return 0;
		next_host:;
		}
	}
	return -1;
}

/* Expected remarked packets and bytes per rule id and direction. */
static struct lx_count *exp_remarked;

static void check_remarked(struct prog *in, const struct lx_count *expected, const char *when)
{
	struct stats_report r;
	prog_report(in, &r);
	int bad = 0, nonzero = 0;
	char first[200] = "";
	for (int i = 0; i < r.nrows; i++) {
		const struct stats_row *row = &r.rows[i];
		const struct lx_count *e = &expected[row->rule * LX_DIR_MAX + row->dir];
		nonzero += row->remarked.packets != 0;
		if (row->remarked.packets != e->packets || row->remarked.bytes != e->bytes) {
			if (!bad++)
				snprintf(first, sizeof(first),
					 "; first: rule %u %s %s %s: %llu packets %llu bytes, "
					 "expected %llu, %llu",
					 row->rule, row->info.role, row->info.service,
					 stats_dir_name(row->dir),
					 (unsigned long long)row->remarked.packets,
					 (unsigned long long)row->remarked.bytes,
					 (unsigned long long)e->packets,
					 (unsigned long long)e->bytes);
		}
	}
	CHECK(bad == 0, "%s [%s]: remarked counters of all %d rows exact (%d rows nonzero)%s",
	      in->name, when, r.nrows, nonzero, first);
	stats_free(&r);
}

/*
 * Runs a frame through a tag instance; checks the output against the input: DSCP as
 * expected (want < 0: unchanged), ECN kept, IPv4 checksum, flow label, every other byte.
 * Returns 1 when every property holds; why says which did not.
 */
static int tag_run(struct prog *in, const struct frame *f, int want, uint32_t rule, char *why,
		   size_t whylen)
{
	run(in, f);
	why[0] = '\0';
	size_t ip = ip_off(f);
	int fam = frame_family(f);
	uint8_t in_tc, out_tc;
	if (fam == 4) {
		in_tc = f->b[ip + 1];
		out_tc = R.out[ip + 1];
	} else {
		in_tc = (uint8_t)((f->b[ip] & 0x0f) << 4 | f->b[ip + 1] >> 4);
		out_tc = (uint8_t)((R.out[ip] & 0x0f) << 4 | R.out[ip + 1] >> 4);
	}
	int expect_dscp = want < 0 ? in_tc >> 2 : want;
	size_t n = 0;
#define WHY(...)                                                                                   \
	do {                                                                                       \
		if (n < whylen)                                                                    \
			n += (size_t)snprintf(why + n, whylen - n, __VA_ARGS__);                   \
	} while (0)
	if (R.retval != V_PASS)
		WHY(" verdict %s;", verdict_name(R.retval));
	if (rule && R.last.rule != rule)
		WHY(" rule %u, expected %u;", R.last.rule, rule);
	if (R.out_len != f->len)
		WHY(" output %zu bytes, input %zu;", R.out_len, f->len);
	if (out_tc >> 2 != expect_dscp)
		WHY(" dscp %d, expected %d;", out_tc >> 2, expect_dscp);
	if (R.last.dscp != (uint32_t)expect_dscp)
		WHY(" lx_last.dscp %u;", R.last.dscp);
	if ((out_tc & 3) != (in_tc & 3))
		WHY(" ecn %d, was %d;", out_tc & 3, in_tc & 3);
	if (fam == 4 && !ipv4_checksum_ok(R.out + ip))
		WHY(" ipv4 header checksum wrong (%02x%02x);", R.out[ip + 10], R.out[ip + 11]);
	if (fam == 6 && ((R.out[ip + 1] & 0x0f) != (f->b[ip + 1] & 0x0f) ||
			 memcmp(R.out + ip + 2, f->b + ip + 2, 2)))
		WHY(" flow label changed;");
	for (size_t i = 0; i < f->len && i < R.out_len; i++) {
		uint8_t mask = 0xff;
		if (fam == 4 && (i == ip + 1 || i == ip + 10 || i == ip + 11))
			continue;
		if (fam == 6 && i == ip)
			mask = 0xf0;
		if (fam == 6 && i == ip + 1)
			mask = 0x0f;
		if ((R.out[i] ^ f->b[i]) & mask) {
			WHY(" byte %zu changed (%02x -> %02x);", i, f->b[i], R.out[i]);
			break;
		}
	}
	if (want < 0 || (in_tc >> 2) == want) {
		if (R.out_len != f->len || memcmp(R.out, f->b, f->len))
			WHY(" frame not byte-identical;");
	}
#undef WHY
	return why[0] == '\0';
}

static struct frame tag_frame(const struct tag_class *tc, int fam, int nvlans, uint8_t tos,
			      size_t payload)
{
	/* A client's rule needs a peer holding a role: another client (maps/README.md). */
	const struct host *src = tc->dst == &CLIENT ? &CLIENT2 : &PEER;
	struct packet_spec s = spec(tc->proto == LX_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP, src,
				    40000, tc->dst, tc->port, fam);
	s.tos = tos;
	s.nvlans = nvlans;
	if (nvlans == 2)
		s.vlan_tpid[0] = 0x88a8;
	s.vlan_id[0] = 100;
	s.vlan_id[1] = 200;
	s.payload_len = payload;
	struct frame f = build(&s);
	if (fam == 6) { /* a flow label the rewrite must keep */
		size_t ip = ip_off(&f);
		f.b[ip + 1] |= 0x0a;
		f.b[ip + 2] = 0xbc;
		f.b[ip + 3] = 0xde;
	}
	return f;
}

static void account_remark(const struct frame *f, int remarked)
{
	if (!remarked)
		return;
	struct lx_count *e = &exp_remarked[R.last.rule * LX_DIR_MAX + R.last.dir];
	e->packets++;
	e->bytes += f->len;
}

static struct tag_class classes[4];

static void test_tag(struct prog *tag)
{
	static const int dscps[4] = { 46, 34, 24, 14 };
	static const char *const prefer[4] = { "media-audio", "media-video", "sip-tls",
					       "file-transfer" };
	static const int prefer_proto[4] = { LX_PROTO_UDP, LX_PROTO_UDP, LX_PROTO_TCP,
					     LX_PROTO_TCP };
	struct prog tag0, ovr;
	inst_open(&tag0, "monitor tag 0", &S_base, &C_base, LX_POLICY_MONITOR, 0);
	inst_open(&ovr, "monitor tag 1 dscp-override", &S_dscp, &C_dscp, LX_POLICY_MONITOR, 1);
	exp_remarked = calloc(((size_t)M.nrules + 1) * LX_DIR_MAX, sizeof(*exp_remarked));
	struct lx_count *none = calloc(((size_t)M.nrules + 1) * LX_DIR_MAX, sizeof(*none));
	if (!exp_remarked || !none)
		die("out of memory");

	for (int k = 0; k < 4; k++) {
		int found = find_tag_class(dscps[k], prefer[k], prefer_proto[k], &classes[k]) == 0;
		CHECK(
		    found,
		    "tag: sfb2015 has a rule of DSCP %d on a role of the site (rule %d, %s %s %u)",
		    dscps[k], found ? classes[k].rule : 0,
		    found ? M.services[M.rules[classes[k].rule - 1].service].slug : "-",
		    found ? matrix_proto_name(classes[k].proto) : "-", found ? classes[k].port : 0);
		if (!found)
			die("no rule of DSCP %d", dscps[k]);
	}

	char why[512];
	for (int k = 0; k < 4; k++) {
		const struct tag_class *tc = &classes[k];
		const char *svc = M.services[M.rules[tc->rule - 1].service].slug;
		for (int fam = 4; fam <= 6; fam += 2)
			for (int v = 0; v <= 2; v++)
				for (int start = 0; start < 2; start++)
					for (int ecn = 0; ecn < 4; ecn++) {
						int from = start ? 10 : 0;
						uint8_t tos = (uint8_t)(from << 2 | ecn);
						struct frame f = tag_frame(tc, fam, v, tos,
									   (size_t)(k * 7 + ecn));
						int ok =
						    tag_run(tag, &f, tc->dscp, (uint32_t)tc->rule,
							    why, sizeof(why));
						account_remark(&f, 1);
						CHECK(ok,
						      "%s [%s %s %u IPv%d, %d VLAN(s), ecn %d, "
						      "dscp %d]: "
						      "re-marked to %d, ECN, checksum, flow label "
						      "and other "
						      "bytes kept%s",
						      tag->name, svc, matrix_proto_name(tc->proto),
						      tc->port, fam, v, ecn, from, tc->dscp, why);
						/* tag 0 never changes a byte */
						ok = tag_run(&tag0, &f, -1, (uint32_t)tc->rule, why,
							     sizeof(why));
						CHECK(ok,
						      "%s [%s IPv%d, %d VLAN(s), ecn %d, dscp %d]: "
						      "frame "
						      "byte-identical%s",
						      tag0.name, svc, fam, v, ecn, from, why);
					}
		/* Already carrying the target: untouched, not counted. */
		for (int fam = 4; fam <= 6; fam += 2)
			for (int ecn = 0; ecn < 4; ecn++) {
				struct frame f =
				    tag_frame(tc, fam, ecn % 3, (uint8_t)(tc->dscp << 2 | ecn), 5);
				int ok = tag_run(tag, &f, tc->dscp, (uint32_t)tc->rule, why,
						 sizeof(why));
				CHECK(ok,
				      "%s [%s IPv%d ecn %d, already dscp %d]: byte-identical, not "
				      "re-marked%s",
				      tag->name, svc, fam, ecn, tc->dscp, why);
			}
	}
	check_remarked(tag, exp_remarked, "after the class sweep");
	check_remarked(&tag0, none, "tag 0: nothing re-marked");

	/* Site overrides: media-audio 40, sip-tls left alone, the rest as the matrix says. */
	struct lx_count *saved = exp_remarked;
	exp_remarked = calloc(((size_t)M.nrules + 1) * LX_DIR_MAX, sizeof(*exp_remarked));
	if (!exp_remarked)
		die("out of memory");
	int audio = matrix_find_service(&M, "media-audio"),
	    siptls = matrix_find_service(&M, "sip-tls");
	for (int k = 0; k < 4; k++) {
		const struct tag_class *tc = &classes[k];
		int svc = M.rules[tc->rule - 1].service;
		int want = svc == audio ? 40 : svc == siptls ? -1 : tc->dscp;
		for (int fam = 4; fam <= 6; fam += 2)
			for (int ecn = 0; ecn < 4; ecn += 3) {
				struct frame f =
				    tag_frame(tc, fam, 1, (uint8_t)(10 << 2 | ecn), 20);
				int ok =
				    tag_run(&ovr, &f, want, (uint32_t)tc->rule, why, sizeof(why));
				account_remark(&f, want >= 0);
				CHECK(ok, "%s [%s IPv%d ecn %d from dscp 10]: %s %d%s", ovr.name,
				      M.services[svc].slug, fam, ecn,
				      want < 0 ? "left alone at" : "re-marked to",
				      want < 0 ? 10 : want, why);
			}
	}
	/* sip-tls by the Front End, whatever the direction, is left alone. */
	struct frame f = pkt(IPPROTO_TCP, &FE, 5061, &PEER, 40000, 4, 0x12, 0);
	f.b[15] = 10 << 2;
	ipv4_checksum_fix(f.b + 14);
	int ok = tag_run(&ovr, &f, -1, 0, why, sizeof(why));
	CHECK(ok, "%s [sip-tls from frontend:5061 (out), dscp 10]: left alone%s", ovr.name, why);
	check_remarked(&ovr, exp_remarked, "after the override sweep");

	/* Enforce and tag together: what is dropped is not re-marked (nor counted). */
	struct prog enf;
	inst_open(&enf, "enforce tag 1", &S_base, &C_base, LX_POLICY_ENFORCE, 1);
	memset(exp_remarked, 0, ((size_t)M.nrules + 1) * LX_DIR_MAX * sizeof(*exp_remarked));
	int edge_sip = find_rule(LX_KIND_LISTEN, "edge-external", "sip-tls", LX_PROTO_TCP);
	for (int fam = 4; fam <= 6; fam += 2) {
		struct packet_spec ps = spec(IPPROTO_TCP, &PEER, 40000, &EXT, 5061, fam);
		ps.tos = 10 << 2 | 1;
		f = build(&ps);
		ok = tag_run(&enf, &f, 24, (uint32_t)edge_sip, why, sizeof(why));
		account_remark(&f, 1);
		CHECK(ok,
		      "%s [tcp to edge-external 5061 IPv%d, dscp 10]: passes, re-marked to 24%s",
		      enf.name, fam, why);
		ps = spec(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40999, fam);
		ps.tos = 10 << 2 | 1;
		ps.tcp_flags = 0x12;
		f = build(&ps);
		run(&enf, &f);
		CHECK(
		    R.retval == V_DROP && R.last.reason == LX_DROP_UNSOLICITED &&
			R.out_len == f.len && !memcmp(R.out, f.b, f.len),
		    "%s [unsolicited tcp from partner:5061 IPv%d, dscp 10]: dropped, not re-marked "
		    "(got %s, reason %s)",
		    enf.name, fam, verdict_name(R.retval), stats_reason_name(R.last.reason));
	}
	check_remarked(&enf, exp_remarked, "enforce: only what passes is re-marked");
	prog_close(&enf);

	free(exp_remarked);
	free(none);
	exp_remarked = saved;
	prog_close(&tag0);
	prog_close(&ovr);
}

/* ---- 9. randomised IPv4 checksums ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint32_t rnd(uint32_t n)
{
	return (uint32_t)(rng() % n);
}

static void test_random(struct prog *tag, uint64_t seed)
{
	/* Every listening rule with a DSCP on the Front End or the clients. */
	int cand[256], ncand = 0;
	const struct host *cand_host[256];
	int fe = matrix_find_role(&M, "frontend"), all = matrix_find_role(&M, "all-servers"),
	    cl = matrix_find_role(&M, "clients");
	for (int i = 0; i < M.nrules && ncand < 256; i++) {
		const struct matrix_rule *r = &M.rules[i];
		if (r->kind != LX_KIND_LISTEN || C_base.dscp[i] == LX_DSCP_KEEP)
			continue;
		if (r->role == fe || r->role == all || r->role == cl) {
			cand_host[ncand] = r->role == cl ? &CLIENT : &FE;
			cand[ncand++] = i;
		}
	}
	CHECK(ncand >= 4, "random: %d tagged rules on the frontend and clients to aim at", ncand);
	rng_state = seed ? seed : 1;
	uint32_t g4[2] = { group_of(&C_base, FE.v4), group_of(&C_base, CLIENT.v4) };
	int bad_sum = 0, bad_dscp = 0, bad_other = 0, remarked = 0;
	char first_sum[600] = "", first_dscp[600] = "", first_other[600] = "";
	char why[512];
	for (int n = 0; n < RANDOM_PACKETS; n++) {
		uint32_t pick = rnd((uint32_t)ncand);
		const struct matrix_rule *r = &M.rules[cand[pick]];
		const struct host *dst = cand_host[pick];
		uint16_t port =
		    (uint16_t)(r->port_lo + rnd((uint32_t)(r->port_hi - r->port_lo) + 1));
		struct packet_spec s = spec(r->proto == LX_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP,
					    &PEER, (uint16_t)(1024 + rnd(64000)), dst, port, 4);
		char src[32];
		/* No role toward the Front End; another listed client toward a client (a client
		 * rule needs a peer holding a role): its own rule on an ephemeral port is never
		 * narrower than the destination's. */
		if (dst == &CLIENT)
			snprintf(src, sizeof(src), "192.0.2.%u", 131 + rnd(100));
		else
			snprintf(src, sizeof(src), "203.0.113.%u", 100 + rnd(150));
		s.src = endpoint_at(src, s.src.port);
		s.tos = (uint8_t)rnd(256);
		s.ipv4_options = (uint8_t)(4 * rnd(11));
		s.nvlans = (int)rnd(3);
		if (s.nvlans == 2 && rnd(2))
			s.vlan_tpid[0] = 0x88a8;
		s.vlan_id[0] = (uint16_t)rnd(4096);
		s.vlan_id[1] = (uint16_t)rnd(4096);
		s.payload_len = rnd(400);
		s.tcp_flags = (uint8_t)(rnd(2) ? 0x18 : 0x10);
		struct frame f = build(&s);
		size_t ip = ip_off(&f);
		/* random id, ttl and DF: other checksums than packet_build's */
		f.b[ip + 4] = (uint8_t)rnd(256);
		f.b[ip + 5] = (uint8_t)rnd(256);
		f.b[ip + 6] = rnd(2) ? 0x40 : 0;
		f.b[ip + 8] = (uint8_t)(1 + rnd(255));
		for (size_t o = 20; o < 20u + s.ipv4_options; o++)
			f.b[ip + o] = (uint8_t)rnd(256); /* the program never reads options */
		ipv4_checksum_fix(f.b + ip);

		uint32_t g = g4[dst == &CLIENT];
		uint16_t rule = compiled_rule_at(&C_base, g, r->proto, port);
		int want =
		    rule ? (C_base.dscp[rule - 1] == LX_DSCP_KEEP ? -1 : C_base.dscp[rule - 1])
			 : -1;
		int ok = tag_run(tag, &f, want, rule, why, sizeof(why));
		int sum_ok = ipv4_checksum_ok(R.out + ip);
		int dscp_ok = (R.out[ip + 1] >> 2) == (want < 0 ? s.tos >> 2 : want);
		int changed = R.out_len == f.len && memcmp(R.out, f.b, f.len) != 0;
		account_remark(&f, changed);
		remarked += changed;
		char desc[160];
		snprintf(desc, sizeof(desc), "#%d %s %u tos 0x%02x options %u vlans %d len %zu", n,
			 matrix_proto_name(r->proto), port, s.tos, s.ipv4_options, s.nvlans, f.len);
		if (!sum_ok && !bad_sum++)
			snprintf(first_sum, sizeof(first_sum), "; first: %s", desc);
		if (!dscp_ok && !bad_dscp++)
			snprintf(first_dscp, sizeof(first_dscp), "; first: %s:%s", desc, why);
		if (!ok && sum_ok && dscp_ok && !bad_other++)
			snprintf(first_other, sizeof(first_other), "; first: %s:%s", desc, why);
	}
	CHECK(bad_sum == 0,
	      "random (seed %llu): all %d IPv4 output header checksums verify (%d did not)%s",
	      (unsigned long long)seed, RANDOM_PACKETS, bad_sum, first_sum);
	CHECK(bad_dscp == 0,
	      "random (seed %llu): every output DSCP is the winning rule's (%d wrong)%s",
	      (unsigned long long)seed, bad_dscp, first_dscp);
	CHECK(bad_other == 0,
	      "random (seed %llu): ECN and every other byte kept, verdict XDP_PASS (%d not)%s",
	      (unsigned long long)seed, bad_other, first_other);
	CHECK(remarked > RANDOM_PACKETS / 2, "random (seed %llu): %d of %d packets re-marked",
	      (unsigned long long)seed, remarked, RANDOM_PACKETS);

	/*
	 * The incremental checksum update (RFC 1624, eqn. 3) at its carry edges: headers whose
	 * sum ~HC + ~m + m' needs a second fold, and rewrites whose new checksum is 0x0000 (the
	 * one's complement sum folds to 0xffff; a new checksum of 0xffff cannot arise). Searched
	 * over the IP id, for every class and ECN value.
	 */
	int edges = 0, edge_bad = 0, by_kind[2] = { 0, 0 };
	char first_edge[600] = "";
	for (int k = 0; k < 4; k++)
		for (int ecn = 0; ecn < 4; ecn++) {
			int found[2] = { 0, 0 };
			struct frame base =
			    tag_frame(&classes[k], 4, 0, (uint8_t)(5 << 2 | ecn), 3);
			size_t ip = ip_off(&base);
			for (uint32_t id = 0; id < 65536; id++) {
				struct frame f = base;
				f.b[ip + 4] = (uint8_t)(id >> 8);
				f.b[ip + 5] = (uint8_t)id;
				ipv4_checksum_fix(f.b + ip);
				uint16_t hc = get16(f.b + ip + 10);
				uint16_t m = get16(f.b + ip);
				uint16_t m2 = (uint16_t)(f.b[ip] << 8 | classes[k].dscp << 2 | ecn);
				uint32_t sum = (uint32_t)(uint16_t)~hc + (uint16_t)~m + m2;
				uint32_t once = (sum & 0xffff) + (sum >> 16);
				uint16_t new_hc = (uint16_t)~csum_fold(sum);
				int kind = once > 0xffff      ? 0
					   : new_hc == 0      ? 1
					   : new_hc == 0xffff ? 2
							      : -1;
				if (kind < 0 || found[kind] >= 4)
					continue;
				found[kind]++;
				by_kind[kind]++;
				edges++;
				if (!tag_run(tag, &f, classes[k].dscp, (uint32_t)classes[k].rule,
					     why, sizeof(why)) &&
				    !edge_bad++)
					snprintf(first_edge, sizeof(first_edge),
						 "; first: dscp %d ecn %d id 0x%04x (checksum "
						 "0x%04x):%s",
						 classes[k].dscp, ecn, id, hc, why);
				account_remark(&f, 1);
			}
		}
	CHECK(by_kind[0] >= 8 && by_kind[1] >= 8 && edge_bad == 0,
	      "%s [checksum carry edges]: %d headers needing a second fold, %d giving checksum "
	      "0x0000: all re-marked with a valid checksum (%d not)%s",
	      tag->name, by_kind[0], by_kind[1], edge_bad, first_edge);
	check_remarked(tag, exp_remarked, "after the random run and the checksum edges");
}

/* ---- 12. QoS conformance ---- */

/* Conformance counts of one rule and direction, from a report. */
static void conformance_of(struct prog *in, uint32_t rule, uint32_t dir, uint64_t out[LX_CONF_MAX],
			   int *keep)
{
	struct stats_report r;
	prog_report(in, &r);
	memset(out, 0, sizeof(uint64_t) * LX_CONF_MAX);
	for (int i = 0; i < r.nrows; i++)
		if (r.rows[i].rule == rule && r.rows[i].dir == dir) {
			for (int k = 0; k < LX_CONF_MAX; k++)
				out[k] = r.rows[i].conformance[k].packets;
			*keep = r.rows[i].info.dscp == LX_DSCP_KEEP;
		}
	stats_free(&r);
}

/*
 * Each class of the tag sweep, on a monitor instance and a tagging one: packets arriving with
 * the service's DSCP, with 0 and with other values are counted as expected, zero and other,
 * by the DSCP they arrive with (before any rewrite), whatever the ECN bits and VLAN tags. A
 * site `dscp` override moves the expectation; a rule whose service says `-` counts nothing.
 */
static void test_conformance(void)
{
	struct prog mon, tag, ovr;
	inst_open(&mon, "monitor conformance", &S_base, &C_base, LX_POLICY_MONITOR, 0);
	inst_open(&tag, "monitor tag 1 conformance", &S_base, &C_base, LX_POLICY_MONITOR, 1);
	inst_open(&ovr, "monitor conformance dscp-override", &S_dscp, &C_dscp, LX_POLICY_MONITOR,
		  0);
	struct prog *all[2] = { &mon, &tag };
	for (int k = 0; k < 4; k++) {
		const struct tag_class *tc = &classes[k];
		int other = tc->dscp == 10 ? 12 : 10;
		/* per address family and VLAN count: 3 expected, 2 zero, 1 other (+1 with 63) */
		for (int i = 0; i < 2; i++) {
			for (int fam = 4; fam <= 6; fam += 2)
				for (int v = 0; v <= 2; v++)
					for (int n = 0; n < 8; n++) {
						int d = n < 3	? tc->dscp
							: n < 5 ? 0
							: n < 7 ? other
								: 63;
						struct frame f = tag_frame(
						    tc, fam, v, (uint8_t)(d << 2 | (n & 3)), 10);
						run(all[i], &f);
					}
			uint64_t got[LX_CONF_MAX];
			int keep = 1;
			conformance_of(all[i], (uint32_t)tc->rule, LX_DIR_IN, got, &keep);
			CHECK(!keep && got[LX_CONF_EXPECTED] == 18 && got[LX_CONF_ZERO] == 12 &&
				  got[LX_CONF_OTHER] == 18,
			      "%s [%s DSCP %d, 48 packets]: expected/zero/other 18/12/18 (got "
			      "%llu/%llu/%llu)",
			      all[i]->name, M.services[M.rules[tc->rule - 1].service].slug,
			      tc->dscp, (unsigned long long)got[LX_CONF_EXPECTED],
			      (unsigned long long)got[LX_CONF_ZERO],
			      (unsigned long long)got[LX_CONF_OTHER]);
			uint64_t none[LX_CONF_MAX];
			conformance_of(all[i], (uint32_t)tc->rule, LX_DIR_OUT, none, &keep);
			CHECK(none[0] + none[1] + none[2] == 0,
			      "%s [%s DSCP %d]: the out direction counted nothing", all[i]->name,
			      M.services[M.rules[tc->rule - 1].service].slug, tc->dscp);
		}
	}
	/* The override: audio expects 40 instead of 46; sip-tls (`-`) counts nothing. */
	int audio = matrix_find_service(&M, "media-audio");
	for (int k = 0; k < 4; k++) {
		const struct tag_class *tc = &classes[k];
		if (M.rules[tc->rule - 1].service != audio)
			continue;
		int d[4] = { 40, 40, 46, 0 };
		for (int n = 0; n < 4; n++) {
			struct frame f = tag_frame(tc, 4, 0, (uint8_t)(d[n] << 2), 10);
			run(&ovr, &f);
		}
		uint64_t got[LX_CONF_MAX];
		int keep = 1;
		conformance_of(&ovr, (uint32_t)tc->rule, LX_DIR_IN, got, &keep);
		CHECK(!keep && got[0] == 2 && got[1] == 1 && got[2] == 1,
		      "%s [audio with `dscp media-audio 40`]: 40 expected, 46 other, 0 zero (got "
		      "%llu/%llu/%llu)",
		      ovr.name, (unsigned long long)got[0], (unsigned long long)got[1],
		      (unsigned long long)got[2]);
	}
	int siptls = -1;
	for (int i = 0; i < M.nrules; i++)
		if (M.rules[i].service == matrix_find_service(&M, "sip-tls") &&
		    M.rules[i].kind == LX_KIND_LISTEN &&
		    !strcmp(M.roles[M.rules[i].role].slug, "frontend") &&
		    M.rules[i].port_lo == 5061)
			siptls = i + 1;
	CHECK(siptls > 0, "conformance: sfb2015 has frontend sip-tls 5061 (rule %d)", siptls);
	if (siptls > 0) {
		struct frame f = pkt(IPPROTO_TCP, &PEER, 40000, &FE, 5061, 4, 0x02, 0);
		run(&ovr, &f);
		CHECK(R.last.rule == (uint32_t)siptls,
		      "%s: tcp to frontend 5061 is rule %d (got %u)", ovr.name, siptls,
		      R.last.rule);
		uint64_t got[LX_CONF_MAX];
		int keep = 0;
		conformance_of(&ovr, (uint32_t)siptls, LX_DIR_IN, got, &keep);
		CHECK(keep && got[0] + got[1] + got[2] == 0,
		      "%s [sip-tls with `dscp sip-tls -`]: no expectation, nothing counted",
		      ovr.name);
	}
	prog_close(&mon);
	prog_close(&tag);
	prog_close(&ovr);

	/*
	 * `qos expressroute`: the profile's values are what tag mode writes and what conformance
	 * expects. Per class: the value the profile gives (sip-tls 24 -> 0, file-transfer 14 ->
	 * 10, audio and video unchanged); a packet with the SfB default is then "other".
	 */
	struct site s_er;
	struct compiled c_er;
	struct text_error err = { { 0 } };
	if (site_load(SITE_ER, &M, &s_er, &err) < 0 || compile_tables(&M, &s_er, &c_er, &err) < 0)
		die("%s", err.msg);
	struct prog er;
	inst_open(&er, "monitor tag 1 qos expressroute", &s_er, &c_er, LX_POLICY_MONITOR, 1);
	for (int k = 0; k < 4; k++) {
		const struct tag_class *tc = &classes[k];
		const char *svc = M.services[M.rules[tc->rule - 1].service].slug;
		int want = !strcmp(svc, "sip-tls")	   ? 0
			   : !strcmp(svc, "file-transfer") ? 10
							   : tc->dscp;
		char why[256];
		struct frame f = tag_frame(tc, 4, 0, (uint8_t)(want << 2 | 1), 10);
		int ok = tag_run(&er, &f, want, (uint32_t)tc->rule, why, sizeof(why));
		f = tag_frame(tc, 6, 1, (uint8_t)(tc->dscp << 2 | 2), 10);
		ok &= tag_run(&er, &f, want, (uint32_t)tc->rule, why, sizeof(why));
		f = tag_frame(tc, 4, 0, 0x02, 10);
		ok &= tag_run(&er, &f, want, (uint32_t)tc->rule, why, sizeof(why));
		CHECK(ok, "%s [%s, SfB default %d]: tag mode writes the profile's %d%s", er.name,
		      svc, tc->dscp, want, why);
		uint64_t got[LX_CONF_MAX];
		int keep = 1;
		conformance_of(&er, (uint32_t)tc->rule, LX_DIR_IN, got, &keep);
		/* sent: the profile's value, the SfB default, 0 (the same when the profile says 0)
		 */
		uint64_t e = 1 + (tc->dscp == want) + (want == 0);
		uint64_t z = want != 0;
		uint64_t o = 3 - e - z;
		CHECK(!keep && got[0] == e && got[1] == z && got[2] == o,
		      "%s [%s]: conformance against %d: expected/zero/other %llu/%llu/%llu (got "
		      "%llu/%llu/%llu)",
		      er.name, svc, want, (unsigned long long)e, (unsigned long long)z,
		      (unsigned long long)o, (unsigned long long)got[0], (unsigned long long)got[1],
		      (unsigned long long)got[2]);
	}
	prog_close(&er);
	compile_free(&c_er);
	site_free(&s_er);
}

/* ---- 10. spoofed protected sources, replies from listen ports, a flood from outside ---- */

/* Entries in the instance's lx_flows, and how many it ever opened (lx_flow_stats). */
static int count_flow(const struct lx_flow_slot *s, void *arg)
{
	(void)s;
	++*(uint64_t *)arg;
	return 0;
}

static uint64_t flows_present(struct prog *in)
{
	uint64_t n = 0;
	if (pins_flows_each(in->t.fds.flows, count_flow, &n) < 0)
		die("reading lx_flows: %s", strerror(errno));
	return n;
}

static uint64_t flows_opened(struct prog *in)
{
	struct lx_flow_stats sum;
	if (pins_flow_stats(in->t.fds.flow_stats, &sum) < 0)
		die("reading lx_flow_stats");
	return sum.opened;
}

static void test_spoofed(void)
{
	struct prog in;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	drops_read(&in, &before);
	for (int fam = 4; fam <= 6; fam += 2) {
		/* The attack of issue 10: one frame claiming to come from the Edge's 3389 toward
		 * the attacker's 53 (an outbound DNS rule of the Edge) on the outside leg. */
		prog_side(&in, LX_SIDE_UNPROTECTED);
		uint64_t n0 = flows_present(&in);
		struct frame f = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, fam, 0x02, 0);
		expect(&in, &f, V_DROP, LX_DROP_SPOOFED, &ed,
		       "unprotected side: tcp SYN 'from' edge-external:3389 -> peer:53 IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PEER, 53, &EXT, 3389, fam, 0x02, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "then the attacker's SYN peer:53 -> edge-external:3389 IPv%d", fam);
		f = pkt(IPPROTO_UDP, &EXT, 3389, &PEER, 53, fam, 0, 20);
		expect(&in, &f, V_DROP, LX_DROP_SPOOFED, &ed,
		       "unprotected side: udp 'from' edge-external:3389 -> peer:53 IPv%d", fam);
		f = pkt(IPPROTO_UDP, &EXT, 3389, &PEER, 3478, fam, 0, 20);
		expect(&in, &f, V_DROP, LX_DROP_SPOOFED, &ed,
		       "unprotected side: udp 'from' edge-external:3389 -> peer:3478 IPv%d", fam);
		f = pkt(IPPROTO_UDP, &EXT, 51000, &PEER, 40000, fam, 0, 20);
		expect(&in, &f, V_DROP, LX_DROP_SPOOFED, &ed,
		       "unprotected side: udp 'from' the relay range edge-external:51000 IPv%d",
		       fam);
		f = pkt(IPPROTO_UDP, &PEER, 40000, &EXT, 51000, fam, 0, 20);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "then peer:40000 -> edge-external:51000 is unsolicited IPv%d", fam);
		f = pkt(IPPROTO_TCP, &INT, 41000, &PERIM, 5061, fam, 0x02, 0);
		expect(&in, &f, V_DROP, LX_DROP_SPOOFED, &ed,
		       "unprotected side: tcp 'from' edge-internal:41000 -> perimeter:5061 IPv%d",
		       fam);
		f = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, fam, 0x04, 0);
		expect(&in, &f, V_DROP, LX_DROP_SPOOFED, &ed,
		       "unprotected side: a RST 'from' the Edge is spoofed too IPv%d", fam);
		CHECK(flows_present(&in) == n0,
		      "enforce [unprotected side IPv%d]: no spoofed packet opened a flow (%llu "
		      "entries, before %llu)",
		      fam, (unsigned long long)flows_present(&in), (unsigned long long)n0);

		/* The same frames from the Edge's own side are the Edge's: they open flows. */
		prog_side(&in, LX_SIDE_PROTECTED);
		f = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, fam, 0x02, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "protected side: tcp SYN edge-external:3389 -> peer:53 IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PEER, 53, &EXT, 3389, fam, 0x12, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "protected side: its answer peer:53 -> edge-external:3389 passes IPv%d",
		       fam);
		/* ... and the answer arriving on the outside leg still passes: the check is on
		 * packets from protected addresses only. */
		prog_side(&in, LX_SIDE_UNPROTECTED);
		f = pkt(IPPROTO_TCP, &PEER, 53, &EXT, 3389, fam, 0x10, 10);
		expect(&in, &f, V_PASS, 0, &ed,
		       "unprotected side: the answer on the Edge's flow passes IPv%d", fam);
		/* A live flow the Edge opened here is refreshed from where it was seen. */
		f = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, fam, 0x10, 10);
		expect(&in, &f, V_PASS, 0, &ed,
		       "a live flow first seen on this interface refreshes without a new check "
		       "IPv%d",
		       fam);

		/* Replies from the Edge's listen ports never open a flow. */
		prog_side(&in, LX_SIDE_PROTECTED);
		uint64_t n1 = flows_present(&in), o1 = flows_opened(&in);
		static const uint16_t attacker_ports[] = { 53, 80, 443, 5061, 5269, 3478 };
		for (size_t k = 0; k < sizeof(attacker_ports) / sizeof(attacker_ports[0]); k++) {
			uint16_t ap = attacker_ports[k];
			f = pkt(IPPROTO_TCP, &EXT, 443, &PEER, ap, fam, 0x12, 0);
			expect(&in, &f, V_PASS, 0, &ed,
			       "the Edge's SYN-ACK from 443 to peer:%u passes IPv%d", ap, fam);
			f = pkt(IPPROTO_TCP, &EXT, 5061, &PEER, ap, fam, 0x12, 0);
			expect(&in, &f, V_PASS, 0, &ed,
			       "the Edge's SYN-ACK from 5061 to peer:%u passes IPv%d", ap, fam);
			f = pkt(IPPROTO_UDP, &EXT, 3478, &PEER, ap, fam, 0, 40);
			expect(&in, &f, V_PASS, 0, &ed,
			       "the Edge's STUN answer from 3478 to peer:%u passes IPv%d", ap, fam);
		}
		CHECK(flows_present(&in) == n1 && flows_opened(&in) == o1,
		      "enforce [IPv%d]: 18 replies from the Edge's listen ports (443, 5061, 3478) "
		      "to peer ports 53/80/443/5061/5269/3478 opened no flow (%llu -> %llu "
		      "entries, %llu -> %llu opened)",
		      fam, (unsigned long long)n1, (unsigned long long)flows_present(&in),
		      (unsigned long long)o1, (unsigned long long)flows_opened(&in));
		f = pkt(IPPROTO_UDP, &PEER, 53, &EXT, 3478, fam, 0, 40);
		expect(&in, &f, V_PASS, 0, &ed,
		       "an inbound STUN request to 3478 still passes (listen) IPv%d", fam);
		f = pkt(IPPROTO_TCP, &PEER, 443, &EXT, 40555, fam, 0x02, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "but peer:443 -> edge-external:40555 finds no flow IPv%d", fam);
	}
	check_drops_delta(&in, &before, &ed, "spoofed and listen-port replies");
	prog_close(&in);

	/* Monitor: a spoofed packet passes, would-drop "spoofed", and opens nothing. */
	struct prog mon;
	inst_open(&mon, "monitor", &S_base, &C_base, LX_POLICY_MONITOR, 0);
	prog_side(&mon, LX_SIDE_UNPROTECTED);
	struct frame f = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, 4, 0x02, 0);
	expect(&mon, &f, V_PASS, LX_DROP_SPOOFED, NULL,
	       "unprotected side: the spoofed SYN passes, would-drop spoofed");
	f = pkt(IPPROTO_TCP, &PEER, 53, &EXT, 3389, 4, 0x02, 0);
	expect(&mon, &f, V_PASS, LX_DROP_UNSOLICITED, NULL,
	       "and the attacker's SYN is counted unsolicited (no flow was opened)");
	CHECK(flows_present(&mon) == 0, "monitor: the spoofed packet opened no flow (%llu)",
	      (unsigned long long)flows_present(&mon));
	prog_close(&mon);
}

#define FLOOD_PACKETS 1000000
/* Each frame once: with repeat > 1 every test run would join and leave the XDP dispatcher,
 * two synchronize_rcu() per call. A million distinct 5-tuples, 15 times what lx_flows holds. */
#define FLOOD_REPEAT  1

/* One attack frame of the flood: k picks the kind, i spreads addresses and ports. */
static struct frame flood_frame(uint64_t i, int *side)
{
	static const uint16_t aports[] = { 53, 80, 443, 5061, 5269, 3478 };
	int fam = (i & 1) ? 6 : 4;
	int kind = (int)((i >> 1) % 5);
	uint16_t ap = aports[(i >> 4) % 6];
	uint32_t host = (uint32_t)(i >> 3); /* a different attacker every few frames */
	struct packet_spec sp;
	switch (kind) {
	case 0: /* spoofed: the Edge's address, an outbound port of it, arriving outside */
		sp = spec(IPPROTO_TCP, &EXT, (uint16_t)(1024 + i % 60000), &PEER, ap, fam);
		*side = LX_SIDE_UNPROTECTED;
		break;
	case 1: /* spoofed UDP from the relay range */
		sp = spec(IPPROTO_UDP, &EXT, (uint16_t)(50000 + i % 10000), &PEER, ap, fam);
		*side = LX_SIDE_UNPROTECTED;
		break;
	case 2: /* the attacker's SYNs to 443/5061 from the ports the Edge has outbound rules to */
		sp = spec(IPPROTO_TCP, &PEER, ap, &EXT, (i >> 5) & 1 ? 5061 : 443, fam);
		*side = LX_SIDE_UNPROTECTED;
		break;
	case 3: /* the Edge's SYN-ACKs answering them, on the Edge's side */
		sp = spec(IPPROTO_TCP, &EXT, (i >> 5) & 1 ? 5061 : 443, &PEER, ap, fam);
		sp.tcp_flags = 0x12;
		*side = LX_SIDE_PROTECTED;
		break;
	default: /* the Edge's STUN answers from 3478 */
		sp = spec(IPPROTO_UDP, &EXT, 3478, &PEER, ap, fam);
		*side = LX_SIDE_PROTECTED;
		break;
	}
	/* The attacker: 100.64.0.0/10 (IPv4), 2001:db8:aaaa::/48 (IPv6), never a site address. */
	struct endpoint *att = sp.src.port == ap && kind == 2 ? &sp.src : &sp.dst;
	if (fam == 4) {
		att->addr[0] = 100;
		att->addr[1] = (uint8_t)(64 | ((host >> 16) & 63));
		att->addr[2] = (uint8_t)(host >> 8);
		att->addr[3] = (uint8_t)host;
	} else {
		static const uint8_t pfx[6] = { 0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xaa };
		memcpy(att->addr, pfx, 6);
		memset(att->addr + 6, 0, 10);
		att->addr[13] = (uint8_t)(host >> 16);
		att->addr[14] = (uint8_t)(host >> 8);
		att->addr[15] = (uint8_t)host;
	}
	sp.payload_len = 20;
	return build(&sp);
}

/*
 * A million packets of every kind above from outside (and the Edge's own answers to them):
 * no new entry in lx_flows, and the live flow of a federation connection survives and works.
 */
static void test_flood(void)
{
	struct prog in;
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	prog_side(&in, LX_SIDE_PROTECTED);
	struct frame f = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, 4, 0x02, 0);
	expect(&in, &f, V_PASS, 0, NULL, "a live federation flow: SYN edge:40100 -> partner:5061");
	uint64_t n0 = flows_present(&in), o0 = flows_opened(&in);
	uint64_t runs[2] = { 0, 0 }, drops = 0;
	/* Two passes, so that each runs with its side set once: outside kinds, then the Edge's. */
	for (int pass = 0; pass < 2; pass++) {
		prog_side(&in, pass ? LX_SIDE_PROTECTED : LX_SIDE_UNPROTECTED);
		for (uint64_t i = 0; i < FLOOD_PACKETS / FLOOD_REPEAT; i++) {
			int side;
			struct frame g = flood_frame(i, &side);
			if ((side == LX_SIDE_PROTECTED) != pass)
				continue;
			LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = g.b,
				    .data_size_in = (__u32)g.len, .repeat = FLOOD_REPEAT);
			if (bpf_prog_test_run_opts(in.t.prog_fd, &opts))
				die("BPF_PROG_TEST_RUN: %s", strerror(errno));
			runs[pass] += FLOOD_REPEAT;
			drops += opts.retval == XDP_DROP ? FLOOD_REPEAT : 0;
		}
	}
	uint64_t n1 = flows_present(&in), o1 = flows_opened(&in);
	CHECK(runs[0] + runs[1] == FLOOD_PACKETS,
	      "flood: %d attack packets run (%llu from outside, %llu answers of the Edge), %llu "
	      "dropped",
	      FLOOD_PACKETS, (unsigned long long)runs[0], (unsigned long long)runs[1],
	      (unsigned long long)drops);
	CHECK(n1 == n0 && o1 == o0,
	      "flood: lx_flows has no new entry (%llu entries before, %llu after; opened %llu -> "
	      "%llu)",
	      (unsigned long long)n0, (unsigned long long)n1, (unsigned long long)o0,
	      (unsigned long long)o1);
	prog_side(&in, LX_SIDE_UNPROTECTED);
	f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, 4, 0x12, 0);
	expect(&in, &f, V_PASS, 0, NULL,
	       "flood: the live federation flow is intact (partner's SYN-ACK passes)");
	prog_close(&in);
}

/* ---- main ---- */

/*
 * Section 13 (issue 10, item 5): an Edge behind the gateway's 1:1 NAT (site `nat`), and what
 * the Edge opens besides Lync: DNS on both interfaces, NTP and WSUS (`allow-outbound`). The
 * site's allow-outbound lines add rules, so it has a matrix of its own.
 */
#define SITE_NAT "tests/data/policy/nat.site"
static const struct host PRIV = { "edge-external private", "198.51.100.110", "2001:db8:100::110" };
static const struct host NTP = { "ntp-server", "203.0.113.123", "2001:db8:ffff::123" };
static const struct host WSUS = { "wsus-server", "198.51.100.70", "2001:db8:100::70" };

/* The verdict a policy gives a packet refused for `reason` (0: none). */
static int want(struct prog *in, const struct frame *f, uint32_t reason, struct expect_drops *ed,
		const char *what, int fam)
{
	uint32_t verdict = reason && in->policy == LX_POLICY_ENFORCE ? V_DROP : V_PASS;
	return expect(in, f, verdict, reason, ed, "%s IPv%d", what, fam);
}

/* The layout as it was before `nat`: the public address listed, the Edge sending from its
 * private one. Every reply to the Edge is refused: the false positive of issue 10. */
static void nat_before(struct prog *in, struct expect_drops *ed, int fam)
{
	struct frame f = pkt(IPPROTO_UDP, &PRIV, 33000, &DNS, 53, fam, 0, 30);
	want(in, &f, 0, ed, "no nat line: udp dns query from the private address", fam);
	f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33000, fam, 0, 90);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "no nat line: its reply to the public address", fam);
	f = pkt(IPPROTO_TCP, &PRIV, 40100, &PARTNER, 5061, fam, 0x02, 0);
	want(in, &f, 0, ed, "no nat line: federation SYN from the private address", fam);
	f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x12, 0);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "no nat line: the partner's SYN-ACK", fam);
	f = pkt(IPPROTO_UDP, &EXT, 123, &NTP, 123, fam, 0, 48);
	want(in, &f, 0, ed, "no allow-outbound: ntp query edge-external:123 -> ntp:123", fam);
	f = pkt(IPPROTO_UDP, &NTP, 123, &EXT, 123, fam, 0, 48);
	want(in, &f, LX_DROP_PORT, ed, "no allow-outbound: the ntp answer", fam);
}

static void nat_after(struct prog *in, const struct matrix *m, struct expect_drops *ed, int fam)
{
	int dns = rule_in(m, LX_KIND_OUTBOUND_TO, "edge-external", "dns", LX_PROTO_UDP);
	int ntp = rule_in(m, LX_KIND_OUTBOUND_TO, "edge-external", "allow-outbound", LX_PROTO_UDP);
	int fed = rule_in(m, LX_KIND_LISTEN, "edge-external", "sip-tls", LX_PROTO_TCP);
	uint64_t flows0 = flows_present(in);

	/* DNS from the private address; the answer comes back to the public one. */
	struct frame f = pkt(IPPROTO_UDP, &PRIV, 33000, &DNS, 53, fam, 0, 30);
	want(in, &f, 0, ed, "nat: udp dns query private:33000 -> dns:53", fam);
	CHECK(R.last.rule == (uint32_t)dns && R.last.dir == LX_DIR_OUT,
	      "%s [nat: dns query IPv%d]: edge-external's dns rule %d, out (got %u, %u)", in->name,
	      fam, dns, R.last.rule, R.last.dir);
	CHECK(flows_present(in) == flows0 + 1,
	      "%s [nat: dns query IPv%d]: opened one flow (%llu, before %llu)", in->name, fam,
	      (unsigned long long)flows_present(in), (unsigned long long)flows0);
	f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33000, fam, 0, 90);
	want(in, &f, 0, ed, "nat: its reply dns:53 -> public:33000", fam);
	CHECK(R.last.rule == (uint32_t)dns && R.last.dir == LX_DIR_IN,
	      "%s [nat: dns reply IPv%d]: rule %d, in (got %u, %u)", in->name, fam, dns,
	      R.last.rule, R.last.dir);
	f = pkt(IPPROTO_UDP, &DNS, 53, &PRIV, 33000, fam, 0, 90);
	want(in, &f, 0, ed, "nat: the same reply to the private address (one flow)", fam);
	f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, 33001, fam, 0, 90);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "nat: dns reply to another public port", fam);
	f = pkt(IPPROTO_UDP, &DNS2, 53, &EXT, 33000, fam, 0, 90);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "nat: dns reply from another server", fam);

	/* Federation: the Edge connects out; the partner answers the public address. */
	f = pkt(IPPROTO_TCP, &PRIV, 40100, &PARTNER, 5061, fam, 0x02, 0);
	want(in, &f, 0, ed, "nat: tcp SYN private:40100 -> partner:5061", fam);
	f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x12, 0);
	want(in, &f, 0, ed, "nat: SYN-ACK partner:5061 -> public:40100", fam);
	f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, 40100, fam, 0x18, 300);
	want(in, &f, 0, ed, "nat: data partner:5061 -> public:40100", fam);
	f = pkt(IPPROTO_TCP, &PARTNER2, 5061, &EXT, 40100, fam, 0x12, 0);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "nat: SYN-ACK from another partner", fam);
	/* Path MTU: the router's error quotes what it saw, the public source (after SNAT). */
	struct frame sent = pkt(IPPROTO_TCP, &EXT, 40100, &PARTNER, 5061, fam, 0x18, 1200);
	f = icmp_error_pkt(&ROUTER, &EXT, fam, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0, &sent, 8);
	want(in, &f, 0, ed, "nat: too big, quoting public:40100 -> partner:5061 (its flow)", fam);
	sent = pkt(IPPROTO_TCP, &EXT, 40199, &PARTNER, 5061, fam, 0x18, 1200);
	f = icmp_error_pkt(&ROUTER, &EXT, fam, fam == 4 ? 3 : 2, fam == 4 ? 4 : 0, &sent, 8);
	want(in, &f, LX_DROP_ICMP_UNRELATED, ed, "nat: too big, quoting public:40199 (no flow)",
	     fam);

	/* The media relay: the Edge sends from its relay port first. */
	f = pkt(IPPROTO_UDP, &PRIV, 50010, &PEER, 40000, fam, 0, 160);
	want(in, &f, 0, ed, "nat: relay private:50010 -> peer:40000", fam);
	f = pkt(IPPROTO_UDP, &PEER, 40000, &EXT, 50010, fam, 0, 160);
	want(in, &f, 0, ed, "nat: peer:40000 -> public:50010 on the relay's flow", fam);
	f = pkt(IPPROTO_UDP, &PEER2, 40000, &EXT, 50010, fam, 0, 160);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "nat: another peer -> public:50010", fam);

	/* Inbound to the public address: its private host's listening rules. */
	f = pkt(IPPROTO_TCP, &PEER, 45000, &EXT, 5061, fam, 0x02, 0);
	want(in, &f, 0, ed, "nat: tcp SYN peer -> public:5061", fam);
	CHECK(R.last.rule == (uint32_t)fed && R.last.dir == LX_DIR_IN,
	      "%s [nat: inbound 5061 IPv%d]: edge-external's sip-tls rule %d, in (got %u, %u)",
	      in->name, fam, fed, R.last.rule, R.last.dir);
	f = pkt(IPPROTO_UDP, &PEER, 45000, &EXT, 3478, fam, 0, 20);
	want(in, &f, 0, ed, "nat: udp peer -> public:3478", fam);
	f = pkt(IPPROTO_TCP, &PEER, 45000, &EXT, 8080, fam, 0x02, 0);
	want(in, &f, LX_DROP_PORT, ed, "nat: tcp SYN peer -> public:8080", fam);

	/* Forged from the public address: never a source at this gateway, whatever the side. */
	uint64_t flows1 = flows_present(in);
	for (uint32_t side = LX_SIDE_PROTECTED; side <= LX_SIDE_UNPROTECTED; side += 2) {
		prog_side(in, side);
		f = pkt(IPPROTO_TCP, &EXT, 3389, &PEER, 53, fam, 0x02, 0);
		want(in, &f, LX_DROP_SPOOFED, ed,
		     side ? "nat, unprotected side: SYN 'from' public:3389 -> peer:53"
			  : "nat, protected side: SYN 'from' public:3389 -> peer:53",
		     fam);
		f = pkt(IPPROTO_UDP, &EXT, 33500, &DNS, 53, fam, 0, 30);
		want(in, &f, LX_DROP_SPOOFED, ed, "nat: udp 'from' public:33500 -> dns:53", fam);
		f = pkt(IPPROTO_TCP, &PEER, 53, &EXT, 3389, fam, 0x12, 0);
		want(in, &f, LX_DROP_UNSOLICITED, ed, "nat: then peer:53 -> public:3389", fam);
	}
	prog_side(in, LX_SIDE_PROTECTED);
	CHECK(flows_present(in) == flows1,
	      "%s [nat IPv%d]: no packet from the public address opened a flow (%llu, before "
	      "%llu)",
	      in->name, fam, (unsigned long long)flows_present(in), (unsigned long long)flows1);

	/* allow-outbound udp 123: NTP from the external interface. */
	f = pkt(IPPROTO_UDP, &PRIV, 123, &NTP, 123, fam, 0, 48);
	want(in, &f, 0, ed, "allow-outbound: ntp query private:123 -> ntp:123", fam);
	CHECK(R.last.rule == (uint32_t)ntp && R.last.dir == LX_DIR_OUT,
	      "%s [allow-outbound ntp IPv%d]: the site's rule %d, out (got %u, %u)", in->name, fam,
	      ntp, R.last.rule, R.last.dir);
	f = pkt(IPPROTO_UDP, &NTP, 123, &EXT, 123, fam, 0, 48);
	want(in, &f, 0, ed, "allow-outbound: the ntp answer to the public address", fam);
	f = pkt(IPPROTO_UDP, &NTP, 123, &EXT, 124, fam, 0, 48);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "allow-outbound: ntp:123 -> public:124", fam);
	/* allow-outbound tcp 8530-8531: WSUS from the internal interface. */
	f = pkt(IPPROTO_TCP, &INT, 50500, &WSUS, 8531, fam, 0x02, 0);
	want(in, &f, 0, ed, "allow-outbound: SYN edge-internal:50500 -> wsus:8531", fam);
	f = pkt(IPPROTO_TCP, &WSUS, 8531, &INT, 50500, fam, 0x12, 0);
	want(in, &f, 0, ed, "allow-outbound: wsus's SYN-ACK", fam);
	f = pkt(IPPROTO_TCP, &WSUS, 8531, &INT, 50501, fam, 0x12, 0);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "allow-outbound: wsus:8531 -> another port", fam);
	/* The matrix's edge-internal DNS (doc:edge-dns): the perimeter DNS server. */
	f = pkt(IPPROTO_UDP, &INT, 50600, &PERIM, 53, fam, 0, 30);
	want(in, &f, 0, ed, "edge-internal dns query -> perimeter:53", fam);
	f = pkt(IPPROTO_UDP, &PERIM, 53, &INT, 50600, fam, 0, 90);
	want(in, &f, 0, ed, "edge-internal: the perimeter server's answer", fam);
	f = pkt(IPPROTO_UDP, &PERIM, 53, &INT, 50601, fam, 0, 90);
	want(in, &f, LX_DROP_UNSOLICITED, ed, "edge-internal: perimeter:53 -> another port", fam);
}

static void test_nat(void)
{
	struct matrix m;
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	if (matrix_load(MATRIX_PATH, &m, &err) < 0 || site_load(SITE_NAT, &m, &s, &err) < 0 ||
	    site_add_outbound_rules(&m, &s, &err) < 0 || compile_tables(&m, &s, &c, &err) < 0)
		die("%s", err.msg);
	CHECK(m.nrules == M.nrules + 4,
	      "%s: allow-outbound udp 123 and tcp 8530-8531 added a rule to each of the 2 "
	      "protected roles (%d rules, the matrix %d)",
	      SITE_NAT, m.nrules, M.nrules);
	struct drops before[2][2];
	struct expect_drops ed[2][2];
	memset(ed, 0, sizeof(ed));
	for (int p = 0; p < 2; p++) {
		uint32_t policy = p ? LX_POLICY_ENFORCE : LX_POLICY_MONITOR;
		struct prog old, nat;
		inst_open(&old, p ? "enforce, no nat" : "monitor, no nat", &S_base, &C_base, policy,
			  0);
		const struct prog_opts o = { .policy = policy, .comp = &c };
		prog_open(&nat, p ? "enforce, nat" : "monitor, nat", &m, &s, &o, NULL);
		drops_read(&old, &before[p][0]);
		drops_read(&nat, &before[p][1]);
		for (int fam = 4; fam <= 6; fam += 2) {
			nat_before(&old, &ed[p][0], fam);
			nat_after(&nat, &m, &ed[p][1], fam);
		}
		check_drops_delta(&old, &before[p][0], &ed[p][0], "no nat line");
		check_drops_delta(&nat, &before[p][1], &ed[p][1], "nat and allow-outbound");
		prog_close(&old);
		prog_close(&nat);
	}
	/* The same frames: monitor would have dropped exactly what enforce dropped. */
	for (int k = 0; k < 2; k++)
		CHECK(!memcmp(ed[0][k].add[0], ed[1][k].add[1], sizeof(ed[0][k].add[0])),
		      "%s: monitor's would-drops equal enforce's drops, reason by reason",
		      k ? "nat" : "no nat");
	compile_free(&c);
	site_free(&s);
	matrix_free(&m);
}

/* ---- the drop log's rate limit ---- */

static int droplog_record(void *ctx, void *data, size_t size)
{
	(void)data;
	(void)size;
	(*(uint64_t *)ctx)++;
	return 0;
}

/* `repeat` drops of frame f, then the drop log read (each record counted by rb's callback);
 * returns the verdict. */
static __u32 drop_burst(struct prog *in, struct ring_buffer *rb, const struct frame *f, int repeat)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->b, .data_size_in = (__u32)f->len,
		    .repeat = (__u32)repeat);
	if (bpf_prog_test_run_opts(in->t.prog_fd, &opts))
		die("BPF_PROG_TEST_RUN: %s", strerror(errno));
	if (ring_buffer__consume(rb) < 0)
		die("reading lx_droplog: %s", strerror(errno));
	return opts.retval;
}

/* A reader of the instance's drop log that counts its records in *records. */
static struct ring_buffer *droplog_reader(struct prog *in, uint64_t *records)
{
	*records = 0;
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(in->t.skel->maps.lx_droplog),
						  droplog_record, records, NULL);
	if (!rb)
		die("ring_buffer__new: %s", strerror(errno));
	return rb;
}

/* The drop log's rate limit is per CPU: its tests run on the CPU they start on. */
static void pin_this_cpu(void)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() > 0 ? sched_getcpu() : 0, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		die("sched_setaffinity: %s", strerror(errno));
}

/* Back to every CPU. */
static void unpin(void)
{
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < CPU_SETSIZE && i < libbpf_num_possible_cpus(); i++)
		CPU_SET(i, &all);
	sched_setaffinity(0, sizeof(all), &all);
}

/* Sent drop-log records of the instance (its windows) and suppressed ones (counted with each
 * drop counter), summed over CPUs. */
static void droplog_window(struct prog *in, uint64_t *sent, uint64_t *suppressed)
{
	int ncpu = libbpf_num_possible_cpus();
	struct lx_droplog_window *w = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*w));
	__u32 zero = 0;
	if (!w || bpf_map_lookup_elem(in->t.fds.droplog_rl, &zero, w))
		die("reading lx_droplog_rl: %s", strerror(errno));
	*sent = 0;
	for (int i = 0; i < ncpu; i++)
		*sent += w[i].sent;
	free(w);
	uint64_t per_slot[LX_MAX_IFACES];
	if (pins_droplog_suppressed(in->t.fds.drops, per_slot) < 0)
		die("reading lx_drops: %s", strerror(errno));
	*suppressed = 0;
	for (int s = 0; s < LX_MAX_IFACES; s++)
		*suppressed += per_slot[s];
}

/*
 * At most LX_DROPLOG_PER_SEC records per CPU and second, the rest counted as suppressed:
 * a burst of drops on one CPU gives exactly that many records, and a burst a second later as
 * many again (a window found full must not stay full once the clock has moved).
 */
static void test_droplog_rate(void)
{
	enum { BURST = 1000 };
	pin_this_cpu();
	struct prog in;
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	uint64_t records;
	struct ring_buffer *rb = droplog_reader(&in, &records);
	struct frame f = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 22, 4, 0x02, 0);
	for (int burst = 1; burst <= 3; burst++) {
		if (burst > 1) {
			struct timespec wait = { 1, 100000000 }; /* the next window */
			nanosleep(&wait, NULL);
		}
		__u32 verdict = drop_burst(&in, rb, &f, BURST);
		uint64_t sent, suppressed;
		droplog_window(&in, &sent, &suppressed);
		CHECK(verdict == XDP_DROP && records == (uint64_t)burst * LX_DROPLOG_PER_SEC &&
			  suppressed == (uint64_t)burst * (BURST - LX_DROPLOG_PER_SEC) &&
			  sent == LX_DROPLOG_PER_SEC,
		      "drop log, burst %d of %d drops on one CPU: %d records in all, %d suppressed "
		      "(got verdict %s, %llu records, %llu suppressed, window sent %llu)",
		      burst, BURST, burst * LX_DROPLOG_PER_SEC,
		      burst * (BURST - LX_DROPLOG_PER_SEC), verdict_name(verdict),
		      (unsigned long long)records, (unsigned long long)suppressed,
		      (unsigned long long)sent);
	}
	ring_buffer__free(rb);
	prog_close(&in);
	unpin();
}

static void no_rate_limit(struct lx_config *cfg)
{
	cfg->droplog_per_sec = 1000000000;
}

/* Whether some CPU's drop counter found the drop log full in some jiffy (lx_drop_count). */
static int some_counter_found_full(struct prog *in)
{
	int ncpu = libbpf_num_possible_cpus(), found = 0;
	struct lx_drop_count *c = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*c));
	for (__u32 k = 0; c && k < LX_DROP_COUNTERS; k++) {
		if (bpf_map_lookup_elem(in->t.fds.drops, &k, c))
			die("reading lx_drops: %s", strerror(errno));
		for (int i = 0; i < ncpu; i++)
			found |= c[i].full_jiffies != 0;
	}
	free(c);
	return found;
}

/*
 * Nobody reads the drop log: once the ring is full, the records it cannot take are counted
 * as suppressed, and the ring counts as a full window until the next tick (a flood does not
 * try it on every drop). Read again, it takes records at once after that tick.
 */
static void test_droplog_ring_full(void)
{
	enum { BURST = 20000, AGAIN = 50 };
	pin_this_cpu();
	struct prog in;
	const struct prog_opts o = { .policy = LX_POLICY_ENFORCE,
				     .comp = &C_base,
				     .config = no_rate_limit };
	prog_open(&in, "enforce, no rate limit", &M, &S_base, &o, NULL);
	uint64_t records;
	struct ring_buffer *rb = droplog_reader(&in, &records);
	struct frame f = pkt(IPPROTO_TCP, &PEER, 40000, &EXT, 22, 4, 0x02, 0);
	__u32 verdict = drop_burst(&in, rb, &f, BURST);
	uint64_t sent, suppressed;
	droplog_window(&in, &sent, &suppressed);
	CHECK(verdict == XDP_DROP && records > 0 && records < BURST && sent == records &&
		  records + suppressed == BURST && some_counter_found_full(&in),
	      "drop log, %d drops with nobody reading: the ring takes what it holds, the rest "
	      "are suppressed, and a counter marks the ring full (got %s, %llu records, %llu "
	      "suppressed, window sent %llu, marked %d)",
	      BURST, verdict_name(verdict), (unsigned long long)records,
	      (unsigned long long)suppressed, (unsigned long long)sent,
	      some_counter_found_full(&in));
	struct timespec tick = { 0, 50000000 }; /* several jiffies at any HZ */
	nanosleep(&tick, NULL);
	uint64_t before = records, suppressed0 = suppressed;
	verdict = drop_burst(&in, rb, &f, AGAIN);
	droplog_window(&in, &sent, &suppressed);
	CHECK(verdict == XDP_DROP && records - before == AGAIN && suppressed == suppressed0,
	      "drop log, read empty again: the next %d drops a tick later are all recorded (got "
	      "%llu records, %llu more suppressed)",
	      AGAIN, (unsigned long long)(records - before),
	      (unsigned long long)(suppressed - suppressed0));
	ring_buffer__free(rb);
	prog_close(&in);
	unpin();
}

static void load(const char *site_path, struct site *s, struct compiled *c)
{
	struct text_error err = { { 0 } };
	if (site_load(site_path, &M, s, &err) < 0 || compile_tables(&M, s, c, &err) < 0)
		die("%s", err.msg);
}

/* ---- 13. TCP closing and refresh: blind RST/FIN, the host alone keeps a flow alive ---- */

/* A TCP segment with its sequence and acknowledgment numbers and window patched in. */
static struct frame tcp_seg(const struct host *src, uint16_t sport, const struct host *dst,
			    uint16_t dport, int fam, uint8_t flags, uint32_t seq, uint32_t ack,
			    uint16_t win, size_t payload)
{
	struct frame f = pkt(IPPROTO_TCP, src, sport, dst, dport, fam, flags, payload);
	uint8_t *t = f.b + l4_off(&f);
	for (int i = 0; i < 4; i++) {
		t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
		t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
	}
	t[14] = (uint8_t)(win >> 8);
	t[15] = (uint8_t)win;
	return f;
}

/* The Edge's TCP flow to a partner's 5061 from port lport, as the program holds it. */
static int edge_flow(struct prog *in, uint16_t lport, int fam, struct lx_flow *f)
{
	struct lx_flow_key key;
	memset(&key, 0, sizeof(key));
	struct endpoint l = endpoint_at(addr_of(&EXT, fam), lport),
			r = endpoint_at(addr_of(&PARTNER, fam), 5061);
	key.family = (uint8_t)fam;
	key.proto = LX_PROTO_TCP;
	key.local_port = lport;
	key.remote_port = 5061;
	memcpy(key.local_addr, l.addr, 16);
	memcpy(key.remote_addr, r.addr, 16);
	return testrun_flow(&in->t, &key, f);
}

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
}

static double mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Timeouts of the instance of this section: short, so that they pass within the test. */
#define SHORT_TCP_MS	 800
#define SHORT_CLOSING_MS 100
#define SHORT_UDP_MS	 600
#define CLOCK_SLACK_MS	 30 /* the coarse clock's tick and scheduling around a test run */

/* The flow's closing mark is as expected (0 or 1), checked in the table. */
static void expect_closing(struct prog *in, uint16_t lport, int fam, uint32_t want,
			   const char *what)
{
	struct lx_flow f;
	int found = edge_flow(in, lport, fam, &f) == 0;
	CHECK(found && f.closing == want,
	      "%s [%s IPv%d]: flow edge:%u <-> partner:5061 %s (got %s)", in->name, what, fam,
	      lport, want ? "closing" : "not closing",
	      !found	  ? "no flow"
	      : f.closing ? "closing"
			  : "not closing");
}

/* SYN, SYN-ACK, ACK: the Edge acknowledges ack with window win. */
static void handshake(struct prog *in, uint16_t lport, int fam, uint32_t ack, uint16_t win,
		      struct expect_drops *ed)
{
	struct frame f = tcp_seg(&EXT, lport, &PARTNER, 5061, fam, 0x02, 1000, 0, 64240, 0);
	expect(in, &f, V_PASS, 0, ed, "edge:%u SYN to partner:5061 IPv%d", lport, fam);
	f = tcp_seg(&PARTNER, 5061, &EXT, lport, fam, 0x12, ack - 1, 1001, 65535, 0);
	expect(in, &f, V_PASS, 0, ed, "partner:5061 SYN-ACK to edge:%u IPv%d", lport, fam);
	f = tcp_seg(&EXT, lport, &PARTNER, 5061, fam, 0x10, 1001, ack, win, 0);
	expect(in, &f, V_PASS, 0, ed, "edge:%u ACK %u window %u IPv%d", lport, ack, win, fam);
	struct lx_flow fl;
	CHECK(edge_flow(in, lport, fam, &fl) == 0 && fl.tcp_state == LX_TCP_SYNCED &&
		  fl.rcv_nxt == ack && fl.rcv_wnd == win && !fl.closing,
	      "%s [edge:%u IPv%d]: the flow holds the Edge's ACK %u and window %u", in->name, lport,
	      fam, ack, win);
}

/* The short flow timeouts of test_tcp_closing's instance. */
static void short_timeouts(struct lx_config *cfg)
{
	cfg->tcp_timeout_ns = SHORT_TCP_MS * 1000000ULL;
	cfg->tcp_closing_ns = SHORT_CLOSING_MS * 1000000ULL;
	cfg->udp_timeout_ns = SHORT_UDP_MS * 1000000ULL;
}

static void test_tcp_closing(void)
{
	struct prog in;
	struct drops before;
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	struct lx_config cfg = loader_config(&C_base);
	CHECK(cfg.tcp_timeout_ns >= (2 * 3600 + 5 * 60) * 1000000000ULL,
	      "default idle TCP timeout %llu s is at least 2 h 5 min (Windows' TCP keepalive: 2 h)",
	      (unsigned long long)(cfg.tcp_timeout_ns / 1000000000ULL));
	const struct prog_opts o = { .policy = LX_POLICY_ENFORCE,
				     .comp = &C_base,
				     .config = short_timeouts };
	prog_open(&in, "enforce, short timeouts", &M, &S_base, &o, NULL);
	drops_read(&in, &before);

	for (int fam = 4; fam <= 6; fam += 2) {
		uint16_t p = (uint16_t)(fam == 4 ? 40500 : 40600);
		struct frame f;

		/* SYN sent: only a RST acknowledging the Edge's SYN (seq 1000) fits. */
		f = tcp_seg(&EXT, p, &PARTNER, 5061, fam, 0x02, 1000, 0, 64240, 0);
		expect(&in, &f, V_PASS, 0, &ed, "edge:%u SYN seq 1000 IPv%d", p, fam);
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x14, 0, 77777, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "blind RST-ACK acknowledging 77777, not the SYN IPv%d", fam);
		expect_closing(&in, p, fam, 0, "after the SYN, a RST-ACK of 77777");
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x04, 1001, 0, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "blind RST without ACK after the SYN IPv%d", fam);
		expect_closing(&in, p, fam, 0, "after the SYN, a RST without ACK");
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x11, 5000, 1001, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "FIN before any SYN-ACK IPv%d", fam);
		expect_closing(&in, p, fam, 0, "after the SYN, a FIN");

		/* Established: the Edge acknowledged 5001 with window 1000. */
		handshake(&in, p, fam, 5001, 1000, &ed);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 1), fam, 0x04, 5001, 0, 0, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "RST to a guessed port (edge:%u), no flow there IPv%d", p + 1, fam);
		const uint32_t blind[] = { 6001, 5000, 0x9e3779b9u, 5001 + 65535, 1 };
		for (size_t i = 0; i < sizeof(blind) / sizeof(blind[0]); i++) {
			f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x04, blind[i], 0, 0, 0);
			expect(
			    &in, &f, V_PASS, 0, &ed,
			    "blind RST seq %u outside [5001, 6001): passes to the Edge's own TCP "
			    "IPv%d",
			    blind[i], fam);
			expect_closing(&in, p, fam, 0, "a blind RST outside the window");
		}
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x11, 6001, 1001, 65535, 0);
		expect(&in, &f, V_PASS, 0, &ed, "blind FIN seq 6001 (just past the window) IPv%d",
		       fam);
		expect_closing(&in, p, fam, 0, "a blind FIN past the window");
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x19, 5991, 1001, 65535, 20);
		expect(&in, &f, V_PASS, 0, &ed,
		       "FIN after 20 bytes from 5991: the FIN (6011) is past the window IPv%d",
		       fam);
		expect_closing(&in, p, fam, 0, "a FIN whose data run past the window");
		/* Longer than the closing timeout: the flow was not shortened. */
		sleep_ms(SHORT_CLOSING_MS + 3 * CLOCK_SLACK_MS);
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x18, 5001, 1001, 65535, 100);
		expect(&in, &f, V_PASS, 0, &ed,
		       "partner's data %d ms after the blind RSTs and FINs (closing timeout %d ms) "
		       "IPv%d",
		       SHORT_CLOSING_MS + 3 * CLOCK_SLACK_MS, SHORT_CLOSING_MS, fam);
		/* In the window: the last sequence number of it. */
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x04, 6000, 0, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "RST seq 6000, inside [5001, 6001) IPv%d", fam);
		expect_closing(&in, p, fam, 1, "a RST inside the window");
		sleep_ms(SHORT_CLOSING_MS + 3 * CLOCK_SLACK_MS);
		f = tcp_seg(&PARTNER, 5061, &EXT, p, fam, 0x18, 5001, 1001, 65535, 100);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "partner's data after the in-window RST and the closing timeout IPv%d", fam);
		/* A new connection on the same ports (the Edge's SYN) is not closing. */
		f = tcp_seg(&EXT, p, &PARTNER, 5061, fam, 0x02, 3000, 0, 64240, 0);
		expect(&in, &f, V_PASS, 0, &ed, "edge:%u SYN again (a new connection) IPv%d", p,
		       fam);
		expect_closing(&in, p, fam, 0, "the Edge's new SYN on the same ports");

		/* A FIN with data that ends inside the window. */
		handshake(&in, (uint16_t)(p + 2), fam, 7001, 1000, &ed);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 2), fam, 0x19, 7501, 1001, 65535,
			    100);
		expect(&in, &f, V_PASS, 0, &ed, "FIN after 100 bytes from 7501 (FIN at 7601) IPv%d",
		       fam);
		expect_closing(&in, (uint16_t)(p + 2), fam, 1, "a FIN inside the window");
		sleep_ms(SHORT_CLOSING_MS + 3 * CLOCK_SLACK_MS);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 2), fam, 0x10, 7602, 1001, 65535,
			    0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "partner's ACK after its FIN and the closing timeout IPv%d", fam);

		/* The exact RST (RFC 5961's reset), the SYN's RST, a zero window, the wrap. */
		handshake(&in, (uint16_t)(p + 3), fam, 9001, 1000, &ed);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 3), fam, 0x14, 9001, 1001, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "RST-ACK seq 9001 = the Edge's ACK IPv%d", fam);
		expect_closing(&in, (uint16_t)(p + 3), fam, 1, "the exact RST");
		f = tcp_seg(&EXT, (uint16_t)(p + 4), &PARTNER, 5061, fam, 0x02, 123456, 0, 64240,
			    0);
		expect(&in, &f, V_PASS, 0, &ed, "edge:%u SYN seq 123456 IPv%d", p + 4, fam);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 4), fam, 0x14, 0, 123457, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "RST-ACK acknowledging the SYN (port closed) IPv%d",
		       fam);
		expect_closing(&in, (uint16_t)(p + 4), fam, 1, "the RST-ACK of the SYN");
		handshake(&in, (uint16_t)(p + 5), fam, 100, 0, &ed);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 5), fam, 0x04, 101, 0, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "RST seq 101 with the Edge's window 0 at 100 IPv%d",
		       fam);
		expect_closing(&in, (uint16_t)(p + 5), fam, 0, "window 0: a RST one past the ACK");
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 5), fam, 0x04, 100, 0, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed, "RST seq 100 with the Edge's window 0 at 100 IPv%d",
		       fam);
		expect_closing(&in, (uint16_t)(p + 5), fam, 1, "window 0: the exact RST");
		handshake(&in, (uint16_t)(p + 6), fam, 0xffffff00u, 1000, &ed);
		f = tcp_seg(&PARTNER, 5061, &EXT, (uint16_t)(p + 6), fam, 0x04, 0x10, 0, 0, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "RST seq 16, inside the window that wraps past 2^32 IPv%d", fam);
		expect_closing(&in, (uint16_t)(p + 6), fam, 1, "a RST in a window across 2^32");

		/* Refresh: the partner alone cannot keep the flow alive. It sends every quarter
		 * of the idle timeout for two of them; the Edge is silent after its ACK. */
		uint16_t q = (uint16_t)(p + 7);
		handshake(&in, q, fam, 20001, 1000, &ed);
		double host_at = mono_ms(), last_pass = -1, first_drop = -1;
		int early_dropped = 0, late_passed = 0;
		for (int i = 1; i <= 8; i++) {
			sleep_ms(SHORT_TCP_MS / 4);
			f = tcp_seg(&PARTNER, 5061, &EXT, q, fam, 0x18, 20001, 1001, 65535, 50);
			double t0 = mono_ms() - host_at;
			run(&in, &f);
			double t1 = mono_ms() - host_at;
			if (R.retval == V_PASS)
				last_pass = t1;
			else if (first_drop < 0)
				first_drop = t0;
			if (R.retval != V_PASS) {
				ed.add[1][LX_DROP_UNSOLICITED].packets++;
				ed.add[1][LX_DROP_UNSOLICITED].bytes += f.len;
			}
			early_dropped |= R.retval != V_PASS && t1 < SHORT_TCP_MS - CLOCK_SLACK_MS;
			late_passed |= R.retval == V_PASS && t0 > SHORT_TCP_MS + CLOCK_SLACK_MS;
		}
		CHECK(!early_dropped && !late_passed && first_drop > 0,
		      "%s [IPv%d]: the partner alone, sending every %d ms, does not keep the flow "
		      "alive: its data pass until the idle timeout (%d ms) after the Edge's last "
		      "packet, then drop as unsolicited (last passed at %.0f ms, first dropped at "
		      "%.0f ms)",
		      in.name, fam, SHORT_TCP_MS / 4, SHORT_TCP_MS, last_pass, first_drop);
		/* The Edge sending keeps it alive past the timeout: each partner packet that
		 * follows an Edge packet within the timeout passes. */
		q = (uint16_t)(p + 8);
		handshake(&in, q, fam, 30001, 1000, &ed);
		double start = mono_ms();
		int checked = 0, dropped = 0;
		for (int i = 1; i <= 8; i++) {
			sleep_ms(SHORT_TCP_MS / 4);
			double edge_at = mono_ms();
			f = tcp_seg(&EXT, q, &PARTNER, 5061, fam, 0x10, 1001, 30001, 1000, 0);
			run(&in, &f);
			f = tcp_seg(&PARTNER, 5061, &EXT, q, fam, 0x18, 30001, 1001, 65535, 50);
			run(&in, &f);
			if (mono_ms() - edge_at < SHORT_TCP_MS - CLOCK_SLACK_MS) {
				checked++;
				dropped += R.retval != V_PASS;
			} else if (R.retval != V_PASS) {
				ed.add[1][LX_DROP_UNSOLICITED].packets++;
				ed.add[1][LX_DROP_UNSOLICITED].bytes += f.len;
			}
		}
		double span = mono_ms() - start;
		CHECK(!dropped && checked >= 4 && span > SHORT_TCP_MS + CLOCK_SLACK_MS,
		      "%s [IPv%d]: the Edge's ACKs every %d ms keep the flow alive for %.0f ms "
		      "(idle timeout %d ms): the partner's packets right after them passed (%d of "
		      "%d dropped)",
		      in.name, fam, SHORT_TCP_MS / 4, span, SHORT_TCP_MS, dropped, checked);

		/* UDP likewise: DNS answers alone do not keep the query's flow alive. */
		f = pkt(IPPROTO_UDP, &EXT, (uint16_t)(p + 9), &DNS, 53, fam, 0, 30);
		expect(&in, &f, V_PASS, 0, &ed, "udp edge:%u -> dns:53 IPv%d", p + 9, fam);
		host_at = mono_ms();
		early_dropped = late_passed = 0;
		first_drop = -1;
		for (int i = 1; i <= 8; i++) {
			sleep_ms(SHORT_UDP_MS / 4);
			f = pkt(IPPROTO_UDP, &DNS, 53, &EXT, (uint16_t)(p + 9), fam, 0, 60);
			double t0 = mono_ms() - host_at;
			run(&in, &f);
			double t1 = mono_ms() - host_at;
			if (R.retval != V_PASS) {
				ed.add[1][LX_DROP_UNSOLICITED].packets++;
				ed.add[1][LX_DROP_UNSOLICITED].bytes += f.len;
				if (first_drop < 0)
					first_drop = t0;
			}
			early_dropped |= R.retval != V_PASS && t1 < SHORT_UDP_MS - CLOCK_SLACK_MS;
			late_passed |= R.retval == V_PASS && t0 > SHORT_UDP_MS + CLOCK_SLACK_MS;
		}
		CHECK(!early_dropped && !late_passed && first_drop > 0,
		      "%s [IPv%d]: UDP answers alone do not keep the flow alive past the %d ms "
		      "timeout (first dropped at %.0f ms)",
		      in.name, fam, SHORT_UDP_MS, first_drop);
	}
	check_drops_delta(&in, &before, &ed, "TCP closing and refresh");
	prog_close(&in);
}

/* ---- 16. a CPU's clock a tick behind a refresh another CPU made ---- */

/*
 * The program reads the coarse clock once per jiffy and CPU (clock_ns(), lx_clock). A CPU
 * that reads it just as the tick is applied (jiffies moved, the coarse time not yet) keeps
 * the previous tick's time for that whole jiffy, while the host's packets, on another CPU,
 * stamp their flow with the new one: the flow's last refresh lies a tick after the now its
 * reply is judged with. suite_nat saw it as replies of a 2 MB transfer counted unsolicited
 * (monitor +188). Here the same state is made on one CPU: the host's frame stamps the flow,
 * the CPU's cached clock is set back one tick within the same jiffy, then the reply runs.
 */

/* The instance's cached clock on one CPU (lx_clock), read or written. */
static struct lx_clock clock_rw(struct prog *in, int cpu, const struct lx_clock *set)
{
	int ncpu = libbpf_num_possible_cpus();
	struct lx_clock *v = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*v));
	int fd = bpf_map__fd(in->t.skel->maps.lx_clock);
	__u32 zero = 0;
	if (!v || cpu < 0 || cpu >= ncpu || bpf_map_lookup_elem(fd, &zero, v))
		die("reading lx_clock: %s", strerror(errno));
	if (set) {
		v[cpu] = *set;
		if (bpf_map_update_elem(fd, &zero, v, BPF_ANY))
			die("writing lx_clock: %s", strerror(errno));
	}
	struct lx_clock c = v[cpu];
	free(v);
	return c;
}

/* A case: the host's frame, then (the clock a tick behind) the frame judged. */
struct behind_case {
	const char *what;
	struct frame host, judged;
};

typedef struct behind_case (*behind_make)(int fam, int attempt);

/*
 * Runs a case built by make(fam, attempt) until the judged frame ran with the clock set
 * back (the jiffy may move between the two runs: the program then reads the kernel's clock
 * again and the case did not happen; tried again, at most 100 times). R holds its result;
 * 0 when it never happened.
 */
static int behind_a_tick(struct prog *in, int cpu, uint64_t tick, behind_make make, int fam,
			 struct behind_case *c)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		*c = make(fam, attempt);
		run(in, &c->host);
		struct lx_clock stamped = clock_rw(in, cpu, NULL);
		struct lx_clock behind = { .jiffies = stamped.jiffies, .ns = stamped.ns - tick };
		clock_rw(in, cpu, &behind);
		run(in, &c->judged);
		struct lx_clock used = clock_rw(in, cpu, NULL);
		if (used.jiffies == behind.jiffies && used.ns == behind.ns)
			return 1;
	}
	return 0;
}

static struct behind_case tcp_reply(int fam, int attempt)
{
	uint16_t p = (uint16_t)(40800 + attempt);
	return (struct behind_case){
		"the partner's SYN-ACK to the Edge's SYN",
		pkt(IPPROTO_TCP, &EXT, p, &PARTNER, 5061, fam, 0x02, 0),
		pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, p, fam, 0x12, 0),
	};
}

static struct behind_case udp_reply(int fam, int attempt)
{
	uint16_t p = (uint16_t)(33200 + attempt);
	return (struct behind_case){
		"the DNS server's answer to the Edge's query",
		pkt(IPPROTO_UDP, &EXT, p, &DNS, 53, fam, 0, 30),
		pkt(IPPROTO_UDP, &DNS, 53, &EXT, p, fam, 0, 90),
	};
}

static struct behind_case udp_other_port(int fam, int attempt)
{
	uint16_t p = (uint16_t)(33400 + attempt);
	return (struct behind_case){
		"an answer to another Edge port than the query's",
		pkt(IPPROTO_UDP, &EXT, p, &DNS, 53, fam, 0, 30),
		pkt(IPPROTO_UDP, &DNS, 53, &EXT, (uint16_t)(p + 1000), fam, 0, 90),
	};
}

static struct behind_case later_fragment(int fam, int attempt)
{
	uint32_t id = 0x3000u + (uint32_t)attempt;
	return (struct behind_case){
		"a later fragment of a datagram whose first fragment passed",
		frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 1, id),
		frag_pkt(IPPROTO_UDP, &PEER, &EXT, 3478, fam, 0, id),
	};
}

static void test_clock_behind(void)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	int cpu = sched_getcpu() > 0 ? sched_getcpu() : 0;
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		die("sched_setaffinity: %s", strerror(errno));
	struct timespec res;
	clock_getres(CLOCK_MONOTONIC_COARSE, &res);
	uint64_t tick = (uint64_t)res.tv_sec * 1000000000ULL + (uint64_t)res.tv_nsec;
	struct prog in;
	inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
	const struct {
		behind_make make;
		uint32_t verdict, reason;
	} cases[] = {
		{ tcp_reply, V_PASS, 0 },
		{ udp_reply, V_PASS, 0 },
		{ later_fragment, V_PASS, 0 },
		{ udp_other_port, V_DROP, LX_DROP_UNSOLICITED },
	};
	for (int fam = 4; fam <= 6; fam += 2) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct behind_case c;
			int happened = behind_a_tick(&in, cpu, tick, cases[i].make, fam, &c);
			int ok = happened && R.retval == cases[i].verdict &&
				 R.last.reason == cases[i].reason;
			CHECK(ok,
			      "%s [%s, judged a tick (%llu ns) before its stamp IPv%d]: %s, reason "
			      "%s%s%s%s%s%s",
			      in.name, c.what, (unsigned long long)tick, fam,
			      verdict_name(cases[i].verdict), stats_reason_name(cases[i].reason),
			      !happened ? " -- the jiffy moved in each of 100 tries" : "",
			      ok || !happened ? "" : " -- got ",
			      ok || !happened ? "" : verdict_name(R.retval),
			      ok || !happened ? "" : ", reason ",
			      ok || !happened ? "" : stats_reason_name(R.last.reason));
		}
		/* The host's own packet with the clock behind refreshes its flow: a closing
		 * flow stays closing (reopened, it would take the idle timeout of 2 h). */
		uint16_t p = (uint16_t)(fam == 4 ? 40950 : 40960);
		struct frame f = pkt(IPPROTO_TCP, &EXT, p, &PARTNER, 5061, fam, 0x02, 0);
		run(&in, &f);
		f = pkt(IPPROTO_TCP, &EXT, p, &PARTNER, 5061, fam, 0x11, 0);
		run(&in, &f);
		expect_closing(&in, p, fam, 1, "the Edge's FIN");
		int happened = 0;
		for (int attempt = 0; attempt < 100 && !happened; attempt++) {
			struct lx_clock stamped = clock_rw(&in, cpu, NULL);
			struct lx_clock behind = { .jiffies = stamped.jiffies,
						   .ns = stamped.ns - tick };
			clock_rw(&in, cpu, &behind);
			f = pkt(IPPROTO_TCP, &EXT, p, &PARTNER, 5061, fam, 0x10, 0);
			run(&in, &f);
			struct lx_clock used = clock_rw(&in, cpu, NULL);
			happened = used.jiffies == behind.jiffies && used.ns == behind.ns;
			if (!happened) { /* stamp the flow in this jiffy, then again */
				f = pkt(IPPROTO_TCP, &EXT, p, &PARTNER, 5061, fam, 0x10, 0);
				run(&in, &f);
			}
		}
		CHECK(happened,
		      "%s [the Edge's ACK after its FIN, a tick before the FIN's stamp "
		      "IPv%d]: judged with the clock set back",
		      in.name, fam);
		expect_closing(&in, p, fam, 1, "the Edge's ACK a tick before its FIN's stamp");
	}
	prog_close(&in);
	unpin();
}

/* ---- 17. the flow table's sets ---- */

/* The key of the Edge's flow edge:lport -> partner:5061 over TCP, check 0. */
static struct lx_flow_key edge_key(uint16_t lport, int fam)
{
	struct lx_flow_key key;
	memset(&key, 0, sizeof(key));
	key.family = (uint8_t)fam;
	key.proto = LX_PROTO_TCP;
	key.local_port = lport;
	key.remote_port = 5061;
	memcpy(key.local_addr, endpoint_at(addr_of(&EXT, fam), lport).addr, 16);
	memcpy(key.remote_addr, endpoint_at(addr_of(&PARTNER, fam), 5061).addr, 16);
	return key;
}

static uint32_t edge_set(struct prog *in, uint16_t lport, int fam)
{
	struct lx_flow_key key = edge_key(lport, fam);
	return (uint32_t)lx_flow_hash(&key, in->t.flow_seed) &
	       (in->t.flow_slots / LX_FLOW_WAYS - 1);
}

/* n local ports of the Edge (from 20000) whose flows to partner:5061 share one set. */
static void same_set_ports(struct prog *in, int fam, uint16_t *ports, int n)
{
	static uint8_t count[65536];
	static uint16_t seen[65536][LX_FLOW_WAYS + 2];
	memset(count, 0, sizeof(count));
	for (uint32_t p = 20000; p < 65536; p++) {
		uint32_t set = edge_set(in, (uint16_t)p, fam) & 0xffff;
		if (count[set] < LX_FLOW_WAYS + 2)
			seen[set][count[set]++] = (uint16_t)p;
		if (count[set] == n) {
			memcpy(ports, seen[set], (size_t)n * sizeof(*ports));
			return;
		}
	}
	die("no %d ports of one set among 20000-65535", n);
}

static uint64_t flows_evicted(struct prog *in)
{
	struct lx_flow_stats sum;
	if (pins_flow_stats(in->t.fds.flow_stats, &sum) < 0)
		die("reading lx_flow_stats");
	return sum.evicted;
}

/* The Edge's SYN from lport, and whether the partner's SYN-ACK to it then passes. */
static void edge_syn(struct prog *in, uint16_t lport, int fam, struct expect_drops *ed)
{
	struct frame f = pkt(IPPROTO_TCP, &EXT, lport, &PARTNER, 5061, fam, 0x02, 0);
	expect(in, &f, V_PASS, 0, ed, "edge:%u SYN to partner:5061 IPv%d", lport, fam);
}

/*
 * lx_flows is set-associative: a flow lives in one of the LX_FLOW_WAYS slots of the set its
 * keyed hash picks. A full set evicts its least recently refreshed flow (counted), a timed-out
 * slot is taken without an eviction, and a slot whose key is a mix of two flows (two CPUs
 * writing it at once) matches neither those flows nor the mix.
 */
static void test_flow_sets(void)
{
	struct expect_drops ed;
	memset(&ed, 0, sizeof(ed));
	const long tick_ms = 20; /* more than a jiffy: the coarse clock moves between steps */
	for (int fam = 4; fam <= 6; fam += 2) {
		struct prog in;
		inst_open(&in, "enforce", &S_base, &C_base, LX_POLICY_ENFORCE, 0);
		uint16_t port[LX_FLOW_WAYS + 1];
		same_set_ports(&in, fam, port, LX_FLOW_WAYS + 1);
		/* Four flows fill the set; the first is refreshed last, so the second is the
		 * least recently refreshed. */
		for (int i = 0; i < LX_FLOW_WAYS; i++) {
			edge_syn(&in, port[i], fam, &ed);
			sleep_ms(tick_ms);
		}
		struct frame f = pkt(IPPROTO_TCP, &EXT, port[0], &PARTNER, 5061, fam, 0x10, 0);
		expect(&in, &f, V_PASS, 0, &ed, "edge:%u ACK refreshes its flow IPv%d", port[0],
		       fam);
		sleep_ms(tick_ms);
		uint64_t e0 = flows_evicted(&in), n0 = flows_present(&in);
		CHECK(e0 == 0 && n0 == LX_FLOW_WAYS,
		      "%s [IPv%d]: %d flows of ports %u %u %u %u fill one set (set %u of %u): %d "
		      "present, none evicted (got %llu, %llu)",
		      in.name, fam, LX_FLOW_WAYS, port[0], port[1], port[2], port[3],
		      edge_set(&in, port[0], fam), in.t.flow_slots / LX_FLOW_WAYS, LX_FLOW_WAYS,
		      (unsigned long long)n0, (unsigned long long)e0);
		edge_syn(&in, port[4], fam, &ed);
		struct lx_flow fl;
		CHECK(
		    flows_evicted(&in) == 1 && edge_flow(&in, port[1], fam, &fl) < 0 &&
			edge_flow(&in, port[0], fam, &fl) == 0 &&
			edge_flow(&in, port[2], fam, &fl) == 0 &&
			edge_flow(&in, port[3], fam, &fl) == 0 &&
			edge_flow(&in, port[4], fam, &fl) == 0,
		    "%s [IPv%d]: a fifth flow (edge:%u) in the full set evicts the least recently "
		    "refreshed one (edge:%u), counted once; the other three stay",
		    in.name, fam, port[4], port[1]);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, port[1], fam, 0x12, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "partner's SYN-ACK to the evicted flow edge:%u IPv%d", port[1], fam);
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, port[0], fam, 0x12, 0);
		expect(&in, &f, V_PASS, 0, &ed,
		       "partner's SYN-ACK to the refreshed flow edge:%u IPv%d", port[0], fam);

		/* A slot holding a mix of two keys: one flow's key with another's check. A reply
		 * with that key computes its own check, so the mix matches nothing. */
		struct lx_flow_key mixed = edge_key(port[0], fam);
		struct lx_flow_key other = edge_key(port[2], fam);
		other.check = lx_flow_check(lx_flow_hash(&other, in.t.flow_seed));
		mixed.check = other.check;
		__u32 slot = edge_set(&in, port[0], fam) * LX_FLOW_WAYS, i;
		struct lx_flow_slot s;
		for (i = 0; i < LX_FLOW_WAYS; i++) {
			__u32 at = slot + i;
			if (bpf_map_lookup_elem(in.t.fds.flows, &at, &s))
				die("reading lx_flows");
			struct lx_flow_key k = s.key, want = edge_key(port[0], fam);
			k.check = 0;
			if (!memcmp(&k, &want, sizeof(k)))
				break;
		}
		if (i == LX_FLOW_WAYS)
			die("the flow of edge:%u is not in its set", port[0]);
		s.key = mixed;
		__u32 at = slot + i;
		if (bpf_map_update_elem(in.t.fds.flows, &at, &s, BPF_ANY))
			die("writing lx_flows");
		f = pkt(IPPROTO_TCP, &PARTNER, 5061, &EXT, port[0], fam, 0x10, 0);
		expect(&in, &f, V_DROP, LX_DROP_UNSOLICITED, &ed,
		       "a torn slot (edge:%u's key, edge:%u's check) matches no reply IPv%d",
		       port[0], port[2], fam);
		prog_close(&in);
	}

	/* Timed out: its slot is taken by a new flow of the set without an eviction. */
	for (int fam = 4; fam <= 6; fam += 2) {
		struct prog in;
		const struct prog_opts o = { .policy = LX_POLICY_ENFORCE,
					     .comp = &C_base,
					     .config = short_timeouts };
		prog_open(&in, "enforce, short timeouts", &M, &S_base, &o, NULL);
		uint16_t port[LX_FLOW_WAYS + 1];
		same_set_ports(&in, fam, port, LX_FLOW_WAYS + 1);
		for (int i = 0; i < LX_FLOW_WAYS; i++)
			edge_syn(&in, port[i], fam, &ed);
		sleep_ms(SHORT_TCP_MS + CLOCK_SLACK_MS * 2);
		edge_syn(&in, port[4], fam, &ed);
		struct lx_flow fl;
		CHECK(flows_evicted(&in) == 0 && edge_flow(&in, port[4], fam, &fl) == 0 &&
			  flows_present(&in) == LX_FLOW_WAYS,
		      "%s [IPv%d]: with the set's four flows timed out, a fifth takes one of their "
		      "slots: no eviction counted, %d slots in use",
		      in.name, fam, LX_FLOW_WAYS);
		prog_close(&in);
	}
}

int main(void)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	support_name("test_policy");
	struct text_error err = { { 0 } };
	if (matrix_load(MATRIX_PATH, &M, &err) < 0)
		die("%s (run from the repository top)", err.msg);
	load(SITE_BASE, &S_base, &C_base);
	load(SITE_ICMP, &S_icmp, &C_icmp);
	load(SITE_DSCP, &S_dscp, &C_dscp);

	uint64_t seed;
	const char *env = getenv("LYNCXDP_SEED");
	if (env && *env) {
		char *end;
		seed = strtoull(env, &end, 0);
		if (*end)
			die("LYNCXDP_SEED='%s' is not a number", env);
	} else {
		seed = (uint64_t)time(NULL) ^ ((uint64_t)t0.tv_nsec << 20);
	}
	printf("seed: %llu (LYNCXDP_SEED=%llu replays the random part)\n", (unsigned long long)seed,
	       (unsigned long long)seed);

	puts("== 1. every Edge listening rule passes");
	test_edge_listen();
	puts("== 2. forbidden ports and wrong transports");
	test_forbidden();
	puts("== 3. flows opened by protected hosts");
	test_flows();
	puts("== 4. ICMP and other transports");
	test_icmp();
	puts("== 4b. ICMP errors related to connections; router advertisements and redirects");
	test_icmp_related();
	puts("== 5. fragments");
	test_fragments();
	puts("== 6. malformed, ARP, the unprotected Front End");
	test_malformed_arp_frontend();
	puts("== 7. monitor versus enforce, testrun_set");
	test_monitor_vs_enforce();

	struct prog tag;
	inst_open(&tag, "monitor tag 1", &S_base, &C_base, LX_POLICY_MONITOR, 1);
	puts("== 8. DSCP tag mode");
	test_tag(&tag);
	puts("== 9. randomised IPv4 checksums");
	test_random(&tag, seed);
	prog_close(&tag);
	free(exp_remarked);
	puts("== 10. spoofed protected sources, replies from listen ports");
	test_spoofed();
	puts("== 11. a million attack packets from outside");
	test_flood();
	puts("== 12. QoS conformance");
	test_conformance();
	puts("== 13. TCP closing and refresh");
	test_tcp_closing();
	puts("== 14. the drop log's rate limit");
	test_droplog_rate();
	test_droplog_ring_full();
	puts("== 15. an Edge behind the gateway's 1:1 NAT; NTP, WSUS, DNS (allow-outbound)");
	test_nat();
	puts("== 16. a CPU's clock a tick behind a refresh on another CPU");
	test_clock_behind();
	puts("== 17. the flow table's sets: eviction, timed-out slots, torn slots");
	test_flow_sets();

	compile_free(&C_base);
	compile_free(&C_icmp);
	compile_free(&C_dscp);
	site_free(&S_base);
	site_free(&S_icmp);
	site_free(&S_dscp);
	matrix_free(&M);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("runtime %.2f s\n",
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return check_done();
}

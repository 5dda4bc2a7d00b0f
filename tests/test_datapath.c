// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Data-path tests: the real XDP program, in private instances run with BPF_PROG_TEST_RUN
 * (user/testrun.h): nothing is attached, nothing is pinned. Needs root.
 *
 * 1. Every rule of every maps/ matrix, of tests/data/base.matrix and of a generated
 *    41-role matrix (tested in batches of 31 roles): a site gives each role its own IPv4
 *    and IPv6 host; for each rule the test picks a port where that rule wins for its
 *    role's addresses (worked out here from the matrix, not by compile_tables, per table:
 *    listen and outbound-from rules by the role's own port, outbound-to rules by the
 *    peer's) and sends one packet toward the role and one from it, on both families:
 *    listen and outbound-from on the role's port, outbound-to from and to the peer's port
 *    (the reply comes from it). Then the boundaries of every range in both tables, random
 *    packets between role addresses against the documented order of sides, and the
 *    counters against everything sent. A rule that can never win is a failure.
 * 2. Framing with tests/data/base.matrix and base.site: VLANs, truncated and inconsistent
 *    headers, IPv4 options, IPv6 extension headers, fragments, non-TCP/UDP traffic.
 * 3. Outbound rules against expectations written by hand, on tests/data/outbound.matrix
 *    (test_parsers reads it too), then the tests of 1. on that matrix.
 * Instances, frames and checksums come from tests/support.c. Every instance runs in monitor mode
 * with nothing protected and no tagging: every frame passes unchanged, with no drop reason.
 *
 * Set LYNCXDP_TEST_SEED to repeat a run; the seed in use is printed first.
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "support.h"
#include "compile.h"
#include "matrix.h"
#include "packet.h"
#include "site.h"
#include "stats.h"
#include "testrun.h"

#define BASE_MATRIX  "tests/data/base.matrix"
#define BASE_SITE    "tests/data/base.site"
#define NOROLE4	     "198.18.0.1"
#define NOROLE6	     "2001:db8:ffff::1"
#define BATCH_ROLES  31 /* role sets one compiled site holds */
#define FRAME_MAX    9000
#define PAIR_PACKETS 3000 /* random packets between role addresses, per batch */

static char tmpdir[64];
static uint64_t rng_state;

static uint32_t rnd(void)
{
	/* xorshift64*: reproducible from the printed seed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static uint32_t rnd_between(uint32_t lo, uint32_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

/* ---- one private program instance and what it should have counted ---- */

struct dp {
	const char *label;
	const struct matrix *m;
	struct prog p; /* tests/support.c */
	int open;
	struct lx_count *want; /* [(rule) * 2 + dir] */
	struct lx_count want_special[LX_CNT_MAX];
	long failures; /* decisions that did not match, for summaries */
	long sent;
};

static int dp_open(struct dp *d, const char *label, const struct matrix *m, const struct site *s)
{
	struct text_error err = { { 0 } };
	memset(d, 0, sizeof(*d));
	d->label = label;
	d->m = m;
	struct compiled c;
	if (!CHECK(compile_tables(m, s, &c, &err) == 0, "%s: compile_tables%s", label, why(&err)))
		return -1;
	const struct prog_opts o = { .comp = &c };
	int rc = prog_open(&d->p, label, m, s, &o, &err);
	compile_free(&c);
	if (!CHECK(rc == 0, "%s: testrun_open (load the XDP program)%s", label, why(&err)))
		return -1;
	d->open = 1;
	d->want = calloc((size_t)(m->nrules + 1) * LX_DIR_MAX, sizeof(*d->want));
	return 0;
}

static void dp_close(struct dp *d)
{
	if (d->open)
		prog_close(&d->p);
	free(d->want);
	d->want = NULL;
	d->open = 0;
}

/* Runs one frame; returns 0, or -1 after a FAIL line. */
static int dp_run(struct dp *d, const uint8_t *frame, size_t len, struct testrun_result *res,
		  const char *name)
{
	struct text_error err = { { 0 } };
	int rc = testrun_frame(&d->p.t, frame, len, res, &err);
	if (rc != 0) {
		CHECK(0, "%s %s: testrun_frame returned %d%s", d->label, name, rc, why(&err));
		return -1;
	}
	d->sent++;
	/*
	 * What the counters must hold: every frame under the decision the program reported.
	 * Whether that decision was right is checked frame by frame; the counters are then
	 * checked against these sums, so one wrong decision is one FAIL, not two.
	 */
	struct lx_count *c =
	    res->last.rule && res->last.rule <= (uint32_t)d->m->nrules && res->last.dir < LX_DIR_MAX
		? &d->want[res->last.rule * LX_DIR_MAX + res->last.dir]
	    : res->last.counter < LX_CNT_MAX ? &d->want_special[res->last.counter]
					     : NULL;
	if (c) {
		c->packets++;
		c->bytes += len;
	}
	return 0;
}

static const char *dir_name(uint32_t dir)
{
	return dir == LX_DIR_IN ? "in" : dir == LX_DIR_OUT ? "out" : "?";
}

static void describe(const struct testrun_result *res, char *buf, size_t len)
{
	if (res->last.rule)
		snprintf(buf, len, "rule %u %s, verdict %u, reason %s", res->last.rule,
			 dir_name(res->last.dir), res->retval, stats_reason_name(res->last.reason));
	else
		snprintf(buf, len, "no rule, counter %s, verdict %u, reason %s",
			 stats_counter_name((int)res->last.counter), res->retval,
			 stats_reason_name(res->last.reason));
}

/* The frame must leave the program as it came: the classifier only counts. */
static int unchanged(const struct testrun_result *res, const uint8_t *frame, size_t len)
{
	return res->out_len == len && !memcmp(res->out, frame, len);
}

/* quiet: print only a failure (for the many boundary probes). */
static int expect_rule_q(struct dp *d, const char *name, const uint8_t *frame, size_t len,
			 uint32_t rule, uint32_t dir, int quiet)
{
	struct testrun_result res;
	if (dp_run(d, frame, len, &res, name) < 0) {
		d->failures++;
		return 0;
	}
	int ok = res.last.rule == rule && (rule == 0 || res.last.dir == dir) &&
		 (rule != 0 || res.last.counter == LX_CNT_UNCLASSIFIED) && res.retval == XDP_PASS &&
		 res.last.verdict == XDP_PASS && res.last.reason == LX_DROP_NONE &&
		 unchanged(&res, frame, len);
	if (!ok) {
		char got[96];
		describe(&res, got, sizeof(got));
		d->failures++;
		if (rule)
			CHECK(0,
			      "%s %s: expected rule %u %s, XDP_PASS, no drop reason, frame "
			      "unchanged; got %s",
			      d->label, name, rule, dir_name(dir), got);
		else
			CHECK(
			    0,
			    "%s %s: expected no rule (unclassified), XDP_PASS, no drop reason; got "
			    "%s",
			    d->label, name, got);
	} else if (!quiet) {
		CHECK(1, "%s %s", d->label, name);
	}
	return ok;
}

static int expect_rule(struct dp *d, const char *name, const uint8_t *frame, size_t len,
		       uint32_t rule, uint32_t dir)
{
	return expect_rule_q(d, name, frame, len, rule, dir, 0);
}

static int expect_counter(struct dp *d, const char *name, const uint8_t *frame, size_t len,
			  uint32_t counter)
{
	struct testrun_result res;
	if (dp_run(d, frame, len, &res, name) < 0)
		return 0;
	int ok = res.last.rule == 0 && res.last.counter == counter && res.retval == XDP_PASS &&
		 res.last.reason == LX_DROP_NONE && unchanged(&res, frame, len);
	if (ok) {
		CHECK(1, "%s %s -> %s, XDP_PASS", d->label, name, stats_counter_name((int)counter));
	} else {
		char got[96];
		describe(&res, got, sizeof(got));
		CHECK(0, "%s %s: expected counter %s, XDP_PASS; got %s", d->label, name,
		      stats_counter_name((int)counter), got);
	}
	return ok;
}

/* testrun_report against everything expect_* recorded: every row and counter, exactly. */
static void check_counters(struct dp *d, const uint64_t active_roles)
{
	struct stats_report r;
	struct text_error err = { { 0 } };
	if (!CHECK(testrun_report(&d->p.t, &r, &err) == 0, "%s: testrun_report%s", d->label,
		   why(&err)))
		return;
	int nactive = 0;
	for (int i = 0; i < d->m->nrules; i++)
		nactive += !!(active_roles & (1ULL << d->m->rules[i].role));
	CHECK(r.nrows == nactive * LX_DIR_MAX,
	      "%s counters: one row per active rule and direction (%d rows for %d active rules)",
	      d->label, r.nrows, nactive);

	int bad = 0, rows = 0;
	uint64_t packets = 0;
	for (int i = 0; i < r.nrows; i++) {
		const struct stats_row *row = &r.rows[i];
		const struct lx_count *want = &d->want[row->rule * LX_DIR_MAX + row->dir];
		rows++;
		/* The row describes its rule as the matrix does. */
		if (row->rule >= 1 && row->rule <= (uint32_t)d->m->nrules) {
			const struct matrix_rule *mr = &d->m->rules[row->rule - 1];
			const struct matrix_service *svc = &d->m->services[mr->service];
			int dscp = svc->dscp < 0 ? LX_DSCP_KEEP : svc->dscp;
			if ((strcmp(row->info.role, d->m->roles[mr->role].slug) ||
			     strcmp(row->info.service, svc->slug) ||
			     strcmp(row->info.name, svc->name) ||
			     row->info.port_lo != mr->port_lo || row->info.port_hi != mr->port_hi ||
			     row->info.proto != mr->proto || row->info.dscp != dscp ||
			     row->info.kind != mr->kind || !row->info.active) &&
			    bad++ < 10)
				CHECK(0,
				      "%s counters: rule %u's description (%s %s %s %u-%u) is not "
				      "the matrix's",
				      d->label, row->rule, matrix_kind_name(row->info.kind),
				      row->info.role, row->info.service, row->info.port_lo,
				      row->info.port_hi);
		} else if (bad++ < 10) {
			CHECK(0, "%s counters: a row for rule %u, not in the matrix", d->label,
			      row->rule);
		}
		packets += row->count.packets;
		if (row->count.packets != want->packets || row->count.bytes != want->bytes) {
			if (bad++ < 10)
				CHECK(0,
				      "%s counters: rule %u %s: %llu packets %llu bytes, sent %llu "
				      "packets %llu bytes",
				      d->label, row->rule, dir_name(row->dir),
				      (unsigned long long)row->count.packets,
				      (unsigned long long)row->count.bytes,
				      (unsigned long long)want->packets,
				      (unsigned long long)want->bytes);
		}
	}
	/* Whatever was expected on an inactive rule has no row: a mismatch too. */
	for (int rule = 1; rule <= d->m->nrules; rule++)
		if (!(active_roles & (1ULL << d->m->rules[rule - 1].role)))
			for (int dir = 0; dir < LX_DIR_MAX; dir++)
				if (d->want[rule * LX_DIR_MAX + dir].packets && bad++ < 10)
					CHECK(0,
					      "%s counters: inactive rule %d was expected to count",
					      d->label, rule);
	for (int c = 0; c < LX_CNT_MAX; c++)
		if (r.special[c].packets != d->want_special[c].packets ||
		    r.special[c].bytes != d->want_special[c].bytes) {
			bad++;
			CHECK(0,
			      "%s counters: %s: %llu packets %llu bytes, sent %llu packets %llu "
			      "bytes",
			      d->label, stats_counter_name(c),
			      (unsigned long long)r.special[c].packets,
			      (unsigned long long)r.special[c].bytes,
			      (unsigned long long)d->want_special[c].packets,
			      (unsigned long long)d->want_special[c].bytes);
		}
	if (!bad)
		CHECK(1,
		      "%s counters: %d rule rows and %d special counters equal what was sent "
		      "(%llu packets in rule rows, %llu in all)",
		      d->label, rows, LX_CNT_MAX, (unsigned long long)packets,
		      (unsigned long long)r.total.packets);
	CHECK(r.total.packets == (uint64_t)d->sent,
	      "%s counters: total %llu packets = %ld frames run", d->label,
	      (unsigned long long)r.total.packets, d->sent);
	uint64_t dropped = 0, would = 0;
	for (int reason = 0; reason < LX_DROP_MAX; reason++) {
		dropped += r.drops[reason].packets;
		would += r.would_drop[reason].packets;
	}
	CHECK(dropped == 0 && would == 0,
	      "%s counters: monitor mode, nothing protected: no drop, no would-drop (%llu, %llu)",
	      d->label, (unsigned long long)dropped, (unsigned long long)would);
	stats_free(&r);
}

/* ---- frames ---- */

static void spec_set(struct packet_spec *s, uint8_t ipproto, const char *src, const char *dst)
{
	memset(s, 0, sizeof(*s));
	s->ipproto = ipproto;
	s->src = endpoint_of(src);
	s->dst = endpoint_of(dst);
}

static size_t build(const struct packet_spec *s, uint8_t *buf)
{
	return frame_build(s, buf, FRAME_MAX);
}

/* A frame from "ADDR:PORT" to "ADDR:PORT" ([v6]:port for IPv6). */
static size_t frame(uint8_t *buf, uint8_t ipproto, const char *src, const char *dst)
{
	struct packet_spec s;
	spec_set(&s, ipproto, src, dst);
	return build(&s, buf);
}

/* Inserts a VLAN tag as the outermost one. */
static size_t push_vlan(uint8_t *buf, size_t len, uint16_t tpid, uint16_t vid)
{
	memmove(buf + 16, buf + 12, len - 12);
	put16(buf + 12, tpid);
	put16(buf + 14, vid);
	return len + 4;
}

struct ext {
	uint8_t type;	   /* IPPROTO_HOPOPTS, _ROUTING, _DSTOPTS, _FRAGMENT */
	uint8_t units;	   /* length in 8-octet units beyond the first (not for a fragment) */
	uint16_t frag_off; /* fragment offset in 8-octet units */
	int more;	   /* fragment M flag */
};

/* Inserts IPv6 extension headers between the IPv6 header (at l3) and the upper layer. */
static size_t add_ipv6_ext(uint8_t *buf, size_t len, size_t l3, const struct ext *e, int n)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += e[i].type == IPPROTO_FRAGMENT ? 8 : (size_t)(e[i].units + 1) * 8;
	uint8_t *ip6 = buf + l3;
	uint8_t upper = ip6[6];
	memmove(ip6 + 40 + total, ip6 + 40, len - l3 - 40);
	uint8_t *next = &ip6[6];
	uint8_t *h = ip6 + 40;
	for (int i = 0; i < n; i++) {
		size_t hl = e[i].type == IPPROTO_FRAGMENT ? 8 : (size_t)(e[i].units + 1) * 8;
		memset(h, 0, hl);
		*next = e[i].type;
		if (e[i].type == IPPROTO_FRAGMENT) {
			put16(h + 2, (uint16_t)(e[i].frag_off << 3 | (e[i].more ? 1 : 0)));
			h[7] = 0x99;
		} else {
			h[1] = e[i].units;
			if (e[i].type == IPPROTO_ROUTING) {
				h[2] = 0; /* routing type 0, segments left 0: nothing to do */
				h[3] = 0;
			} else {
				h[2] = 1; /* PadN over the rest */
				h[3] = (uint8_t)(hl - 4);
			}
		}
		next = &h[0];
		h += hl;
	}
	*next = upper;
	put16(ip6 + 4, (uint16_t)(get16(ip6 + 4) + total));
	return len + total;
}

/* ---- the expected winner, worked out from the matrix alone ---- */

/* Role set of an address holding `roles`: add every role that includes a member, until
 * nothing changes (no reliance on declaration order). */
static uint64_t closure_of(const struct matrix *m, uint64_t roles)
{
	for (int changed = 1; changed;) {
		changed = 0;
		for (int i = 0; i < m->nroles; i++)
			if ((m->roles[i].includes & roles) && !(roles & (1ULL << i))) {
				roles |= 1ULL << i;
				changed = 1;
			}
	}
	return roles;
}

/*
 * Two tables, each with its own precedence: the role's own port (listen and outbound-from
 * rules) and the peer's port (outbound-to rules).
 */
enum { TBL_OWN = 0, TBL_PEER = 1, TBL_MAX = 2 };

static int table_of(const struct matrix_rule *r)
{
	return r->kind == LX_KIND_OUTBOUND_TO ? TBL_PEER : TBL_OWN;
}

static const char *table_name(int table)
{
	return table == TBL_PEER ? "outbound-to, by the peer's port"
				 : "listen and outbound-from, by the role's own port";
}

/* The documented order of rules (maps/README.md, "Precedence"): 1 when rule a (1-based) goes
 * before rule b: a rule of a role that is not `client` first, then the smaller range, then the
 * earlier line. */
static const struct matrix *order_m;
static int goes_before(uint32_t a, uint32_t b)
{
	const struct matrix_rule *x = &order_m->rules[a - 1], *y = &order_m->rules[b - 1];
	int cx = order_m->roles[x->role].client, cy = order_m->roles[y->role].client;
	if (cx != cy)
		return cy;
	uint32_t wx = (uint32_t)x->port_hi - x->port_lo, wy = (uint32_t)y->port_hi - y->port_lo;
	if (wx != wy)
		return wx < wy;
	return x->line < y->line;
}

static int is_client_rule(uint32_t rule)
{
	return rule && order_m->roles[order_m->rules[rule - 1].role].client;
}

/* winners[port] for one role set, transport and table, in the documented order. */
static void winners_for(const struct matrix *m, uint64_t set, int proto, int table, uint16_t *win)
{
	order_m = m;
	memset(win, 0, sizeof(uint16_t) * LX_PORTS);
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		if (r->proto != proto || table_of(r) != table || !(set & (1ULL << r->role)))
			continue;
		for (uint32_t p = r->port_lo; p <= r->port_hi; p++)
			if (!win[p] || goes_before((uint32_t)i + 1, win[p]))
				win[p] = (uint16_t)(i + 1);
	}
}

/* win[role][table][proto][port]: the winner for an address holding that role. */
typedef uint16_t *winners_t[TBL_MAX][LX_PROTO_MAX];

struct want {
	uint32_t rule, dir;
};

/*
 * The documented decision between the two ends. The destination's rule: on its own port
 * (dport), else its outbound-to rule toward the source's port (sport): in. The source's: on
 * its own port (sport), else its outbound-to rule toward the destination's port: out. A
 * client rule counts only when both ends hold a role (every address here is a unicast host).
 * Of the two, the one that goes first wins; the destination's when it is the same rule. A
 * role of -1 is an address without a role.
 */
static struct want expected(winners_t *win, int src_role, int dst_role, int proto, uint16_t sport,
			    uint16_t dport)
{
	uint32_t in = 0, out = 0;
	if (dst_role >= 0 && !(in = win[dst_role][TBL_OWN][proto][dport]))
		in = win[dst_role][TBL_PEER][proto][sport];
	if (src_role >= 0 && !(out = win[src_role][TBL_OWN][proto][sport]))
		out = win[src_role][TBL_PEER][proto][dport];
	if (src_role < 0 || dst_role < 0) {
		if (is_client_rule(in))
			in = 0;
		if (is_client_rule(out))
			out = 0;
	}
	if (out && (!in || goes_before(out, in)))
		return (struct want){ out, LX_DIR_OUT };
	return (struct want){ in, LX_DIR_IN };
}

static void addr_of_role(int role, int family, char *buf, size_t len)
{
	if (role < 0)
		snprintf(buf, len, "%s", family == 4 ? NOROLE4 : NOROLE6);
	else if (family == 4)
		snprintf(buf, len, "192.0.2.%d", role + 1);
	else
		snprintf(buf, len, "2001:db8::%x", role + 1);
}

static void ep_text(int family, const char *addr, unsigned port, char *buf, size_t len)
{
	if (family == 4)
		snprintf(buf, len, "%s:%u", addr, port);
	else
		snprintf(buf, len, "[%s]:%u", addr, port);
}

/* A packet from one role's address to another's (-1: the address without a role). */
static size_t pair_frame(uint8_t *buf, int family, int proto, int src_role, unsigned sport,
			 int dst_role, unsigned dport)
{
	char a[64], src[80], dst[80];
	addr_of_role(src_role, family, a, sizeof(a));
	ep_text(family, a, sport, src, sizeof(src));
	addr_of_role(dst_role, family, a, sizeof(a));
	ep_text(family, a, dport, dst, sizeof(dst));
	struct packet_spec s;
	spec_set(&s, proto == LX_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP, src, dst);
	s.payload_len = rnd_between(0, 200);
	s.tcp_flags = rnd() % 2 ? 0x12 : 0x02;
	return build(&s, buf);
}

/* A packet toward the role (in) or from it (out), the other end holding no role. */
static size_t role_frame(uint8_t *buf, int family, int proto, int role, unsigned own_port,
			 unsigned peer_port, int out)
{
	return out ? pair_frame(buf, family, proto, role, own_port, -1, peer_port)
		   : pair_frame(buf, family, proto, -1, peer_port, role, own_port);
}

/*
 * The peer for a probe of a rule: the address without a role, unless the rule is a client
 * rule, which needs a peer holding a role: then the first role of the batch (another than
 * the rule's) that lets the rule win there.
 */
static int probe_peer(winners_t *win, int first, int last, int role, int proto, unsigned own_port,
		      unsigned peer_port, int out, uint32_t rule)
{
	if (!is_client_rule(rule))
		return -1;
	for (int peer = first; peer < last; peer++) {
		if (peer == role)
			continue;
		struct want w =
		    out ? expected(win, role, peer, proto, (uint16_t)own_port, (uint16_t)peer_port)
			: expected(win, peer, role, proto, (uint16_t)peer_port, (uint16_t)own_port);
		if (w.rule == rule && w.dir == (out ? LX_DIR_OUT : LX_DIR_IN))
			return peer;
	}
	return -1;
}

static size_t probe_frame(uint8_t *buf, int family, int proto, int role, unsigned own_port,
			  int peer, unsigned peer_port, int out)
{
	return out ? pair_frame(buf, family, proto, role, own_port, peer, peer_port)
		   : pair_frame(buf, family, proto, peer, peer_port, role, own_port);
}

/* A port of the role's own on which none of its rules sits (0 when every port has one). */
static unsigned free_own_port(const uint16_t *own)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t p = rnd_between(1024, 65535);
		if (!own[p])
			return p;
	}
	uint32_t start = rnd_between(1, 65535);
	for (uint32_t k = 0; k < 65535; k++) {
		uint32_t p = 1 + (start - 1 + k) % 65535;
		if (!own[p])
			return p;
	}
	return 0;
}

/* A port of the role's own on which one of its rules wins (0 when it has none). */
static unsigned taken_own_port(const uint16_t *own)
{
	uint32_t start = rnd_between(1, 65535);
	for (uint32_t k = 0; k < 65535; k++) {
		uint32_t p = 1 + (start - 1 + k) % 65535;
		if (own[p])
			return p;
	}
	return 0;
}

static void rule_label(const struct matrix *m, int idx, char *buf, size_t len)
{
	const struct matrix_rule *r = &m->rules[idx];
	const char *how = r->kind == LX_KIND_OUTBOUND_TO     ? " to"
			  : r->kind == LX_KIND_OUTBOUND_FROM ? " from"
							     : "";
	if (r->port_lo == r->port_hi)
		snprintf(buf, len, "rule %d %s %s %s%s %u", idx + 1, m->roles[r->role].slug,
			 m->services[r->service].slug, matrix_proto_name(r->proto), how,
			 r->port_lo);
	else
		snprintf(buf, len, "rule %d %s %s %s%s %u-%u", idx + 1, m->roles[r->role].slug,
			 m->services[r->service].slug, matrix_proto_name(r->proto), how, r->port_lo,
			 r->port_hi);
}

/* Rules (bit i: rule i + 1) the matrix under test means to be fully shadowed. */
static uint64_t expect_shadowed;

/*
 * One packet per rule and direction where the rule must win, per its kind. listen and
 * outbound-from: in = toward the role's address and a port of the range, out = from them.
 * outbound-to: out = from the role's address to a peer's port in the range, in = the reply,
 * from that port to the role's address; the role's own port is one none of its rules has.
 */
static void test_rules_of_batch(struct dp *d, const char *product, const struct matrix *m,
				int first, int last, winners_t *win)
{
	static uint8_t buf[FRAME_MAX];
	static uint32_t candidates[LX_PORTS];
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		if (r->role < first || r->role >= last)
			continue;
		int table = table_of(r);
		const uint16_t *w = win[r->role][table][r->proto];
		const uint16_t *own = win[r->role][TBL_OWN][r->proto];
		int n = 0;
		for (uint32_t p = r->port_lo; p <= r->port_hi; p++)
			if (w[p] == i + 1)
				candidates[n++] = p;
		char rl[160];
		rule_label(m, i, rl, sizeof(rl));
		int shadowed = i < 64 && (expect_shadowed >> i & 1);
		if (shadowed) {
			CHECK(n == 0,
			      "%s %s (line %d): fully shadowed in its table (%s), as the matrix "
			      "intends (it wins at %d ports)",
			      product, rl, r->line, table_name(table), n);
			continue;
		}
		if (n == 0) {
			char by[256] = "";
			int bk = 0;
			for (uint32_t p = r->port_lo; p <= r->port_hi && bk < 200; p++)
				if (w[p] && (p == r->port_lo || w[p] != w[p - 1]))
					bk += snprintf(by + bk, sizeof(by) - (size_t)bk,
						       " %u (line %d)", w[p],
						       m->rules[w[p] - 1].line);
			CHECK(0,
			      "%s %s (line %d): never wins on its role's addresses, fully "
			      "shadowed in its table (%s) by rule(s)%s",
			      product, rl, r->line, table_name(table), by);
			continue;
		}
		uint32_t port = candidates[rnd() % (uint32_t)n];
		for (int family = 4; family <= 6; family += 2)
			for (int out = 0; out <= 1; out++) {
				char name[256];
				unsigned own_port = table == TBL_OWN ? port : free_own_port(own);
				unsigned peer_port =
				    table == TBL_OWN ? rnd_between(1, 65535) : port;
				if (table == TBL_OWN && r->port_lo == r->port_hi)
					snprintf(name, sizeof(name), "%s ipv%d %s", rl, family,
						 out ? "out" : "in");
				else if (table == TBL_OWN)
					snprintf(name, sizeof(name), "%s (port %u) ipv%d %s", rl,
						 port, family, out ? "out" : "in");
				else
					snprintf(name, sizeof(name),
						 "%s ipv%d %s (peer's port %u, the role's %u)", rl,
						 family,
						 out ? "out: role -> peer" : "in: peer -> role",
						 peer_port, own_port);
				int peer = probe_peer(win, first, last, r->role, r->proto, own_port,
						      peer_port, out, (uint32_t)i + 1);
				size_t len = probe_frame(buf, family, r->proto, r->role, own_port,
							 peer, peer_port, out);
				expect_rule(d, name, buf, len, (uint32_t)i + 1,
					    out ? LX_DIR_OUT : LX_DIR_IN);
			}
		/* outbound-to: on the same side, a rule on the role's own port decides first. */
		unsigned taken = table == TBL_PEER ? taken_own_port(own) : 0;
		if (taken)
			for (int family = 4; family <= 6; family += 2)
				for (int out = 0; out <= 1; out++) {
					char name[320];
					snprintf(name, sizeof(name),
						 "%s ipv%d %s from/to peer port %u, the role's own "
						 "port %u on rule %u: the own port decides first",
						 rl, family, out ? "out" : "in", port, taken,
						 own[taken]);
					int peer = probe_peer(win, first, last, r->role, r->proto,
							      taken, port, out, own[taken]);
					size_t len = probe_frame(buf, family, r->proto, r->role,
								 taken, peer, port, out);
					expect_rule(d, name, buf, len, own[taken],
						    out ? LX_DIR_OUT : LX_DIR_IN);
				}
	}
}

/* Every range boundary, both sides of it, in both tables, on every role's address. */
static void test_boundaries_of_batch(struct dp *d, const char *product, const struct matrix *m,
				     int first, int last, winners_t *win)
{
	static uint8_t buf[FRAME_MAX];
	long before = d->failures, probes = 0;
	for (int role = first; role < last; role++)
		for (int table = 0; table < TBL_MAX; table++)
			for (int proto = 0; proto < LX_PROTO_MAX; proto++) {
				uint64_t set = closure_of(m, 1ULL << role);
				for (int i = -1; i < m->nrules; i++) {
					uint32_t edges[4];
					int ne = 0;
					if (i < 0) {
						edges[ne++] = 1;
						edges[ne++] = 65535;
					} else {
						const struct matrix_rule *r = &m->rules[i];
						if (r->proto != proto || table_of(r) != table ||
						    !(set & (1ULL << r->role)))
							continue;
						if (r->port_lo > 1)
							edges[ne++] = r->port_lo - 1u;
						edges[ne++] = r->port_lo;
						edges[ne++] = r->port_hi;
						if (r->port_hi < 65535)
							edges[ne++] = r->port_hi + 1u;
					}
					for (int e = 0; e < ne; e++)
						for (int family = 4; family <= 6; family += 2)
							for (int out = 0; out <= 1; out++) {
								/* The edge is the role's own port
								 * or the peer's, per table. */
								unsigned edge = edges[e];
								unsigned other =
								    rnd_between(1, 65535);
								unsigned own =
								    table == TBL_OWN ? edge : other;
								unsigned peer =
								    table == TBL_OWN ? other : edge;
								char name[200];
								snprintf(
								    name, sizeof(name),
								    "boundary %s %s %s %u ipv%d %s "
								    "(the role's port %u, the "
								    "peer's %u)",
								    m->roles[role].slug,
								    table == TBL_OWN ? "own"
										     : "peer",
								    matrix_proto_name(proto), edge,
								    family, out ? "out" : "in", own,
								    peer);
								size_t len = role_frame(
								    buf, family, proto, role, own,
								    peer, out);
								struct want w =
								    out ? expected(win, role, -1,
										   proto, own, peer)
									: expected(win, -1, role,
										   proto, peer,
										   own);
								expect_rule_q(d, name, buf, len,
									      w.rule, w.dir, 1);
								probes++;
							}
				}
			}
	CHECK(d->failures == before,
	      "%s: %ld probes at every range boundary of both tables (each side, both families, "
	      "in and out) agree with the matrix",
	      product, probes);
}

/*
 * Random packets between the batch's role addresses and an address without a role, on ports
 * at and around every rule's range: the program must follow the documented order of sides.
 */
static void test_pairs_of_batch(struct dp *d, const char *product, const struct matrix *m,
				int first, int last, winners_t *win)
{
	static uint8_t buf[FRAME_MAX];
	static uint32_t ports[LX_PROTO_MAX][4 * 4096 + 8];
	int nports[LX_PROTO_MAX] = { 0, 0 };
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		uint32_t *p = ports[r->proto];
		int *n = &nports[r->proto];
		if (*n > 4 * 4096)
			continue;
		p[(*n)++] = r->port_lo;
		p[(*n)++] = r->port_hi;
		p[(*n)++] = r->port_lo > 1 ? r->port_lo - 1u : 65535;
		p[(*n)++] = r->port_hi < 65535 ? r->port_hi + 1u : 1;
	}
	long before = d->failures, sent = 0, matched[2] = { 0, 0 };
	int nroles = last - first;
	for (int k = 0; k < PAIR_PACKETS; k++) {
		int proto = (int)(rnd() % LX_PROTO_MAX);
		if (!nports[proto])
			proto = !proto;
		int src = rnd() % 5 ? first + (int)(rnd() % (uint32_t)nroles) : -1;
		int dst = rnd() % 5 ? first + (int)(rnd() % (uint32_t)nroles) : -1;
		unsigned sport = rnd() % 4 ? ports[proto][rnd() % (uint32_t)nports[proto]]
					   : rnd_between(1, 65535);
		unsigned dport = rnd() % 4 ? ports[proto][rnd() % (uint32_t)nports[proto]]
					   : rnd_between(1, 65535);
		/* Half the packets aim at a rule of the batch: its role at one end, on a port of
		 * its range, the role's own or the peer's per its kind; the other end random. */
		const struct matrix_rule *r = &m->rules[rnd() % (uint32_t)m->nrules];
		if (k % 2 && r->role >= first && r->role < last) {
			unsigned in_range = rnd_between(r->port_lo, r->port_hi);
			int role_is_src = rnd() % 2;
			int on_role_side = table_of(r) == TBL_OWN;
			proto = r->proto;
			if (role_is_src)
				src = r->role;
			else
				dst = r->role;
			if (role_is_src == on_role_side)
				sport = in_range;
			else
				dport = in_range;
		}
		int family = rnd() % 2 ? 4 : 6;
		struct want w = expected(win, src, dst, proto, (uint16_t)sport, (uint16_t)dport);
		char name[200];
		snprintf(name, sizeof(name), "pair %s %s:%u -> %s:%u ipv%d",
			 matrix_proto_name(proto), src < 0 ? "(no role)" : m->roles[src].slug,
			 sport, dst < 0 ? "(no role)" : m->roles[dst].slug, dport, family);
		size_t len = pair_frame(buf, family, proto, src, sport, dst, dport);
		expect_rule_q(d, name, buf, len, w.rule, w.dir, 1);
		sent++;
		if (w.rule)
			matched[w.dir]++;
	}
	CHECK(d->failures == before,
	      "%s: %ld random packets between role addresses (%ld expected in, %ld out, the rest "
	      "unclassified) follow the order of sides",
	      product, sent, matched[LX_DIR_IN], matched[LX_DIR_OUT]);
}

/* Every rule of roles [first, last) of one matrix, with one compiled site for them. */
static void test_role_batch(const char *product, const struct matrix *m, int first, int last,
			    winners_t *win)
{
	char sitetext[64 * 80], label[128];
	int k = 0;
	uint64_t present = 0;
	for (int role = first; role < last; role++) {
		char a4[32], a6[64];
		addr_of_role(role, 4, a4, sizeof(a4));
		addr_of_role(role, 6, a6, sizeof(a6));
		k += snprintf(sitetext + k, sizeof(sitetext) - (size_t)k, "%s %s %s\n",
			      m->roles[role].slug, a4, a6);
		present |= closure_of(m, 1ULL << role);
	}
	char sitepath[PATH_MAX];
	snprintf(sitepath, sizeof(sitepath), "%s/%s-%d.site", tmpdir, product, first);
	FILE *f = fopen(sitepath, "w");
	if (!f || fputs(sitetext, f) < 0 || fclose(f) != 0) {
		CHECK(0, "%s: write %s", product, sitepath);
		return;
	}
	if (first == 0 && last == m->nroles)
		snprintf(label, sizeof(label), "%s", product);
	else
		snprintf(label, sizeof(label), "%s (roles %d-%d)", product, first + 1, last);

	struct site s;
	struct text_error err = { { 0 } };
	if (!CHECK(site_load(sitepath, m, &s, &err) == 0, "%s: site with one host per role%s",
		   label, why(&err)))
		return;
	struct dp d;
	if (dp_open(&d, label, m, &s) < 0) {
		dp_close(&d);
		site_free(&s);
		return;
	}
	d.label = product;
	test_rules_of_batch(&d, product, m, first, last, win);
	test_boundaries_of_batch(&d, product, m, first, last, win);
	test_pairs_of_batch(&d, product, m, first, last, win);
	check_counters(&d, present);
	dp_close(&d);
	site_free(&s);
}

static void test_matrix_rules(const char *path)
{
	struct matrix m;
	struct text_error err = { { 0 } };
	if (!CHECK(matrix_load(path, &m, &err) == 0, "%s loads%s", path, why(&err)))
		return;
	char product[LX_SLUG_LEN];
	snprintf(product, sizeof(product), "%s", m.product);

	winners_t *win = calloc((size_t)m.nroles, sizeof(*win));
	for (int role = 0; role < m.nroles; role++)
		for (int table = 0; table < TBL_MAX; table++)
			for (int proto = 0; proto < LX_PROTO_MAX; proto++) {
				win[role][table][proto] = malloc(sizeof(uint16_t) * LX_PORTS);
				winners_for(&m, closure_of(&m, 1ULL << role), proto, table,
					    win[role][table][proto]);
			}
	for (int first = 0; first < m.nroles; first += BATCH_ROLES) {
		int last = first + BATCH_ROLES < m.nroles ? first + BATCH_ROLES : m.nroles;
		test_role_batch(product, &m, first, last, win);
	}
	for (int role = 0; role < m.nroles; role++)
		for (int table = 0; table < TBL_MAX; table++)
			for (int proto = 0; proto < LX_PROTO_MAX; proto++)
				free(win[role][table][proto]);
	free(win);
	matrix_free(&m);
}

/*
 * More roles than one compiled site holds role sets (31): the rules are tested in batches of
 * roles, each its own site and program instance. `pool` includes roles of both batches.
 */
static void test_many_roles(void)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/many.matrix", tmpdir);
	FILE *f = fopen(path, "w");
	if (!CHECK(f != NULL, "write %s", path))
		return;
	fprintf(f, "product many \"41 roles\"\nservice s - \"S\"\nservice t 46 \"T\"\n");
	for (int i = 0; i < 40; i++)
		fprintf(f, "role r%d \"R%d\"\n", i, i);
	fprintf(f, "role pool \"Pool\" includes=r0,r38\n");
	for (int i = 0; i < 40; i++)
		fprintf(f,
			"rule r%d s tcp %d local:t\nrule r%d t udp %d-%d local:t\n"
			"outbound r%d s tcp to 3000-3100 local:t\n"
			"outbound r%d t udp from %d local:t\n",
			i, 2000 + i, i, 10000 + i, 10000 + 20 * i, i, i, 30000 + i);
	fprintf(f, "rule pool t tcp 2000-2100 local:t\nrule pool s udp 10010 local:t\n"
		   "outbound pool t tcp to 3050 local:t\n");
	if (!CHECK(fclose(f) == 0, "write %s", path))
		return;
	test_matrix_rules(path);
}

/* ---- framing, with tests/data/base.matrix and base.site ---- */

/*
 * base.matrix rule ids used below: 1 frontend sip-tls tcp 5061, 2 frontend web-https tcp 443,
 * 4 all-servers media tcp 49152-57500, 5 the same on udp, 6 edge-external stun udp 3478,
 * 8 mediation sip-tcp tcp 5068, 9 everything wide-a tcp 5000-5099, 10 mediation wide-b
 * tcp 5050-5149. base.site: frontend 192.0.2.10 2001:db8::10, edge-external 203.0.113.0/24
 * 2001:db8:e::/48, mediation 198.51.100.0/28 2001:db8:d::/48, frontend 198.51.100.5.
 */
#define FE4_SIP "192.0.2.10:5061"
#define FE6_SIP "[2001:db8::10]:5061"
#define PEER4	NOROLE4 ":40000"
#define PEER6	"[" NOROLE6 "]:40000"

static void test_vlans(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct packet_spec s;
	const char *fam[2][2] = { { PEER4, FE4_SIP }, { PEER6, FE6_SIP } };

	for (int f = 0; f < 2; f++) {
		const char *v = f ? "ipv6" : "ipv4";
		char name[128];
		size_t len = frame(buf, IPPROTO_TCP, fam[f][0], fam[f][1]);
		snprintf(name, sizeof(name), "untagged %s tcp to frontend 5061", v);
		expect_rule(d, name, buf, len, 1, LX_DIR_IN);

		spec_set(&s, IPPROTO_TCP, fam[f][0], fam[f][1]);
		s.nvlans = 1;
		s.vlan_id[0] = 10;
		len = build(&s, buf);
		snprintf(name, sizeof(name), "802.1Q tag %s tcp to frontend 5061", v);
		expect_rule(d, name, buf, len, 1, LX_DIR_IN);

		s.nvlans = 2;
		s.vlan_tpid[0] = 0x88a8;
		s.vlan_id[0] = 100;
		s.vlan_id[1] = 4094;
		len = build(&s, buf);
		snprintf(name, sizeof(name), "802.1ad + 802.1Q tags %s tcp to frontend 5061", v);
		expect_rule(d, name, buf, len, 1, LX_DIR_IN);

		spec_set(&s, IPPROTO_TCP, fam[f][1], fam[f][0]);
		s.nvlans = 2;
		s.vlan_tpid[0] = 0x88a8;
		s.vlan_tpid[1] = 0x88a8;
		len = build(&s, buf);
		snprintf(name, sizeof(name), "802.1ad + 802.1ad tags %s tcp from frontend 5061", v);
		expect_rule(d, name, buf, len, 1, LX_DIR_OUT);

		s.vlan_tpid[0] = 0x8100;
		s.vlan_tpid[1] = 0x8100;
		len = build(&s, buf);
		snprintf(name, sizeof(name), "802.1Q + 802.1Q tags %s tcp from frontend 5061", v);
		expect_rule(d, name, buf, len, 1, LX_DIR_OUT);

		/* A third tag: not parsed, counted with non-IP frames. */
		spec_set(&s, IPPROTO_TCP, fam[f][0], fam[f][1]);
		s.nvlans = 2;
		s.vlan_tpid[0] = 0x8100;
		len = push_vlan(buf, build(&s, buf), 0x88a8, 7);
		snprintf(name, sizeof(name), "three VLAN tags %s", v);
		expect_counter(d, name, buf, len, LX_CNT_NON_IP);
		s.vlan_tpid[0] = 0x88a8;
		len = push_vlan(buf, build(&s, buf), 0x8100, 7);
		snprintf(name, sizeof(name), "three VLAN tags (802.1Q outermost) %s", v);
		expect_counter(d, name, buf, len, LX_CNT_NON_IP);
	}

	/* A VLAN tag cut short by the end of the frame. */
	size_t len = frame(buf, IPPROTO_UDP, PEER4, "203.0.113.9:3478");
	len = push_vlan(buf, len, 0x8100, 5);
	expect_counter(d, "802.1Q frame of 14 bytes (tag cut off)", buf, 14, LX_CNT_MALFORMED);
	expect_counter(d, "802.1Q frame of 16 bytes (tag cut in half)", buf, 16, LX_CNT_MALFORMED);
	expect_counter(d, "802.1Q frame of 18 bytes (tag, no IP header)", buf, 18,
		       LX_CNT_MALFORMED);
	expect_rule(d, "802.1Q udp to edge-external prefix 3478", buf, len, 6, LX_DIR_IN);
}

static void test_truncated(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct testrun_result res;
	struct text_error err = { { 0 } };
	size_t len;

	/* Shorter than Ethernet: the kernel refuses it, testrun says so and counts it. */
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	uint64_t short_before = d->p.t.too_short;
	int rc = testrun_frame(&d->p.t, buf, 13, &res, &err);
	CHECK(rc == 1 && d->p.t.too_short == short_before + 1,
	      "%s 13-byte frame: refused before the kernel, counted in too_short (rc %d)", d->label,
	      rc);

	expect_counter(d, "14-byte frame, ethertype IPv4 (no IP header)", buf, 14,
		       LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_TCP, PEER6, FE6_SIP);
	expect_counter(d, "14-byte frame, ethertype IPv6 (no IP header)", buf, 14,
		       LX_CNT_MALFORMED);

	/* Cut inside the IPv4 / IPv6 header. */
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	expect_counter(d, "ipv4 cut inside the IP header (33 bytes)", buf, 14 + 19,
		       LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_TCP, PEER6, FE6_SIP);
	expect_counter(d, "ipv6 cut inside the IP header (53 bytes)", buf, 14 + 39,
		       LX_CNT_MALFORMED);

	/* Cut inside TCP/UDP, the IP length shortened to match (only the L4 check catches it). */
	struct {
		int family, proto;
		const char *src, *dst;
		size_t keep; /* bytes of L4 header kept */
	} cuts[] = {
		{ 4, IPPROTO_TCP, PEER4, FE4_SIP, 19 },
		{ 4, IPPROTO_TCP, PEER4, FE4_SIP, 4 },
		{ 4, IPPROTO_UDP, PEER4, "203.0.113.9:3478", 7 },
		{ 6, IPPROTO_TCP, PEER6, FE6_SIP, 19 },
		{ 6, IPPROTO_TCP, PEER6, FE6_SIP, 0 },
		{ 6, IPPROTO_UDP, PEER6, "[2001:db8:e::9]:3478", 7 },
	};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char name[128];
		len = frame(buf, (uint8_t)cuts[i].proto, cuts[i].src, cuts[i].dst);
		size_t l3 = cuts[i].family == 4 ? 20 : 40;
		size_t cut = 14 + l3 + cuts[i].keep;
		if (cuts[i].family == 4) {
			put16(buf + 14 + 2, (uint16_t)(l3 + cuts[i].keep));
			ipv4_checksum_fix(buf + 14);
		} else {
			put16(buf + 14 + 4, (uint16_t)cuts[i].keep);
		}
		snprintf(name, sizeof(name), "ipv%d %s header cut to %zu bytes, IP length agrees",
			 cuts[i].family, cuts[i].proto == IPPROTO_TCP ? "tcp" : "udp",
			 cuts[i].keep);
		expect_counter(d, name, buf, cut, LX_CNT_MALFORMED);
		len = frame(buf, (uint8_t)cuts[i].proto, cuts[i].src, cuts[i].dst);
		snprintf(name, sizeof(name), "ipv%d %s header cut to %zu bytes, IP length as sent",
			 cuts[i].family, cuts[i].proto == IPPROTO_TCP ? "tcp" : "udp",
			 cuts[i].keep);
		expect_counter(d, name, buf, cut, LX_CNT_MALFORMED);
	}

	/* IPv4 header fields that cannot be right. */
	for (int ihl = 0; ihl < 5; ihl++) {
		char name[64];
		len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
		buf[14] = (uint8_t)(0x40 | ihl);
		snprintf(name, sizeof(name), "ipv4 IHL %d", ihl);
		expect_counter(d, name, buf, len, LX_CNT_MALFORMED);
	}
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	put16(buf + 16, (uint16_t)(len - 14 + 1));
	ipv4_checksum_fix(buf + 14);
	expect_counter(d, "ipv4 total length one byte longer than the frame", buf, len,
		       LX_CNT_MALFORMED);
	put16(buf + 16, 19);
	ipv4_checksum_fix(buf + 14);
	expect_counter(d, "ipv4 total length 19, shorter than its header", buf, len,
		       LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	buf[14] = 0x4f; /* IHL 15: 60-byte header, but the frame has 20 + 20 */
	put16(buf + 16, 60);
	expect_counter(d, "ipv4 IHL 15 and total length 60 beyond the frame", buf, 14 + 40,
		       LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	buf[14] = 0x65;
	expect_counter(d, "ethertype IPv4, version nibble 6", buf, len, LX_CNT_MALFORMED);
	buf[14] = 0x05;
	expect_counter(d, "ethertype IPv4, version nibble 0", buf, len, LX_CNT_MALFORMED);

	len = frame(buf, IPPROTO_TCP, PEER6, FE6_SIP);
	buf[14] = (uint8_t)(0x40 | (buf[14] & 0x0f));
	expect_counter(d, "ethertype IPv6, version nibble 4", buf, len, LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_TCP, PEER6, FE6_SIP);
	put16(buf + 18, (uint16_t)(len - 54 + 1));
	expect_counter(d, "ipv6 payload length one byte longer than the frame", buf, len,
		       LX_CNT_MALFORMED);
	put16(buf + 18, 0xffff);
	expect_counter(d, "ipv6 payload length 65535", buf, len, LX_CNT_MALFORMED);

	/* TCP data offset below the header size. */
	for (int doff = 0; doff < 5; doff += 4) {
		char name[64];
		len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
		buf[14 + 20 + 12] = (uint8_t)(doff << 4);
		snprintf(name, sizeof(name), "ipv4 tcp data offset %d", doff);
		expect_counter(d, name, buf, len, LX_CNT_MALFORMED);
		len = frame(buf, IPPROTO_TCP, PEER6, FE6_SIP);
		buf[14 + 40 + 12] = (uint8_t)(doff << 4);
		snprintf(name, sizeof(name), "ipv6 tcp data offset %d", doff);
		expect_counter(d, name, buf, len, LX_CNT_MALFORMED);
	}
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	buf[14 + 20 + 12] = 5 << 4;
	expect_rule(d, "ipv4 tcp data offset 5 classifies", buf, len, 1, LX_DIR_IN);

	/* IPv6 extension header cut by the end of the frame (payload length agrees). */
	struct packet_spec s;
	spec_set(&s, IPPROTO_TCP, PEER6, FE6_SIP);
	s.ipv6_ext = 1;
	len = build(&s, buf);
	put16(buf + 18, 4);
	expect_counter(d, "ipv6 destination options header cut to 4 bytes", buf, 14 + 40 + 4,
		       LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_UDP, PEER6, "[2001:db8:e::9]:3478");
	struct ext hbh_long = { IPPROTO_HOPOPTS, 3, 0, 0 };
	len = add_ipv6_ext(buf, len, 14, &hbh_long, 1);
	put16(buf + 18, 8 + 8);
	expect_counter(d, "ipv6 32-byte hop-by-hop header, frame ends after 16 of them", buf,
		       14 + 40 + 16, LX_CNT_MALFORMED);
	len = frame(buf, IPPROTO_UDP, PEER6, "[2001:db8:e::9]:3478");
	struct ext frag = { IPPROTO_FRAGMENT, 0, 0, 1 };
	len = add_ipv6_ext(buf, len, 14, &frag, 1);
	put16(buf + 18, 6);
	expect_counter(d, "ipv6 fragment header cut to 6 bytes", buf, 14 + 40 + 6,
		       LX_CNT_MALFORMED);
}

static void test_ipv4_options(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct packet_spec s;
	for (int ihl = 6; ihl <= 15; ihl++) {
		char name[96];
		spec_set(&s, ihl % 2 ? IPPROTO_UDP : IPPROTO_TCP,
			 ihl % 2 ? "203.0.113.200:3478" : FE4_SIP, PEER4);
		s.ipv4_options = (uint8_t)((ihl - 5) * 4);
		size_t len = build(&s, buf);
		snprintf(name, sizeof(name), "ipv4 IHL %d (%d bytes of options) %s out", ihl,
			 (ihl - 5) * 4, ihl % 2 ? "udp from edge 3478" : "tcp from frontend 5061");
		expect_rule(d, name, buf, len, ihl % 2 ? 6 : 1, LX_DIR_OUT);
	}
	spec_set(&s, IPPROTO_TCP, PEER4, FE4_SIP);
	s.ipv4_options = 40;
	s.payload_len = 100;
	size_t len = build(&s, buf);
	expect_rule(d, "ipv4 IHL 15 tcp to frontend 5061, with payload", buf, len, 1, LX_DIR_IN);
}

static void test_ipv6_ext(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct packet_spec s;
	char name[160];
	size_t len;

	/* Hop-by-hop, destination options, routing: each alone and chained, TCP and UDP. */
	struct {
		const char *what;
		struct ext e[6];
		int n;
	} chains[] = {
		{ "hop-by-hop", { { IPPROTO_HOPOPTS, 0, 0, 0 } }, 1 },
		{ "destination options", { { IPPROTO_DSTOPTS, 0, 0, 0 } }, 1 },
		{ "routing", { { IPPROTO_ROUTING, 0, 0, 0 } }, 1 },
		{ "24-byte routing", { { IPPROTO_ROUTING, 2, 0, 0 } }, 1 },
		{ "hop-by-hop, destination options, routing, destination options",
		  { { IPPROTO_HOPOPTS, 0, 0, 0 },
		    { IPPROTO_DSTOPTS, 1, 0, 0 },
		    { IPPROTO_ROUTING, 0, 0, 0 },
		    { IPPROTO_DSTOPTS, 0, 0, 0 } },
		  4 },
		{ "hop-by-hop, fragment (offset 0, more)",
		  { { IPPROTO_HOPOPTS, 0, 0, 0 }, { IPPROTO_FRAGMENT, 0, 0, 1 } },
		  2 },
		{ "hop-by-hop, routing, fragment (offset 0), destination options",
		  { { IPPROTO_HOPOPTS, 0, 0, 0 },
		    { IPPROTO_ROUTING, 0, 0, 0 },
		    { IPPROTO_FRAGMENT, 0, 0, 1 },
		    { IPPROTO_DSTOPTS, 0, 0, 0 } },
		  4 },
	};
	for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		len = frame(buf, IPPROTO_TCP, PEER6, FE6_SIP);
		len = add_ipv6_ext(buf, len, 14, chains[i].e, chains[i].n);
		snprintf(name, sizeof(name), "ipv6 %s, tcp to frontend 5061", chains[i].what);
		expect_rule(d, name, buf, len, 1, LX_DIR_IN);
		len = frame(buf, IPPROTO_UDP, "[2001:db8:e::9]:3478", PEER6);
		len = add_ipv6_ext(buf, len, 14, chains[i].e, chains[i].n);
		snprintf(name, sizeof(name), "ipv6 %s, udp from edge-external 3478",
			 chains[i].what);
		expect_rule(d, name, buf, len, 6, LX_DIR_OUT);
	}

	/* Chains of n destination-options headers (packet_build): the parser takes up to 6. */
	for (int n = 1; n <= 8; n++) {
		spec_set(&s, IPPROTO_TCP, PEER6, FE6_SIP);
		s.ipv6_ext = (uint8_t)n;
		len = build(&s, buf);
		snprintf(name, sizeof(name), "ipv6 %d extension headers before tcp", n);
		if (n <= 6)
			expect_rule(d, name, buf, len, 1, LX_DIR_IN);
		else
			expect_counter(d, name, buf, len, LX_CNT_MALFORMED);
	}
	/* Six headers, the last a fragment header: still within the chain length. */
	spec_set(&s, IPPROTO_UDP, PEER6, "[2001:db8:e::9]:3478");
	s.ipv6_ext = 5;
	s.ipv6_fragment = 1;
	s.more_fragments = 1;
	len = build(&s, buf);
	expect_rule(d, "ipv6 5 destination options + first fragment header before udp", buf, len, 6,
		    LX_DIR_IN);
}

static void test_fragments(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct packet_spec s;
	size_t len;

	spec_set(&s, IPPROTO_UDP, PEER4, "203.0.113.9:3478");
	s.more_fragments = 1;
	s.payload_len = 64;
	len = build(&s, buf);
	expect_rule(d, "ipv4 first fragment (MF, offset 0) udp to edge 3478 classifies", buf, len,
		    6, LX_DIR_IN);
	s.frag_offset = 9;
	len = build(&s, buf);
	expect_counter(d, "ipv4 middle fragment (MF, offset 72)", buf, len, LX_CNT_FRAGMENT);
	s.more_fragments = 0;
	s.frag_offset = 8191;
	len = build(&s, buf);
	expect_counter(d, "ipv4 last fragment (offset 65528)", buf, len, LX_CNT_FRAGMENT);
	s.frag_offset = 1;
	len = build(&s, buf);
	expect_counter(d, "ipv4 last fragment (offset 8)", buf, len, LX_CNT_FRAGMENT);
	s.frag_offset = 0;
	len = build(&s, buf);
	put16(buf + 14 + 6, 0x4000); /* DF only */
	ipv4_checksum_fix(buf + 14);
	expect_rule(d, "ipv4 DF set, not a fragment, classifies", buf, len, 6, LX_DIR_IN);
	spec_set(&s, IPPROTO_TCP, FE4_SIP, PEER4);
	s.frag_offset = 100;
	s.more_fragments = 1;
	len = build(&s, buf);
	expect_counter(d, "ipv4 non-first fragment from frontend 5061", buf, len, LX_CNT_FRAGMENT);

	spec_set(&s, IPPROTO_UDP, PEER6, "[2001:db8:e::9]:3478");
	s.ipv6_fragment = 1;
	s.more_fragments = 1;
	len = build(&s, buf);
	expect_rule(d, "ipv6 fragment header offset 0 (M) udp to edge 3478 classifies", buf, len, 6,
		    LX_DIR_IN);
	s.more_fragments = 0;
	len = build(&s, buf);
	expect_rule(d, "ipv6 atomic fragment (offset 0, no M) classifies", buf, len, 6, LX_DIR_IN);
	s.frag_offset = 1;
	s.more_fragments = 1;
	len = build(&s, buf);
	expect_counter(d, "ipv6 fragment offset 8", buf, len, LX_CNT_FRAGMENT);
	s.frag_offset = 8191;
	s.more_fragments = 0;
	len = build(&s, buf);
	expect_counter(d, "ipv6 fragment offset 65528", buf, len, LX_CNT_FRAGMENT);
	spec_set(&s, IPPROTO_TCP, FE6_SIP, PEER6);
	s.ipv6_ext = 2;
	s.ipv6_fragment = 1;
	s.frag_offset = 185;
	len = build(&s, buf);
	expect_counter(d, "ipv6 2 destination options then fragment offset 1480", buf, len,
		       LX_CNT_FRAGMENT);
}

static void test_other_traffic(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct packet_spec s;
	size_t len;

	len = frame(buf, IPPROTO_ICMP, "198.18.0.1:0", "192.0.2.10:0");
	expect_counter(d, "ipv4 icmp echo to frontend", buf, len, LX_CNT_ICMP);
	len = frame(buf, IPPROTO_ICMPV6, "[" NOROLE6 "]:0", "[2001:db8::10]:0");
	expect_counter(d, "ipv6 icmpv6 echo to frontend", buf, len, LX_CNT_ICMP);
	spec_set(&s, IPPROTO_ICMPV6, "[" NOROLE6 "]:0", "[2001:db8::10]:0");
	s.ipv6_ext = 1;
	len = build(&s, buf);
	expect_counter(d, "ipv6 destination options then icmpv6", buf, len, LX_CNT_ICMP);
	len = frame(buf, IPPROTO_ICMP, "[" NOROLE6 "]:0", "[2001:db8::10]:0");
	expect_counter(d, "ipv6 next header 1 (ICMP of IPv4) is another protocol, not icmp", buf,
		       len, LX_CNT_OTHER_L4);
	len = frame(buf, 47, "198.18.0.1:0", "192.0.2.10:0");
	expect_counter(d, "ipv4 GRE (47)", buf, len, LX_CNT_OTHER_L4);
	len = frame(buf, 47, "[" NOROLE6 "]:0", "[2001:db8::10]:0");
	expect_counter(d, "ipv6 GRE (47)", buf, len, LX_CNT_OTHER_L4);
	len = frame(buf, 132, "198.18.0.1:5061", "192.0.2.10:5061");
	expect_counter(d, "ipv4 SCTP (132) on port 5061", buf, len, LX_CNT_OTHER_L4);
	len = frame(buf, 50, "[" NOROLE6 "]:0", "[2001:db8::10]:0");
	expect_counter(d, "ipv6 ESP (50)", buf, len, LX_CNT_OTHER_L4);
	len = frame(buf, 59, "[" NOROLE6 "]:0", "[2001:db8::10]:0");
	expect_counter(d, "ipv6 no next header (59)", buf, len, LX_CNT_OTHER_L4);

	/* ARP request, and other ethertypes. */
	memset(buf, 0, 60);
	memset(buf, 0xff, 6);
	buf[6] = 0x02;
	buf[11] = 0x01;
	put16(buf + 12, 0x0806);
	put16(buf + 14, 1);
	put16(buf + 16, 0x0800);
	buf[18] = 6;
	buf[19] = 4;
	put16(buf + 20, 1);
	expect_counter(d, "ARP request (ethertype 0x0806, 42 bytes)", buf, 42, LX_CNT_NON_IP);
	expect_counter(d, "ARP request padded to 60 bytes", buf, 60, LX_CNT_NON_IP);
	put16(buf + 12, 0x88cc);
	expect_counter(d, "LLDP (ethertype 0x88cc)", buf, 60, LX_CNT_NON_IP);
	put16(buf + 12, 0x8100);
	put16(buf + 14, 20);
	put16(buf + 16, 0x0806);
	expect_counter(d, "802.1Q-tagged ARP", buf, 60, LX_CNT_NON_IP);
	len = frame(buf, IPPROTO_TCP, PEER4, FE4_SIP);
	put16(buf + 12, 0x0805);
	expect_counter(d, "IPv4 packet under ethertype 0x0805", buf, len, LX_CNT_NON_IP);
}

static void test_classify_semantics(struct dp *d)
{
	static uint8_t buf[FRAME_MAX];
	struct packet_spec s;
	size_t len;

	/* Both ends match a rule: equal ranges, so the earlier line wins, whichever end. */
	len = frame(buf, IPPROTO_TCP, "192.0.2.10:443", "198.51.100.1:5068");
	expect_rule(d, "frontend:443 -> mediation:5068, both match: the earlier line (rule 2) wins",
		    buf, len, 2, LX_DIR_OUT);
	len = frame(buf, IPPROTO_TCP, "198.51.100.1:5068", "192.0.2.10:443");
	expect_rule(d, "mediation:5068 -> frontend:443, both match: the earlier line (rule 2) wins",
		    buf, len, 2, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, "[2001:db8::10]:5061", "[2001:db8:d::1]:5068");
	expect_rule(d, "ipv6 frontend:5061 -> mediation:5068: the earlier line (rule 1) wins", buf,
		    len, 1, LX_DIR_OUT);
	/* A single port beats a range at the other end, whichever is the destination. */
	len = frame(buf, IPPROTO_TCP, "192.0.2.10:5061", "198.51.100.1:5100");
	expect_rule(d, "frontend:5061 -> mediation:5100 (wide-b 5050-5149): the single port wins",
		    buf, len, 1, LX_DIR_OUT);
	len = frame(buf, IPPROTO_TCP, "198.51.100.1:5100", "192.0.2.10:5061");
	expect_rule(d, "mediation:5100 -> frontend:5061: the single port wins", buf, len, 1,
		    LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, "192.0.2.10:5061", "198.51.100.1:9999");
	expect_rule(d, "frontend:5061 -> mediation:9999 (no rule there): out (rule 1)", buf, len, 1,
		    LX_DIR_OUT);
	len = frame(buf, IPPROTO_TCP, "192.0.2.10:5061", "192.0.2.11:5061");
	expect_rule(d, "frontend:5061 -> frontend:5061: in", buf, len, 1, LX_DIR_IN);

	/* The rule's port on an address without the role, and the reverse. */
	len = frame(buf, IPPROTO_TCP, "198.18.0.1:5061", "198.18.0.2:5061");
	expect_rule(d, "no-role 5061 -> no-role 5061: unclassified", buf, len, 0, LX_DIR_IN);
	len = frame(buf, IPPROTO_UDP, "192.0.2.10:3478", "198.18.0.2:3478");
	expect_rule(d, "frontend udp 3478 (an edge port): unclassified", buf, len, 0, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "192.0.2.12:5061");
	expect_rule(d, "tcp 5061 to 192.0.2.12 (not in the site): unclassified", buf, len, 0,
		    LX_DIR_IN);
	len = frame(buf, IPPROTO_UDP, PEER4, "192.0.2.10:5061");
	expect_rule(d, "udp 5061 to frontend (the rule is tcp): unclassified", buf, len, 0,
		    LX_DIR_IN);

	/* Prefixes (LPM), and a host inside another role's prefix. */
	len = frame(buf, IPPROTO_UDP, PEER4, "203.0.113.77:3478");
	expect_rule(d, "udp to 203.0.113.77:3478 (edge-external /24)", buf, len, 6, LX_DIR_IN);
	len = frame(buf, IPPROTO_UDP, "[2001:db8:e:ffff::99]:3478", PEER6);
	expect_rule(d, "udp from [2001:db8:e:ffff::99]:3478 (edge-external /48)", buf, len, 6,
		    LX_DIR_OUT);
	len = frame(buf, IPPROTO_UDP, PEER4, "203.0.114.1:3478");
	expect_rule(d, "udp to 203.0.114.1:3478 (outside the /24)", buf, len, 0, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.5:5061");
	expect_rule(d, "frontend host inside mediation /28: tcp 5061 is frontend's", buf, len, 1,
		    LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.5:5068");
	expect_rule(d, "frontend host inside mediation /28: tcp 5068 is mediation's", buf, len, 8,
		    LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER6, "[2001:db8:d::5]:5120");
	expect_rule(d, "ipv6 frontend host inside mediation /48: tcp 5120 is mediation's", buf, len,
		    10, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.6:5061");
	expect_rule(d, "mediation /28 neighbour: tcp 5061 only by everything's range (rule 9)", buf,
		    len, 9, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.6:443");
	expect_rule(d, "mediation /28 neighbour: tcp 443 unclassified", buf, len, 0, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.16:5068");
	expect_rule(d, "198.51.100.16 (outside the /28): tcp 5068 unclassified", buf, len, 0,
		    LX_DIR_IN);

	/* Precedence on the wire. */
	len = frame(buf, IPPROTO_TCP, PEER4, "192.0.2.10:57500");
	expect_rule(d, "frontend tcp 57500: media range (rule 4) beats app-sharing", buf, len, 4,
		    LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "192.0.2.10:57501");
	expect_rule(d, "frontend tcp 57501: app-sharing (rule 3)", buf, len, 3, LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.1:5099");
	expect_rule(d, "mediation tcp 5099: equal widths, earlier line (rule 9)", buf, len, 9,
		    LX_DIR_IN);
	len = frame(buf, IPPROTO_TCP, PEER4, "198.51.100.1:5100");
	expect_rule(d, "mediation tcp 5100: rule 10", buf, len, 10, LX_DIR_IN);

	/* TCP flags and frame padding do not matter; sizes near the limit do not either. */
	static const uint8_t flags[] = { 0x01, 0x04, 0x10, 0x18, 0x11, 0xff };
	for (size_t i = 0; i < sizeof(flags); i++) {
		char name[64];
		spec_set(&s, IPPROTO_TCP, FE4_SIP, PEER4);
		s.tcp_flags = flags[i];
		len = build(&s, buf);
		snprintf(name, sizeof(name), "tcp flags 0x%02x from frontend 5061", flags[i]);
		expect_rule(d, name, buf, len, 1, LX_DIR_OUT);
	}
	len = frame(buf, IPPROTO_UDP, PEER4, "203.0.113.9:3478");
	memset(buf + len, 0, 60 - len);
	expect_rule(d, "udp frame padded to 60 bytes (IP length shorter than the frame)", buf, 60,
		    6, LX_DIR_IN);
	spec_set(&s, IPPROTO_UDP, PEER6, "[2001:db8::10]:50000");
	s.payload_len = 1452;
	len = build(&s, buf);
	expect_rule(d, "1514-byte ipv6 udp to frontend 50000 (rule 5)", buf, len, 5, LX_DIR_IN);
	spec_set(&s, IPPROTO_UDP, PEER4, "192.0.2.10:50000");
	/*
	 * A test run gives the program one page less XDP headroom (256) and the shared info
	 * (320 on x86-64): a longer frame would be cut, so testrun must refuse it, count it in
	 * too_long and leave every counter alone.
	 */
	size_t limit = (size_t)sysconf(_SC_PAGESIZE) - 256 - 320;
	s.payload_len = limit - 42;
	len = build(&s, buf);
	char name[96];
	snprintf(name, sizeof(name), "%zu-byte ipv4 udp (the largest a test run takes): rule 5",
		 len);
	expect_rule(d, name, buf, len, 5, LX_DIR_IN);
	size_t too_long[] = { limit + 1, 4000, 4096, 8000 };
	for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++) {
		s.payload_len = too_long[i] - 42;
		len = build(&s, buf);
		struct testrun_result res;
		struct stats_report before, after;
		struct text_error err = { { 0 } };
		uint64_t long_before = d->p.t.too_long;
		if (testrun_report(&d->p.t, &before, &err) < 0)
			continue;
		int rc = testrun_frame(&d->p.t, buf, len, &res, &err);
		if (testrun_report(&d->p.t, &after, &err) == 0) {
			CHECK(rc == 1 && d->p.t.too_long == long_before + 1 &&
				  after.total.packets == before.total.packets,
			      "%s %zu-byte frame: testrun refuses it (rc %d, want 1), counts it in "
			      "too_long, no counter moves (%llu packets counted)",
			      d->label, len, rc,
			      (unsigned long long)(after.total.packets - before.total.packets));
			/* Whatever did count is that failure's alone: keep the totals in step. */
			for (int c = 0; c < LX_CNT_MAX; c++) {
				d->want_special[c].packets +=
				    after.special[c].packets - before.special[c].packets;
				d->want_special[c].bytes +=
				    after.special[c].bytes - before.special[c].bytes;
			}
			for (int r = 0; r < after.nrows && r < before.nrows; r++) {
				struct lx_count *w =
				    &d->want[after.rows[r].rule * LX_DIR_MAX + after.rows[r].dir];
				w->packets +=
				    after.rows[r].count.packets - before.rows[r].count.packets;
				w->bytes += after.rows[r].count.bytes - before.rows[r].count.bytes;
			}
			d->sent += (long)(after.total.packets - before.total.packets);
			stats_free(&after);
		}
		stats_free(&before);
	}
}

static void test_framing(void)
{
	struct matrix m;
	struct site s;
	struct text_error err = { { 0 } };
	if (!CHECK(matrix_load(BASE_MATRIX, &m, &err) == 0, "%s loads%s", BASE_MATRIX, why(&err)))
		return;
	if (!CHECK(site_load(BASE_SITE, &m, &s, &err) == 0, "%s loads%s", BASE_SITE, why(&err))) {
		matrix_free(&m);
		return;
	}
	struct dp d;
	if (dp_open(&d, "frames", &m, &s) == 0) {
		test_vlans(&d);
		test_truncated(&d);
		test_ipv4_options(&d);
		test_ipv6_ext(&d);
		test_fragments(&d);
		test_other_traffic(&d);
		test_classify_semantics(&d);
		check_counters(&d, ~0ULL);
	}
	dp_close(&d);
	site_free(&s);
	matrix_free(&m);
}

/* ---- outbound rules, expectations written by hand ---- */

#define OB_EDGE4 "203.0.113.10"
#define OB_FE4	 "192.0.2.11"
#define OB_EDGE6 "[2001:db8:e::10]"
#define OB_FE6	 "[2001:db8::11]"
#define OB_PEER6 "[" NOROLE6 "]"

static void test_outbound_semantics(void)
{
	struct matrix m;
	struct site s;
	if (load_checked("outbound", OB_MATRIX, OB_SITE, &m, &s) < 0)
		return;
	struct dp d;
	if (dp_open(&d, "outbound", &m, &s) == 0) {
		static const struct {
			uint8_t ipproto;
			const char *src, *dst;
			uint32_t rule, dir;
			const char *why;
		} cases[] = {
			{ IPPROTO_TCP, PEER4, OB_EDGE4 ":5061", 1, LX_DIR_IN,
			  "listen: toward its port" },
			{ IPPROTO_TCP, OB_EDGE4 ":5061", PEER4, 1, LX_DIR_OUT,
			  "listen: from its port" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":5061", 2, LX_DIR_OUT,
			  "outbound-to: the edge connects to a peer's 5061" },
			{ IPPROTO_TCP, NOROLE4 ":5061", OB_EDGE4 ":40000", 2, LX_DIR_IN,
			  "outbound-to: the peer's reply from 5061" },
			{ IPPROTO_TCP, OB_EDGE6 ":40000", OB_PEER6 ":5061", 2, LX_DIR_OUT,
			  "outbound-to over ipv6, out" },
			{ IPPROTO_TCP, OB_PEER6 ":5061", OB_EDGE6 ":40000", 2, LX_DIR_IN,
			  "outbound-to over ipv6, the reply" },
			{ IPPROTO_TCP, NOROLE4 ":5061", OB_EDGE4 ":5061", 1, LX_DIR_IN,
			  "destination: its own port (listen) before the peer's (outbound-to)" },
			{ IPPROTO_TCP, OB_EDGE4 ":5061", NOROLE4 ":5061", 1, LX_DIR_OUT,
			  "source: its own port (listen) before the peer's (outbound-to)" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":5062", 3, LX_DIR_OUT,
			  "outbound-to 5000-5100 where 5061's rule is not" },
			{ IPPROTO_TCP, NOROLE4 ":5062", OB_EDGE4 ":40000", 3, LX_DIR_IN,
			  "the reply from 5062" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":5050", 3, LX_DIR_OUT,
			  "5050: as wide as 5050-5150, the earlier line" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":5100", 3, LX_DIR_OUT,
			  "5100: the earlier line" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":5101", 6, LX_DIR_OUT,
			  "5101: pool's rule, through includes=" },
			{ IPPROTO_TCP, NOROLE4 ":5150", OB_EDGE4 ":40000", 6, LX_DIR_IN,
			  "the reply from 5150" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":5151", 0, 0, "5151: no rule" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", NOROLE4 ":4999", 0, 0, "4999: no rule" },
			{ IPPROTO_UDP, OB_EDGE4 ":50005", NOROLE4 ":3478", 5, LX_DIR_OUT,
			  "udp 50005: listen 50000-50009 narrower than outbound-from" },
			{ IPPROTO_UDP, OB_EDGE4 ":50010", NOROLE4 ":3478", 4, LX_DIR_OUT,
			  "outbound-from: from the edge's own 50010" },
			{ IPPROTO_UDP, NOROLE4 ":3478", OB_EDGE4 ":50010", 4, LX_DIR_IN,
			  "outbound-from: the reply toward 50010" },
			{ IPPROTO_UDP, OB_PEER6 ":3478", OB_EDGE6 ":59999", 4, LX_DIR_IN,
			  "outbound-from over ipv6: toward 59999" },
			{ IPPROTO_UDP, NOROLE4 ":3478", OB_EDGE4 ":60000", 0, 0,
			  "udp 60000: outside the relay range" },
			{ IPPROTO_UDP, OB_EDGE4 ":40000", NOROLE4 ":53", 8, LX_DIR_OUT,
			  "udp to 53: DNS query" },
			{ IPPROTO_UDP, NOROLE4 ":53", OB_EDGE4 ":40000", 8, LX_DIR_IN,
			  "udp from 53: DNS answer" },
			{ IPPROTO_TCP, NOROLE4 ":53", OB_EDGE4 ":40000", 0, 0,
			  "tcp from 53: the rule is udp" },
			{ IPPROTO_UDP, NOROLE4 ":40000", OB_EDGE4 ":53", 0, 0,
			  "udp toward the edge's 53: not a port of its own" },
			{ IPPROTO_TCP, OB_FE4 ":5061", OB_EDGE4 ":40000", 2, LX_DIR_IN,
			  "fe:5061 -> edge: the edge's outbound-to (destination) beats fe's listen "
			  "(source)" },
			{ IPPROTO_TCP, OB_EDGE4 ":40000", OB_FE4 ":5061", 2, LX_DIR_OUT,
			  "edge -> fe:5061: both single ports, the edge's outbound-to is the "
			  "earlier "
			  "line" },
			{ IPPROTO_TCP, OB_FE6 ":5061", OB_EDGE6 ":40000", 2, LX_DIR_IN,
			  "ipv6 fe:5061 -> edge: the earlier line, whichever end" },
			{ IPPROTO_TCP, OB_EDGE6 ":40000", OB_FE6 ":5061", 2, LX_DIR_OUT,
			  "ipv6 edge -> fe:5061: the earlier line, whichever end" },
			{ IPPROTO_TCP, OB_FE4 ":40000", OB_EDGE4 ":5061", 1, LX_DIR_IN,
			  "fe -> edge:5061: the edge's listen" },
			{ IPPROTO_TCP, OB_FE4 ":5062", OB_EDGE4 ":40000", 3, LX_DIR_IN,
			  "fe:5062 -> edge: the edge's outbound-to 5000-5100" },
			{ IPPROTO_TCP, OB_EDGE4 ":5062", OB_FE4 ":40000", 0, 0,
			  "edge:5062 -> fe:40000: no rule either way" },
			{ IPPROTO_TCP, OB_FE4 ":5061", NOROLE4 ":40000", 7, LX_DIR_OUT,
			  "fe answers from 5061 (its listen rule, before outbound-from 9)" },
			{ IPPROTO_TCP, OB_FE4 ":40000", NOROLE4 ":5061", 10, LX_DIR_OUT,
			  "fe connects to a peer's 5061: its outbound-to" },
			{ IPPROTO_TCP, NOROLE4 ":5061", OB_FE4 ":40000", 10, LX_DIR_IN,
			  "toward fe from 5061: the reply on fe's outbound-to" },
			{ IPPROTO_UDP, NOROLE4 ":5061", OB_FE4 ":40000", 0, 0,
			  "udp toward fe from 5061: fe's outbound rules are tcp" },
			{ IPPROTO_TCP, NOROLE4 ":5061", NOROLE4 ":40000", 0, 0, "no role at all" },
		};
		static uint8_t buf[FRAME_MAX];
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char name[256];
			size_t len = frame(buf, cases[i].ipproto, cases[i].src, cases[i].dst);
			snprintf(name, sizeof(name), "%s %s -> %s: %s",
				 cases[i].ipproto == IPPROTO_TCP ? "tcp" : "udp", cases[i].src,
				 cases[i].dst, cases[i].why);
			expect_rule(&d, name, buf, len, cases[i].rule, cases[i].dir);
		}
		check_counters(&d, ~0ULL);
	}
	dp_close(&d);
	site_free(&s);
	matrix_free(&m);
	/* And the general per-rule, boundary and pair tests on the same matrix, where rule 9
	 * (fe from tcp 5061) is shadowed by 7 (fe listens on tcp 5061, an earlier line). */
	expect_shadowed = 1ULL << (9 - 1);
	test_matrix_rules(OB_MATRIX);
	expect_shadowed = 0;
}

/* ---- two-way flows of every product, with listed clients ---- */

#define TW_CLIENT4  "10.1.0.10"
#define TW_CLIENT4B "10.1.0.11"
#define TW_CLIENT6  "2001:db8:c1::10"
#define TW_CLIENT6B "2001:db8:c1::11"

static void tw_ep(int family, const char *addr, unsigned port, char *buf, size_t len)
{
	ep_text(family, addr, port, buf, len);
}

/* Sends a -> b then b -> a; expects (rule, dir) each way. Returns 1 when both held. */
static int tw_pair(struct dp *d, const char *name, int proto, int family, const char *a,
		   unsigned aport, const char *b, unsigned bport, uint32_t rule_ab, uint32_t dir_ab,
		   uint32_t rule_ba, uint32_t dir_ba, int quiet)
{
	static uint8_t buf[FRAME_MAX];
	char src[80], dst[80], n[320];
	int ok = 1;
	uint8_t ipproto = proto == LX_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
	tw_ep(family, a, aport, src, sizeof(src));
	tw_ep(family, b, bport, dst, sizeof(dst));
	snprintf(n, sizeof(n), "%s: %s -> %s", name, src, dst);
	size_t len = frame(buf, ipproto, src, dst);
	ok &= expect_rule_q(d, n, buf, len, rule_ab, dir_ab, quiet);
	snprintf(n, sizeof(n), "%s: %s -> %s (reply)", name, dst, src);
	len = frame(buf, ipproto, dst, src);
	ok &= expect_rule_q(d, n, buf, len, rule_ba, dir_ba, quiet);
	return ok;
}

/*
 * For one product (or a combination, "a,b"): a site with every non-client role on its own
 * host and a client subnet. For every rule of a server role, a two-way flow with a listed
 * client on the port where the rule wins: the client's packets count under the server's rule
 * `in` and the server's replies under the same rule `out` (a server role's port beats the
 * client's range, both ways). A listed client's DNS and HTTPS with an address without a role
 * are unclassified both ways; client-to-client RTP counts under the clients' rule, `in` both
 * ways; a client to the subnet's broadcast address or to multicast is unclassified.
 */
static void test_two_way(const char *matrix_path)
{
	struct matrix m;
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	if (!CHECK(matrix_load(matrix_path, &m, &err) == 0, "%s loads%s", matrix_path, why(&err)))
		return;
	char sitepath[128], text[8192], label[LX_PATH_LEN + 32];
	int k = 0, cl = matrix_find_role(&m, "clients");
	snprintf(label, sizeof(label), "two-way %s", m.product);
	for (int r = 0; r < m.nroles && r < 30; r++)
		if (!m.roles[r].client && !m.roles[r].includes)
			k +=
			    snprintf(text + k, sizeof(text) - (size_t)k,
				     "%s 192.0.2.%d 2001:db8::%x\n", m.roles[r].slug, r + 1, r + 1);
	k += snprintf(text + k, sizeof(text) - (size_t)k, "clients 10.1.0.0/24 2001:db8:c1::/64\n");
	snprintf(sitepath, sizeof(sitepath), "%s/two-way-%d.site", tmpdir,
		 (int)strlen(matrix_path));
	FILE *f = fopen(sitepath, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		CHECK(0, "%s: write %s", label, sitepath);
		matrix_free(&m);
		return;
	}
	if (!CHECK(cl >= 0 && m.roles[cl].client, "%s: the matrix has the client role 'clients'",
		   label) ||
	    !CHECK(site_load(sitepath, &m, &s, &err) == 0, "%s: site loads%s", label, why(&err))) {
		matrix_free(&m);
		return;
	}
	if (compile_tables(&m, &s, &c, &err) < 0) {
		CHECK(0, "%s: compile%s", label, why(&err));
		site_free(&s);
		matrix_free(&m);
		return;
	}
	struct dp d;
	if (dp_open(&d, label, &m, &s) < 0) {
		compile_free(&c);
		site_free(&s);
		matrix_free(&m);
		return;
	}
	order_m = &m;
	long servers = 0, bad = 0;
	for (int i = 0; i < m.nrules; i++) {
		const struct matrix_rule *r = &m.rules[i];
		if (m.roles[r->role].client)
			continue;
		/* An address holding the rule's role: its own host, or one of a role it includes.
		 */
		int host = -1;
		for (int h = 0; h < m.nroles && h < 30 && host < 0; h++)
			if (!m.roles[h].client && !m.roles[h].includes &&
			    (matrix_role_closure(&m, 1ULL << h) & (1ULL << r->role)))
				host = h;
		if (host < 0)
			continue;
		char addr4[32], addr6[48];
		snprintf(addr4, sizeof(addr4), "192.0.2.%d", host + 1);
		snprintf(addr6, sizeof(addr6), "2001:db8::%x", host + 1);
		uint32_t g = 0;
		for (int a = 0; a < c.naddrs; a++)
			if (c.addrs[a].family == 4 && c.addrs[a].len == 32 &&
			    c.addrs[a].addr[3] == host + 1 && c.addrs[a].addr[0] == 192)
				g = c.addrs[a].group;
		int remote = r->kind == LX_KIND_OUTBOUND_TO;
		unsigned port = 0, own = 0;
		for (uint32_t p = r->port_lo; p <= r->port_hi && !port; p++)
			if ((remote ? compiled_remote_at(&c, g, r->proto, p)
				    : compiled_rule_at(&c, g, r->proto, p)) == i + 1)
				port = p;
		if (!port)
			continue; /* another rule of the address wins everywhere: tested elsewhere
				   */
		if (remote)	  /* the server's own port: one none of its own rules has */
			for (uint32_t p = 40000; p < 65536 && !own; p++)
				if (!compiled_rule_at(&c, g, r->proto, p))
					own = p;
		unsigned cport = remote ? port : 50010 + (unsigned)(i % 40);
		unsigned sport = remote ? own : port;
		for (int family = 4; family <= 6; family += 2) {
			char name[256];
			rule_label(&m, i, name, 200);
			/* The client opens (listen, outbound-from: toward the server's port), or
			 * the server opens (outbound-to: toward the client's port). */
			int ok =
			    remote
				? tw_pair(&d, name, r->proto, family, family == 4 ? addr4 : addr6,
					  sport, family == 4 ? TW_CLIENT4 : TW_CLIENT6, cport,
					  (uint32_t)i + 1, LX_DIR_OUT, (uint32_t)i + 1, LX_DIR_IN,
					  1)
				: tw_pair(&d, name, r->proto, family,
					  family == 4 ? TW_CLIENT4 : TW_CLIENT6, cport,
					  family == 4 ? addr4 : addr6, sport, (uint32_t)i + 1,
					  LX_DIR_IN, (uint32_t)i + 1, LX_DIR_OUT, 1);
			servers++;
			bad += !ok;
		}
	}
	CHECK(servers > 0 && bad == 0,
	      "%s: %ld two-way flows of a listed client with every server rule: the client's "
	      "packets count under the server's rule, its replies under the same rule out (%ld "
	      "wrong)",
	      label, servers, bad);

	/* A listed client's DNS and HTTPS to the internet: unclassified both ways. */
	for (int family = 4; family <= 6; family += 2) {
		const char *me = family == 4 ? TW_CLIENT4 : TW_CLIENT6;
		const char *net = family == 4 ? NOROLE4 : NOROLE6;
		CHECK(tw_pair(&d, "client DNS to the internet", LX_PROTO_UDP, family, me, 53000,
			      net, 53, 0, 0, 0, 0, 1) &&
			  tw_pair(&d, "client HTTPS to the internet", LX_PROTO_TCP, family, me,
				  53001, net, 443, 0, 0, 0, 0, 1) &&
			  tw_pair(&d, "client media to the internet", LX_PROTO_UDP, family, me,
				  50000, net, 3478, 0, 0, 0, 0, 1),
		      "%s ipv%d: a listed client's DNS, HTTPS and media with an address without a "
		      "role are unclassified both ways",
		      label, family);
	}
	/* Client-to-client RTP: the clients' rule at the receiver's port, in both ways. Ports
	 * outside the Teams ranges are client-media; inside them, the Teams media type. */
	static const unsigned rtp_ports[2][2] = { { 30000, 30002 }, { 50000, 50002 } };
	uint32_t cg = 0;
	for (int a = 0; a < c.naddrs; a++)
		if (c.addrs[a].family == 4 && c.addrs[a].len == 24 && c.addrs[a].addr[0] == 10)
			cg = c.addrs[a].group;
	for (int pp = 0; pp < 2; pp++) {
		uint32_t want = compiled_rule_at(&c, cg, LX_PROTO_UDP, rtp_ports[pp][1]);
		const char *svc = want ? m.services[m.rules[want - 1].service].slug
				       : "unclassified (no client rule there), counted";
		int expected_svc =
		    pp == 0 ? (!strcmp(m.product, "teams") ? !want : !strcmp(svc, "client-media"))
			    : (strstr(m.product, "teams") ? !strcmp(svc, "teams-audio")
							  : !strcmp(svc, "client-media"));
		for (int family = 4; family <= 6; family += 2) {
			int ok = tw_pair(&d, "client-to-client RTP", LX_PROTO_UDP, family,
					 family == 4 ? TW_CLIENT4 : TW_CLIENT6, rtp_ports[pp][0],
					 family == 4 ? TW_CLIENT4B : TW_CLIENT6B, rtp_ports[pp][1],
					 want, LX_DIR_IN, want, LX_DIR_IN, 1);
			CHECK(ok && expected_svc,
			      "%s ipv%d: client-to-client RTP %u <-> %u counts as %s in, both ways",
			      label, family, rtp_ports[pp][0], rtp_ports[pp][1], svc);
		}
	}
	/* Broadcast and multicast are never a peer. */
	CHECK(tw_pair(&d, "client to its subnet's broadcast address", LX_PROTO_UDP, 4, TW_CLIENT4,
		      17500, "10.1.0.255", 17500, 0, 0, 0, 0, 1) &&
		  tw_pair(&d, "client SSDP", LX_PROTO_UDP, 4, TW_CLIENT4, 50001, "239.255.255.250",
			  1900, 0, 0, 0, 0, 1) &&
		  tw_pair(&d, "client to 255.255.255.255", LX_PROTO_UDP, 4, TW_CLIENT4, 50001,
			  "255.255.255.255", 50001, 0, 0, 0, 0, 1) &&
		  tw_pair(&d, "client to ff02::c", LX_PROTO_UDP, 6, TW_CLIENT6, 50001, "ff02::c",
			  1900, 0, 0, 0, 0, 1),
	      "%s: a listed client with its subnet's broadcast address or multicast: unclassified "
	      "both ways",
	      label);
	dp_close(&d);
	compile_free(&c);
	site_free(&s);
	matrix_free(&m);
}

/*
 * IPv6 prefixes of more lengths than the per-length tables take (LX_ADDR6_LENS): the program
 * uses the host hash and the trie instead. Same answers as the tables give: longest prefix,
 * hosts first, a host inside another role's prefix holds both roles. The same frames also
 * run against the site without its three longest prefixes (8 lengths: the tables).
 */
static void test_ipv6_many_lengths(void)
{
	static const char *lens_few = "edge-external 2001:db8:ee00::/40 2001:db8:e110::/44\n"
				      "edge-external 2001:db8:e2:1000::/52 2001:db8:e3:100::/56\n"
				      "edge-external 2001:db8:e4:10::/60 2001:db8:e5::/64\n";
	static const char *lens_more = "edge-external 2001:db8:e6:0:100::/72 2001:db8:e7:0:1::/80\n"
				       "edge-external 2001:db8:e8::1:0:0/96\n";
	static const char *common = "frontend 192.0.2.10 2001:db8::10\n"
				    "mediation 2001:db8:d::/48\nfrontend 2001:db8:d::5\n";
	static const struct {
		const char *src, *dst;
		uint8_t ipproto;
		uint32_t rule, dir;
		uint32_t rule_few; /* where the /96 is not in the site */
	} frames[] = {
		{ "[2001:db8:aa::1]:40000", "[2001:db8:ee00:1::9]:3478", IPPROTO_UDP, 6, LX_DIR_IN,
		  6 },
		{ "[2001:db8:aa::1]:40000", "[2001:db8:e4:1f::9]:3478", IPPROTO_UDP, 6, LX_DIR_IN,
		  6 },
		{ "[2001:db8:aa::1]:40000", "[2001:db8:e5::9]:3478", IPPROTO_UDP, 6, LX_DIR_IN, 6 },
		{ "[2001:db8:e8::1:0:7]:3478", "[2001:db8:aa::1]:40000", IPPROTO_UDP, 6, LX_DIR_OUT,
		  0 },
		{ "[2001:db8:aa::1]:40000", "[2001:db8::10]:5061", IPPROTO_TCP, 1, LX_DIR_IN, 1 },
		{ "[2001:db8:aa::1]:40000", "[2001:db8:d::5]:5120", IPPROTO_TCP, 10, LX_DIR_IN,
		  10 },
		{ "[2001:db8:aa::1]:40000", "[2001:db8:d::6]:5061", IPPROTO_TCP, 9, LX_DIR_IN, 9 },
		{ "[2001:db8:aa::1]:40000", "[2001:db8:ff::1]:3478", IPPROTO_UDP, 0, LX_DIR_IN, 0 },
	};
	for (int few = 0; few < 2; few++) {
		char spath[PATH_MAX];
		snprintf(spath, sizeof(spath), "%s/lengths-%d.site", tmpdir, few);
		FILE *f = fopen(spath, "w");
		int ok = f && fputs(lens_few, f) >= 0 && (few || fputs(lens_more, f) >= 0) &&
			 fputs(common, f) >= 0;
		ok = f && fclose(f) == 0 && ok;
		struct matrix m;
		struct site s;
		struct text_error err = { { 0 } };
		if (!CHECK(ok, "write %s", spath) || !CHECK(matrix_load(BASE_MATRIX, &m, &err) == 0,
							    "%s loads%s", BASE_MATRIX, why(&err)))
			return;
		if (!CHECK(site_load(spath, &m, &s, &err) == 0, "%s loads%s", spath, why(&err))) {
			matrix_free(&m);
			return;
		}
		struct dp d;
		if (dp_open(&d, few ? "ipv6 8 lengths (tables)" : "ipv6 11 lengths (hash and trie)",
			    &m, &s) == 0) {
			for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
				uint8_t buf[256];
				char name[128];
				size_t len =
				    frame(buf, frames[i].ipproto, frames[i].src, frames[i].dst);
				snprintf(name, sizeof(name), "%s -> %s", frames[i].src,
					 frames[i].dst);
				expect_rule(&d, name, buf, len,
					    few ? frames[i].rule_few : frames[i].rule,
					    frames[i].dir);
			}
		}
		dp_close(&d);
		site_free(&s);
		matrix_free(&m);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	goto_repo_top();
	const char *env = getenv("LYNCXDP_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	if (!seed)
		seed = 1;
	rng_state = seed;
	printf("seed %llu (LYNCXDP_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed,
	       (unsigned long long)seed);

	if (geteuid() != 0) {
		CHECK(0, "test_datapath needs root (BPF_PROG_TEST_RUN)");
		return check_done();
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lyncxdp-datapath.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}

	glob_t g;
	int rc = glob("maps/*.matrix", 0, NULL, &g);
	if (CHECK(rc == 0 && g.gl_pathc > 0, "maps/*.matrix: at least one matrix to test")) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			test_matrix_rules(g.gl_pathv[i]);
	}
	if (rc == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			test_two_way(g.gl_pathv[i]);
		test_two_way("maps/sfb2015.matrix,maps/teams.matrix");
	}
	if (rc == 0)
		globfree(&g);
	test_matrix_rules(BASE_MATRIX);
	test_many_roles();
	test_framing();
	test_outbound_semantics();
	test_ipv6_many_lengths();

	char cmd[128];
	glob_t sites;
	snprintf(cmd, sizeof(cmd), "%s/*", tmpdir);
	if (glob(cmd, 0, NULL, &sites) == 0) {
		for (size_t i = 0; i < sites.gl_pathc; i++)
			unlink(sites.gl_pathv[i]);
		globfree(&sites);
	}
	rmdir(tmpdir);
	return check_done();
}

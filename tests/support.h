/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the C tests share (tests/support.c), written once:
 * - die(): a setup that cannot go on ends the test with a FAIL line and exit code 2;
 * - big-endian fields and the Internet checksum (RFC 1071) to patch and verify frames;
 * - frames from endpoint texts and packet specs (user/packet.c), dying on a test bug;
 * - struct prog: one private instance of the real XDP program (BPF_PROG_TEST_RUN, nothing
 *   attached or pinned) with the site and tables it was compiled from;
 * - the test data several tests read (tests/data/), and load_checked() to read a matrix and
 *   its site with one check each.
 * The tests link it next to the user/ modules (Makefile: $(BUILD)/test_%).
 */
#ifndef LYNCXDP_TESTS_SUPPORT_H
#define LYNCXDP_TESTS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "compile.h"
#include "matrix.h"
#include "media.h"
#include "packet.h"
#include "site.h"
#include "stats.h"
#include "testrun.h"

/* ---- failing setups ---- */

/* The name die() prints (stderr "NAME: why", stdout "FAIL NAME: setup: why"). */
void support_name(const char *name);
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

/* ": message" after a check's name when err holds one, "" otherwise (one static buffer). */
const char *why(const struct text_error *err);

/* ---- fields and checksums ---- */

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* The one's complement sum of len bytes added to sum (an odd last byte is padded). */
uint32_t csum_add(const uint8_t *p, size_t len, uint32_t sum);
/* The sum folded to 16 bits (not complemented). */
uint16_t csum_fold(uint32_t sum);
/* The header checksum an IPv4 header (length from its IHL) should carry. */
uint16_t ipv4_checksum(const uint8_t *ip);
/* Writes it: after a test patched the header. */
void ipv4_checksum_fix(uint8_t *ip);
/* 1 when the header verifies as a receiver checks it (the sum folds to 0xffff). */
int ipv4_checksum_ok(const uint8_t *ip);

/* ---- frames ---- */

/* "ADDR:PORT" ([v6]:port) into an endpoint; dies on a bad text (a test bug). */
struct endpoint endpoint_of(const char *text);
/* An address without brackets and a port. */
struct endpoint endpoint_at(const char *addr, uint16_t port);
/* packet_build into buf (cap bytes); dies when it refuses the spec. */
size_t frame_build(const struct packet_spec *spec, uint8_t *buf, size_t cap);

/* ---- test data (tests/data/) ---- */

/* Outbound rules and icmp lines: the rule ids are in the matrix's opening comment. */
#define OB_MATRIX "tests/data/outbound.matrix"
#define OB_SITE	  "tests/data/outbound.site"

/*
 * Loads a matrix and a site of it, one check each ("LABEL matrix loads", "LABEL site loads",
 * in the calling test's count): 0, or -1 with nothing left loaded.
 */
static inline int load_checked(const char *label, const char *matrix_path, const char *site_path,
			       struct matrix *m, struct site *s)
{
	struct text_error err = { { 0 } };
	if (!CHECK(matrix_load(matrix_path, m, &err) == 0, "%s matrix loads%s", label, why(&err)))
		return -1;
	if (!CHECK(site_load(site_path, m, s, &err) == 0, "%s site loads%s", label, why(&err))) {
		matrix_free(m);
		return -1;
	}
	return 0;
}

/* ---- one instance of the real XDP program ---- */

struct prog {
	const char *name; /* in every message about it */
	struct site site; /* when opened from a site file */
	struct compiled comp;
	struct testrun t;
	uint32_t policy, tag;
	int own_site, own_comp;
};

struct prog_opts {
	uint32_t policy; /* enum lx_policy; 0 is monitor */
	uint32_t tag;	 /* 1: rewrite DSCP */
	/* Tables compiled already (kept by the caller); NULL: compiled from the site. */
	const struct compiled *comp;
	/* maps/media: the instance inspects media as attach does; NULL: it does not. */
	const struct media_table *media;
	/* Changes the load-time config (e.g. shorter flow timeouts); NULL: the site's. */
	void (*config)(struct lx_config *cfg);
};

/* Loads an instance for site s of matrix m; -1 with err on failure (nothing left open), or
 * with err NULL, dies. */
int prog_open(struct prog *p, const char *name, const struct matrix *m, const struct site *s,
	      const struct prog_opts *o, struct text_error *err);
/* The same with the site read from a file (kept in p->site). */
int prog_open_file(struct prog *p, const char *name, const struct matrix *m, const char *site_path,
		   const struct prog_opts *o, struct text_error *err);
void prog_close(struct prog *p);

/* These die on an error, naming the instance. */
void prog_set(struct prog *p, uint32_t policy, uint32_t tag); /* as `lyncxdp set` does live */
void prog_side(struct prog *p, uint32_t side);		      /* enum lx_side of next frames */
/* Runs one frame: 0, or 1 when the kernel refused it for its size (testrun_frame). */
int prog_run(struct prog *p, const uint8_t *frame, size_t len, struct testrun_result *res);
/* Counters of every frame so far; stats_free() it. */
void prog_report(struct prog *p, struct stats_report *r);

#endif

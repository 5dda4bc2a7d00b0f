/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A private instance of the real XDP program (nothing attached, nothing pinned) that runs
 * frames with BPF_PROG_TEST_RUN: what explain, replay and the tests use.
 */
#ifndef LYNCXDP_TESTRUN_H
#define LYNCXDP_TESTRUN_H

#include <stddef.h>
#include <stdint.h>

#include "compile.h"
#include "loader.h"
#include "stats.h"

struct testrun {
	struct lyncxdp_bpf *skel;
	struct lx_map_fds fds;
	int prog_fd;
	uint32_t rule_cap;
	uint32_t nrules;
	uint32_t flow_slots; /* lx_flows: slots and hash seed (random per instance) */
	uint64_t flow_seed;
	uint64_t too_short; /* frames shorter than an Ethernet header: the kernel refuses them */
	uint64_t too_long;  /* frames larger than a test run takes */
};

/* policy: enum lx_policy; tag: 1 to rewrite DSCP. */
int testrun_open(struct testrun *t, const struct matrix *m, const struct site *s,
		 const struct compiled *c, uint32_t policy, uint32_t tag, struct text_error *err);

/* The same with a load-time config of its own (e.g. shorter flow timeouts); NULL: the
 * site's, as attach loads it. */
int testrun_open_config(struct testrun *t, const struct matrix *m, const struct site *s,
			const struct compiled *c, uint32_t policy, uint32_t tag,
			const struct lx_config *config, struct text_error *err);

/* Changes the policy and tag mode of the instance, as `lyncxdp set` does live. */
int testrun_set(struct testrun *t, uint32_t policy, uint32_t tag, struct text_error *err);
/* Models the side the frames arrive on (enum lx_side; route has no meaning here: the
 * frames arrive on no interface). The default is LX_SIDE_PROTECTED. */
int testrun_set_side(struct testrun *t, uint32_t side, struct text_error *err);
void testrun_close(struct testrun *t);

/* The flow of key k in the instance's flow table into *f: 0 found, -1 not (or an error). */
int testrun_flow(const struct testrun *t, const struct lx_flow_key *k, struct lx_flow *f);

/* The arrival time media streams see for the next frames (the capture's timestamp), ns. */
void testrun_set_time(struct testrun *t, uint64_t ns);

/* What the program decided for one frame. */
struct testrun_result {
	struct lx_last last;
	uint32_t retval; /* XDP action */
	size_t out_len;
	uint8_t out[4096]; /* the frame as it leaves the program */
};

/* Returns 0, 1 when the kernel refused the frame for its size (counted), -1 on error. */
int testrun_frame(struct testrun *t, const uint8_t *frame, size_t len, struct testrun_result *res,
		  struct text_error *err);

/* Counters accumulated by every frame run so far. */
int testrun_report(struct testrun *t, struct stats_report *r, struct text_error *err);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-service counters: read from the maps (pinned, or a private replay instance), printed. */
#ifndef LYNCXDP_STATS_H
#define LYNCXDP_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "pins.h"

struct stats_row {
	uint32_t rule;
	uint32_t dir;
	struct lx_rule_info info;
	struct lx_count count;
	struct lx_count remarked;	     /* DSCP rewritten by the tag mode */
	struct lx_count media[LX_MEDIA_MAX]; /* media services: what their packets carry */
	/* DSCP on arrival against info.dscp (enum lx_conformance); zero when info.dscp is
	 * LX_DSCP_KEEP or the maps have no conformance counters */
	struct lx_count conformance[LX_CONF_MAX];
};

struct stats_report {
	int nrows;
	struct stats_row *rows; /* every active rule, both directions, in rule order */
	struct lx_count special[LX_CNT_MAX];
	struct lx_count total;
	struct lx_count drops[LX_DROP_MAX];	 /* enforce: dropped, per reason */
	struct lx_count would_drop[LX_DROP_MAX]; /* monitor: would have been dropped */
};

/* Sums every CPU and every interface slot set in slot_mask. */
int stats_collect(const struct lx_map_fds *fds, uint32_t rule_cap, uint32_t nrules,
		  uint32_t slot_mask, struct stats_report *r, struct text_error *err);
void stats_free(struct stats_report *r);

struct stats_print_opts {
	int json;
	int all;			 /* table: also rows that counted nothing */
	double interval;		 /* > 0: print rates against prev */
	const struct stats_report *prev; /* the report interval seconds earlier */
};

void stats_print(FILE *out, const struct stats_report *r, const struct stats_print_opts *o);
/* The members of `stats --json` ("services" to "would_drop") into an open object: replay puts
 * its own ("capture", "flows") before them. */
struct json_writer;
void stats_print_json_members(struct json_writer *w, const struct stats_report *r,
			      const struct stats_print_opts *o);

const char *stats_counter_name(int counter);
const char *stats_dir_name(uint32_t dir);
const char *stats_reason_name(uint32_t reason);
const char *stats_conformance_name(uint32_t conformance);

/* Share of a row's packets that arrived with the expected DSCP, 0..1; -1 when none counted. */
double stats_conformance_share(const struct stats_row *row);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `lyncxdp top`: a live terminal view of the counters (plain ANSI, no curses): per role and
 * service, packets/s and bits/s both ways with a one-minute sparkline, drops and would-drops by
 * reason; sorted by rate; keys to sort and filter.
 */
#ifndef LYNCXDP_TOP_H
#define LYNCXDP_TOP_H

#include "stats.h"

/* Reads the counters now (the caller knows the maps and the interfaces). */
typedef int (*top_collect_fn)(void *ctx, struct stats_report *r, struct text_error *err);

struct top_opts {
	double interval;   /* seconds between samples */
	const char *title; /* what is shown: product, interfaces */
	int in_fd;	   /* keys (a terminal) */
	int out_fd;	   /* the screen (a terminal) */
};

/* Runs until `q`, SIGINT or SIGTERM; the terminal is restored. 0, or -1 with err. */
int top_run(const struct top_opts *o, top_collect_fn collect, void *ctx, struct text_error *err);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* RTP streams of media services (lx_streams): read, judged against maps/media, printed. */
#ifndef LYNCXDP_STREAMS_H
#define LYNCXDP_STREAMS_H

#include <stdint.h>
#include <stdio.h>

#include "media.h"

struct stream_row {
	struct lx_stream_key key;
	struct lx_stream st;
	struct lx_rule_info info; /* role and service of the rule that classified it */
	uint64_t expected;	  /* extended highest sequence - base + 1 */
	uint64_t lost;		  /* expected - received, never negative */
	double loss;		  /* lost / expected */
	double jitter_ms;	  /* RFC 3550 A.8, now */
	double mean_jitter_ms;	  /* Wireshark's mean of the running jitter */
	const char *verdict;	  /* media_verdict() */
};

struct streams_report {
	int n;
	struct stream_row *rows; /* confirmed streams, oldest first */
};

/*
 * Reads every confirmed stream of the interface slots in slot_mask. t (may be NULL) names
 * codecs and gives the thresholds; without it every verdict is "unclassified".
 */
int streams_collect(int streams_fd, int rule_info_fd, const struct media_table *t,
		    uint32_t slot_mask, struct streams_report *r, struct text_error *err);
void streams_free(struct streams_report *r);

struct streams_print_opts {
	int json;
	/* Added to the program's times to make them seconds since the epoch: 0 for replay
	 * (capture timestamps), CLOCK_REALTIME - CLOCK_MONOTONIC live. */
	int64_t epoch_offset_ns;
	uint64_t now_ns; /* the program's clock now (live), for the age column; 0: none */
	const struct media_table *t;
};

void streams_print(FILE *out, const struct streams_report *r, const struct streams_print_opts *o);

/* The codec name of a payload type ("PCMU"), or "pt N" when the data does not name it. */
const char *streams_codec(const struct media_table *t, unsigned pt, char *buf, size_t size);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* `lyncxdp drops`: streams the program's drop log (ring buffer) with its rate-limit count. */
#ifndef LYNCXDP_DROPLOG_H
#define LYNCXDP_DROPLOG_H

#include "text.h"

struct droplog_opts {
	int json;
	double seconds;	     /* stop after this long; 0: until interrupted */
	unsigned long count; /* stop after this many records; 0: no limit */
};

int droplog_stream(const struct droplog_opts *o, struct text_error *err);

#endif

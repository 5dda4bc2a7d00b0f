/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reads pcap and pcapng files (libpcap) and hands every frame over as Ethernet. */
#ifndef LYNCXDP_CAPTURE_H
#define LYNCXDP_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

struct capture_counts {
	uint64_t frames;    /* frames read from the file */
	uint64_t truncated; /* captured shorter than they were on the wire */
	uint64_t padded;    /* of those, padded with zero bytes to their wire length */
	uint64_t skipped;   /* link types or sizes that cannot be run, see the reason */
};

/*
 * Called per frame with an Ethernet frame; a non-zero return stops the walk. A frame the
 * capture cut short (caplen < len, a snap length) is handed over at its wire length, the bytes
 * past what was captured being zero: its headers are judged as the live program judges them
 * and its bytes count at wire length (up to 64 KiB).
 */
typedef int (*capture_fn)(const uint8_t *frame, size_t len, void *arg);

int capture_foreach(const char *path, capture_fn fn, void *arg, struct capture_counts *counts,
		    struct text_error *err);

/* The same, with each frame's capture timestamp in nanoseconds since the epoch. */
typedef int (*capture_timed_fn)(const uint8_t *frame, size_t len, uint64_t ts_ns, void *arg);
int capture_foreach_timed(const char *path, capture_timed_fn fn, void *arg,
			  struct capture_counts *counts, struct text_error *err);

#endif

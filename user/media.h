/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Media data (maps/media): which services' UDP payloads the program inspects, the RTP payload
 * types it recognises (kind, clock rate), what the tag mode writes per media kind on `-`
 * media services, and Microsoft's thresholds for a poor stream.
 */
#ifndef LYNCXDP_MEDIA_H
#define LYNCXDP_MEDIA_H

#include <stdint.h>

#include "../bpf/lyncxdp_kern_user.h"
#include "text.h"

struct compiled;
struct matrix;
struct site;

#define MEDIA_MAX_INSPECT 64

struct media_pt {
	int kind; /* enum lx_media_kind; LX_MEDIA_OTHER: not a known payload type */
	uint32_t clock_hz;
	uint8_t flags; /* enum lx_pt_flags */
	char name[LX_SLUG_LEN];
	int line;
};

struct media_poor {
	double loss;	  /* fraction; < 0: no threshold */
	double jitter_ms; /* < 0: none */
	double rtt_ms;	  /* < 0: none (a gateway does not measure it) */
};

struct media_table {
	char path[LX_PATH_LEN];
	int ninspect;
	char inspect[MEDIA_MAX_INSPECT][LX_SLUG_LEN];
	char tag[LX_MEDIA_MAX][LX_SLUG_LEN]; /* service whose DSCP a kind gets, "" for none */
	struct media_pt pt[LX_PAYLOAD_TYPES];
	struct media_poor poor[LX_MEDIA_MAX];
	uint64_t poor_min_packets;
};

int media_load(const char *path, struct media_table *t, struct text_error *err);

/*
 * The media data file beside a matrix: the matrix's own directory, then LYNCXDP_MAPS, the
 * build's maps/ and the installed share directories. Returns 0 with the path in out.
 */
int media_find(const char *matrix_path, char *out, size_t size);

/* Per rule: inspected or not; per media kind: the DSCP the tag mode writes (site overrides
 * applied). Services the matrix does not declare are skipped (custom matrices). */
int compile_media(struct compiled *c, const struct matrix *m, const struct site *s,
		  const struct media_table *t, struct text_error *err);

const char *media_kind_name(int kind);	/* "stun", "audio", ... ; "-" out of range */
int media_kind_parse(const char *name); /* -1 when unknown */

/* The verdict for a stream against the thresholds of its kind: "poor", "good" or
 * "unclassified" (too few packets, or no thresholds for the kind). */
const char *media_verdict(const struct media_table *t, int kind, uint64_t packets, double loss,
			  double jitter_ms);

#endif

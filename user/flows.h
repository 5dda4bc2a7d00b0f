/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flows of a replayed capture (`replay --flows`): each TCP/UDP 5-tuple, both directions, what
 * the program decided for each direction's packets, and its verdicts and drop reasons.
 */
#ifndef LYNCXDP_FLOWS_H
#define LYNCXDP_FLOWS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "matrix.h"

/* A 5-tuple as the packet carries it: a is the source, b the destination. */
struct flows_key {
	uint8_t family; /* 4 or 6 */
	uint8_t ipproto;
	uint16_t aport, bport;
	uint8_t a[16], b[16];
};

#define FLOWS_DECISIONS 4 /* distinct decisions kept per direction; the rest add to `other` */

struct flows_decision {
	uint32_t rule; /* 0: none, then counter says why */
	uint32_t dir;
	uint32_t counter;
	uint64_t packets;
};

struct flows_side {
	uint64_t packets, bytes;
	int ndecisions;
	struct flows_decision decisions[FLOWS_DECISIONS];
	uint64_t other;
};

struct flows_flow {
	struct flows_key key;	   /* oriented as its first packet: a sent it */
	struct flows_side side[2]; /* 0: a -> b, 1: b -> a */
	uint64_t pass, drop;
	uint64_t reasons[LX_DROP_MAX]; /* dropped or would be (monitor), per reason */
};

struct flows_table {
	struct flows_flow *flows; /* in the order they first appeared */
	size_t n, cap;
	int32_t *slots; /* open addressing: index into flows, -1 empty */
	size_t nslots;
};

/* Reads the 5-tuple of an Ethernet frame: 0 for TCP or UDP with ports, -1 otherwise. */
int flows_parse(const uint8_t *frame, size_t len, struct flows_key *k);

/* Adds one frame and what the program decided for it. -1 when out of memory. */
int flows_add(struct flows_table *t, const uint8_t *frame, size_t len, uint32_t rule, uint32_t dir,
	      uint32_t counter, uint32_t verdict, uint32_t reason);

void flows_print(FILE *out, const struct flows_table *t, const struct matrix *m);
/* The member `"flows": [...]` of an open JSON object. */
struct json_writer;
void flows_print_json(struct json_writer *w, const struct flows_table *t, const struct matrix *m);
void flows_free(struct flows_table *t);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 address -> group as exact-match tables per prefix length in one array of buckets
 * (tbl_addr6, see the shared header): the data path probes the site's lengths longest first,
 * each probe one inlined array read, instead of a hash and a trie lookup (two calls).
 */
#ifndef LYNCXDP_ADDR6_H
#define LYNCXDP_ADDR6_H

#include <stdint.h>

#include "compile.h"

struct addr6_table {
	int usable;	/* 0: more lengths than LX_ADDR6_LENS, use hash and trie */
	uint32_t nlens; /* distinct prefix lengths, longest first in lens */
	uint8_t lens[LX_ADDR6_LENS];
	uint32_t nbuckets; /* a power of two */
	struct lx_addr6_bucket *buckets;
};

/* Returns 0 (t->usable says whether the table applies), or -1 when out of memory. */
int addr6_build(const struct compiled *c, struct addr6_table *t);
void addr6_free(struct addr6_table *t);

#endif

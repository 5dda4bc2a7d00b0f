/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 address -> group as a three-level table of 16, 8 and 8 bits (tbl_dir4_*): the data
 * path finds any address's group with at most three array reads, which the verifier inlines,
 * instead of a hash and a trie lookup, each a call. Built from the compiled addresses by
 * painting them shortest prefix first, so the longest prefix covering an address wins, as in
 * a longest-prefix match, and hosts (/32) win over every prefix.
 */
#ifndef LYNCXDP_ADDR4_H
#define LYNCXDP_ADDR4_H

#include <stdint.h>

#include "compile.h"

struct addr4_table {
	uint32_t *l1;	       /* LX_DIR4_L1 entries: group or LX_DIR4_CHILD | l2 chunk */
	struct lx_dir4_l2 *l2; /* n2 chunks */
	struct lx_dir4_l3 *l3; /* n3 chunks */
	uint32_t n2, n3, cap2, cap3;
};

/* Returns 0, or -1 when out of memory. */
int addr4_build(const struct compiled *c, struct addr4_table *t);
void addr4_free(struct addr4_table *t);

#endif

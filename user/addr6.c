// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "addr6.h"

#include <stdlib.h>
#include <string.h>

void addr6_free(struct addr6_table *t)
{
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

/* Places every IPv6 entry in nbuckets buckets; 0 when one bucket overflows. */
static int place(const struct compiled *c, struct addr6_table *t)
{
	memset(t->buckets, 0, (size_t)t->nbuckets * sizeof(*t->buckets));
	for (int i = 0; i < c->naddrs; i++) {
		const struct compiled_addr *a = &c->addrs[i];
		if (a->family != 6)
			continue;
		uint32_t w[4], m[4], len = (uint32_t)a->len;
		memcpy(w, a->addr, 16);
		for (uint32_t k = 0; k < 4; k++)
			m[k] = lx_addr6_word(w[k], k, len);
		struct lx_addr6_bucket *b = &t->buckets[lx_addr6_hash(m, len) & (t->nbuckets - 1)];
		struct lx_addr6_slot *free_slot = NULL, *same = NULL;
		for (int k = 0; k < LX_ADDR6_WAYS; k++) {
			struct lx_addr6_slot *s = &b->slot[k];
			if (s->group && s->len == len && !memcmp(s->addr, m, 16))
				same = s;
			else if (!s->group && !free_slot)
				free_slot = s;
		}
		struct lx_addr6_slot *s = same ? same : free_slot; /* a later duplicate wins */
		if (!s)
			return 0;
		memcpy(s->addr, m, 16);
		s->len = (uint8_t)len;
		s->group = (uint8_t)a->group;
	}
	return 1;
}

int addr6_build(const struct compiled *c, struct addr6_table *t)
{
	memset(t, 0, sizeof(*t));
	int seen[129] = { 0 }, n6 = 0;
	for (int i = 0; i < c->naddrs; i++)
		if (c->addrs[i].family == 6) {
			seen[c->addrs[i].len] = 1;
			n6++;
		}
	for (int len = 128; len >= 0; len--)
		if (seen[len]) {
			if (t->nlens == LX_ADDR6_LENS)
				return 0; /* not usable: the data path uses the hash and the trie */
			t->lens[t->nlens++] = (uint8_t)len;
		}
	/* At most half the slots used; twice the buckets whenever one overflows. */
	t->nbuckets = 16;
	while (t->nbuckets * LX_ADDR6_WAYS < 2u * (uint32_t)n6)
		t->nbuckets *= 2;
	for (; t->nbuckets <= (1u << 24); t->nbuckets *= 2) {
		free(t->buckets);
		t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
		if (!t->buckets) {
			addr6_free(t);
			return -1;
		}
		if (place(c, t)) {
			t->usable = 1;
			return 0;
		}
	}
	addr6_free(t);
	return 0;
}

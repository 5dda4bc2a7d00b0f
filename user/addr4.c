// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "addr4.h"

#include <stdlib.h>
#include <string.h>

void addr4_free(struct addr4_table *t)
{
	free(t->l1);
	free(t->l2);
	free(t->l3);
	memset(t, 0, sizeof(*t));
}

static int grow(void **v, uint32_t *cap, uint32_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	uint32_t n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	void *p = realloc(*v, (size_t)n * size);
	if (!p)
		return -1;
	*v = p;
	*cap = n;
	return 0;
}

/* The l2 chunk under l1 entry i, made on first use from what the entry said for all of it. */
static int child2(struct addr4_table *t, uint32_t i, uint32_t *chunk)
{
	uint32_t v = t->l1[i];
	if (v & LX_DIR4_CHILD) {
		*chunk = v & ~LX_DIR4_CHILD;
		return 0;
	}
	if (grow((void **)&t->l2, &t->cap2, t->n2 + 1, sizeof(*t->l2)) < 0)
		return -1;
	*chunk = t->n2++;
	for (int k = 0; k < LX_DIR4_CHUNK; k++)
		t->l2[*chunk].entry[k] = v;
	t->l1[i] = LX_DIR4_CHILD | *chunk;
	return 0;
}

static int child3(struct addr4_table *t, uint32_t c2, uint32_t i, uint32_t *chunk)
{
	uint32_t v = t->l2[c2].entry[i];
	if (v & LX_DIR4_CHILD) {
		*chunk = v & ~LX_DIR4_CHILD;
		return 0;
	}
	if (grow((void **)&t->l3, &t->cap3, t->n3 + 1, sizeof(*t->l3)) < 0)
		return -1;
	*chunk = t->n3++;
	memset(t->l3[*chunk].group, (int)v, LX_DIR4_CHUNK);
	t->l2[c2].entry[i] = LX_DIR4_CHILD | *chunk;
	return 0;
}

static int by_len(const void *a, const void *b)
{
	const struct compiled_addr *x = *(const struct compiled_addr *const *)a;
	const struct compiled_addr *y = *(const struct compiled_addr *const *)b;
	if (x->len != y->len)
		return x->len - y->len;
	return x < y ? -1 : x > y; /* stable: a later duplicate overwrites, as a map update does */
}

int addr4_build(const struct compiled *c, struct addr4_table *t)
{
	memset(t, 0, sizeof(*t));
	const struct compiled_addr **list = calloc((size_t)c->naddrs + 1, sizeof(*list));
	t->l1 = calloc(LX_DIR4_L1, sizeof(*t->l1));
	if (!list || !t->l1) {
		free(list);
		addr4_free(t);
		return -1;
	}
	int n = 0;
	for (int i = 0; i < c->naddrs; i++)
		if (c->addrs[i].family == 4)
			list[n++] = &c->addrs[i];
	qsort(list, (size_t)n, sizeof(*list), by_len);

	/* Shortest first: a longer prefix paints over the shorter ones that cover it. A prefix
	 * never has to paint over a longer one, so no chunk is ever painted whole. */
	for (int i = 0; i < n; i++) {
		const struct compiled_addr *a = list[i];
		uint32_t addr = (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 |
				(uint32_t)a->addr[2] << 8 | a->addr[3];
		uint32_t len = (uint32_t)a->len, c2, c3;
		if (len <= 16) {
			uint32_t first = len ? addr >> 16 : 0, count = 1u << (16 - len);
			first &= ~(count - 1);
			for (uint32_t k = 0; k < count; k++)
				t->l1[first + k] = a->group;
			continue;
		}
		if (child2(t, addr >> 16, &c2) < 0)
			goto oom;
		if (len <= 24) {
			uint32_t count = 1u << (24 - len),
				 first = (addr >> 8) & 0xff & ~(count - 1);
			for (uint32_t k = 0; k < count; k++)
				t->l2[c2].entry[first + k] = a->group;
			continue;
		}
		if (child3(t, c2, (addr >> 8) & 0xff, &c3) < 0)
			goto oom;
		uint32_t count = 1u << (32 - len), first = addr & 0xff & ~(count - 1);
		for (uint32_t k = 0; k < count; k++)
			t->l3[c3].group[first + k] = (uint8_t)a->group;
	}
	free(list);
	return 0;
oom:
	free(list);
	addr4_free(t);
	return -1;
}

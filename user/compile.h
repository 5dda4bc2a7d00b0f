/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Compiles a matrix and a site into the tables the XDP program reads: address -> group
 * (a group is one distinct set of roles), and (group, proto, port) -> the winning rule.
 * All precedence is settled here, once, so the data path never scans rules.
 */
#ifndef LYNCXDP_COMPILE_H
#define LYNCXDP_COMPILE_H

#include <stdint.h>

#include "matrix.h"
#include "site.h"

struct compiled_addr {
	int family;
	uint8_t addr[16];
	int len;
	uint32_t group;
};

struct compiled {
	int ngroups; /* group ids 1..ngroups-1 are used; 0 means "no role" */
	uint64_t group_roles[LX_MAX_GROUPS];
	int naddrs;
	struct compiled_addr *addrs;
	uint32_t hosts4, nets4, hosts6, nets6;
	uint32_t config_flags; /* enum lx_config_flags */
	uint16_t *rule_table;  /* [group][proto][port] -> rule id, LX_MAX_GROUPS groups */
	uint32_t *port_groups; /* [proto][port] -> bitmask of groups */
	int nrules;	       /* = matrix nrules; rule id = index + 1 */
	uint8_t *active;       /* [rule index] 1 when the rule's role is present */
	int nactive;
};

int compile_tables(const struct matrix *m, const struct site *s, struct compiled *c,
		   struct text_error *err);
void compile_free(struct compiled *c);

static inline uint16_t compiled_rule_at(const struct compiled *c, uint32_t group, int proto,
					uint32_t port)
{
	return c->rule_table[((size_t)group * LX_PROTO_MAX + (size_t)proto) * LX_PORTS + port];
}

#endif

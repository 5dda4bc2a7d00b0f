/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Compiles a matrix and a site into everything the table maps hold: address -> group (a
 * group is one distinct set of roles), (group, proto, port) -> the winning rule, each rule's
 * action and description, the allowed ICMP keys and the rule ids. All precedence is settled
 * here, once, so the data path never scans rules; this is the only place that interprets the
 * matrix and site for the maps: the loader (user/loader.c) writes what it returns.
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
	uint8_t group_nonpeer[LX_MAX_GROUPS]; /* a prefix's broadcast address: never a peer */
	uint8_t group_nat[LX_MAX_GROUPS];     /* NAT'd public addresses (site `nat`) */
	uint32_t nat_groups;		      /* groups marked group_nat */
	int nnat;			      /* the site's `nat` lines, for tbl_nat */
	struct site_nat *nat;
	uint32_t peer_groups;	/* groups a client rule accepts as its peer */
	uint32_t server_groups; /* groups holding a role that is not `client` */
	uint32_t client_groups; /* groups holding a `client` role */
	int naddrs;
	struct compiled_addr *addrs;
	uint32_t hosts4, nets4, hosts6, nets6; /* the site's own prefixes */
	uint32_t broadcasts4;		       /* IPv4 host entries added for subnet broadcasts */
	int role_groups;       /* distinct role sets (groups marked neither nonpeer nor nat) */
	uint32_t config_flags; /* enum lx_config_flags */
	uint64_t *filter4;     /* LX_FILTER_WORDS: IPv4 /24s a site prefix touches */
	uint64_t *filter6;     /* LX_FILTER_WORDS: hashed IPv6 /32s a site prefix touches */
	uint32_t protected_groups;
	uint32_t flows_max; /* the site's `flows N`, 0 for LX_MAX_FLOWS */
	/* [group][proto][port] -> rule id: on the role's own port (listen, outbound-from) */
	uint16_t *rule_table;
	/* [group][proto][port] -> rule id: on the peer's port (outbound-to) */
	uint16_t *remote_table;
	uint32_t nremote;		    /* nonzero entries of remote_table */
	struct lx_port_groups *port_groups; /* [proto][port] -> bitmasks of groups */
	int nrules;			    /* = matrix nrules; rule id = index + 1 */
	uint8_t *active;		    /* [rule index] 1 when the rule's role is present */
	uint8_t *dscp;			    /* [rule index] tag-mode DSCP, LX_DSCP_KEEP */
	uint32_t *from_groups;		    /* [rule index] lx_rule_action.from_groups */
	uint32_t *rank;			    /* [rule index] matrix_rule_rank */
	uint16_t *ids;			    /* [rule index] id in the tables and counters */
	uint32_t max_id;		    /* highest id in use */
	int nactive;
	/* Media (user/media.c, compile_media); without it nothing is inspected. */
	uint8_t *media;			  /* [rule index] 1: UDP payloads inspected */
	uint8_t media_dscp[LX_MEDIA_MAX]; /* tag mode, `-` media services, per media kind */
	struct lx_payload_type payload[LX_PAYLOAD_TYPES]; /* tbl_payload */
	/* What the rule maps hold, by rule index (the key is ids[i]), from the arrays above
	 * and the matrix: tbl_actions and lx_rule_info. */
	struct lx_rule_action *actions;
	struct lx_rule_info *infos;
	/* tbl_icmp: the ICMP (family, type, code) keys allowed, the matrix's then the site's. */
	uint32_t *icmp_keys;
	int nicmp;
};

/* Rebuilds actions and infos after a change to the per-rule arrays (compile_media). */
int compile_rule_records(struct compiled *c, const struct matrix *m, struct text_error *err);

/* An id the attached maps already give a rule, so a reload can keep its counters. */
struct compile_old_rule {
	uint32_t id;
	struct lx_rule_info info;
};

/*
 * Reload: a rule identical to an attached one (role, service, transport, ports, kind) keeps
 * that one's id, hence its counters; other rules take ids no attached rule holds. Rewrites
 * the tables to the new ids. new_ids (may be NULL) lists which ids start from zero.
 */
int compile_assign_ids(struct compiled *c, const struct matrix *m,
		       const struct compile_old_rule *old, int nold, uint32_t rule_cap,
		       uint8_t *new_ids, struct text_error *err);

/*
 * Reload: out is c with the ids compile_assign_ids gives it against the attached rules, in
 * tables of its own; c is left as it is. Everything else out shares with c: release it with
 * compile_free_renumbered (before compile_free of c).
 */
int compile_renumbered(const struct compiled *c, const struct matrix *m,
		       const struct compile_old_rule *old, int nold, uint32_t rule_cap,
		       struct compiled *out, uint8_t *new_ids, struct text_error *err);
void compile_free_renumbered(struct compiled *out);

/* Everything the table maps hold, from a matrix and a site: the only place that reads them
 * for the maps (the loader writes what this returns). */
int compile_tables(const struct matrix *m, const struct site *s, struct compiled *c,
		   struct text_error *err);
void compile_free(struct compiled *c);

static inline size_t compiled_index(uint32_t group, int proto, uint32_t port)
{
	return ((size_t)group * LX_PROTO_MAX + (size_t)proto) * LX_PORTS + port;
}

static inline uint16_t compiled_rule_at(const struct compiled *c, uint32_t group, int proto,
					uint32_t port)
{
	return c->rule_table[compiled_index(group, proto, port)];
}

static inline uint16_t compiled_remote_at(const struct compiled *c, uint32_t group, int proto,
					  uint32_t port)
{
	return c->remote_table[compiled_index(group, proto, port)];
}

#endif

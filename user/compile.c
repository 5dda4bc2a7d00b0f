// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void compile_free(struct compiled *c)
{
	free(c->nat);
	void *owned[] = { c->addrs,	  c->filter4, c->filter6, c->rule_table,  c->remote_table,
			  c->port_groups, c->active,  c->dscp,	  c->from_groups, c->rank,
			  c->ids,	  c->media,   c->actions, c->infos,	  c->icmp_keys };
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		free(owned[i]);
	memset(c, 0, sizeof(*c));
}

int compile_rule_records(struct compiled *c, const struct matrix *m, struct text_error *err)
{
	if (!c->actions)
		c->actions = calloc((size_t)m->nrules + 1, sizeof(*c->actions));
	if (!c->infos)
		c->infos = calloc((size_t)m->nrules + 1, sizeof(*c->infos));
	if (!c->actions || !c->infos) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		const struct matrix_service *svc = &m->services[r->service];
		uint8_t media = c->media ? c->media[i] : 0;
		c->actions[i] = (struct lx_rule_action){ .dscp = c->dscp[i],
							 .kind = (__u8)r->kind,
							 .media = media,
							 .client = (__u8)m->roles[r->role].client,
							 .rank = c->rank[i],
							 .from_groups = c->from_groups[i] };
		struct lx_rule_info *info = &c->infos[i];
		*info = (struct lx_rule_info){ .port_lo = r->port_lo,
					       .port_hi = r->port_hi,
					       .proto = (__u8)r->proto,
					       .active = c->active[i],
					       .dscp = c->dscp[i],
					       .kind = (__u8)r->kind,
					       .media = media };
		text_copy(info->role, sizeof(info->role), m->roles[r->role].slug);
		text_copy(info->service, sizeof(info->service), svc->slug);
		text_copy(info->name, sizeof(info->name), svc->name);
	}
	return 0;
}

/* tbl_icmp's keys: the matrix's ICMP lines, then the site's allow-icmp. */
static int compile_icmp(const struct matrix *m, const struct site *s, struct compiled *c,
			struct text_error *err)
{
	const struct matrix_icmp *lists[] = { m->icmp, s->icmp };
	int counts[] = { m->nicmp, s->nicmp };
	c->icmp_keys = calloc((size_t)(m->nicmp + s->nicmp) + 1, sizeof(*c->icmp_keys));
	if (!c->icmp_keys) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	for (int l = 0; l < 2; l++)
		for (int i = 0; i < counts[l]; i++) {
			const struct matrix_icmp *e = &lists[l][i];
			c->icmp_keys[c->nicmp++] =
			    lx_icmp_key((__u32)e->family, (__u32)e->type,
					e->code < 0 ? LX_ICMP_ANY : (__u32)e->code);
		}
	return 0;
}

static int contains(const struct site_prefix *outer, const struct site_prefix *inner)
{
	if (outer->family != inner->family || outer->len > inner->len)
		return 0;
	int full = outer->len / 8, rest = outer->len % 8;
	if (memcmp(outer->addr, inner->addr, (size_t)full))
		return 0;
	if (!rest)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (outer->addr[full] & mask) == (inner->addr[full] & mask);
}

static int group_for(struct compiled *c, uint64_t roles, int nonpeer, int nat)
{
	for (int g = 1; g < c->ngroups; g++)
		if (c->group_roles[g] == roles && c->group_nonpeer[g] == nonpeer &&
		    c->group_nat[g] == nat)
			return g;
	if (c->ngroups == LX_MAX_GROUPS)
		return -1;
	c->group_roles[c->ngroups] = roles;
	c->group_nonpeer[c->ngroups] = (uint8_t)nonpeer;
	c->group_nat[c->ngroups] = (uint8_t)nat;
	return c->ngroups++;
}

/*
 * An address holds the roles of every site prefix that contains it. The site's prefixes
 * are sorted by address then length, so a prefix's enclosing prefixes come before it and
 * the nearest one is on top of a stack: one pass, O(n), whatever the number of prefixes.
 */
static int assign_groups(const struct matrix *m, const struct site *s, struct compiled *c,
			 struct text_error *err)
{
	int *stack = malloc(sizeof(int) * (size_t)(s->nprefixes + 1));
	uint64_t *acc = malloc(sizeof(uint64_t) * (size_t)(s->nprefixes + 1));
	/* Room for one broadcast address per IPv4 prefix (add_broadcasts). */
	c->addrs = calloc((size_t)s->nprefixes * 2 + (size_t)s->nnat + 1, sizeof(*c->addrs));
	if (!stack || !acc || !c->addrs) {
		free(stack);
		free(acc);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	int depth = 0, rc = 0;
	c->ngroups = 1;
	for (int i = 0; i < s->nprefixes; i++) {
		const struct site_prefix *p = &s->prefixes[i];
		while (depth && !contains(&s->prefixes[stack[depth - 1]], p))
			depth--;
		acc[i] = p->roles | (depth ? acc[stack[depth - 1]] : 0);
		stack[depth++] = i;

		int g = group_for(c, matrix_role_closure(m, acc[i]), 0, 0);
		if (g < 0) {
			snprintf(
			    err->msg, sizeof(err->msg),
			    "%s:%d: this prefix makes more than %d distinct combinations of roles",
			    s->path, p->line, LX_MAX_GROUPS - 1);
			rc = -1;
			break;
		}
		struct compiled_addr *a = &c->addrs[c->naddrs++];
		a->family = p->family;
		memcpy(a->addr, p->addr, sizeof(a->addr));
		a->len = p->len;
		a->group = (uint32_t)g;
		int host = p->len == (p->family == 4 ? 32 : 128);
		if (p->family == 4)
			host ? c->hosts4++ : c->nets4++;
		else
			host ? c->hosts6++ : c->nets6++;
	}
	free(stack);
	free(acc);
	return rc;
}

static void set_config_flags(struct compiled *c)
{
	c->config_flags = LX_CFG_FILTER6 | (c->hosts4 + c->broadcasts4 ? LX_CFG_HOST4 : 0) |
			  (c->nets4 ? LX_CFG_NET4 : 0) | (c->hosts6 ? LX_CFG_HOST6 : 0) |
			  (c->nets6 ? LX_CFG_NET6 : 0);
}

static int addr_cmp(const void *a, const void *b)
{
	const struct compiled_addr *x = a, *y = b;
	int r = memcmp(x->addr, y->addr, 4);
	return r ? r : y->len - x->len; /* longest prefix first */
}

/*
 * The last address of every listed IPv4 prefix of /30 or shorter is its subnet's broadcast
 * address: it keeps the roles it holds (rules, protection) but is never a client's peer
 * (maps/README.md, "Clients"). It gets its own host entry, in a group marked non-peer, with
 * the roles of the longest such prefix holding it; a listed /31 or /32 that covers it is a
 * host the site named, and stays a peer.
 */
static int add_broadcasts(const struct site *s, struct compiled *c, struct text_error *err)
{
	int first = c->naddrs, n = 0;
	for (int i = 0; i < first; i++) {
		const struct compiled_addr *p = &c->addrs[i];
		if (p->family != 4 || p->len > 30)
			continue;
		struct compiled_addr *b = &c->addrs[first + n++];
		*b = *p;
		uint32_t host = (uint32_t)p->addr[0] << 24 | (uint32_t)p->addr[1] << 16 |
				(uint32_t)p->addr[2] << 8 | p->addr[3];
		host |= p->len ? (1u << (32 - p->len)) - 1 : 0xffffffffu;
		for (int k = 0; k < 4; k++)
			b->addr[k] = (uint8_t)(host >> (24 - 8 * k));
	}
	qsort(c->addrs + first, (size_t)n, sizeof(*c->addrs), addr_cmp);
	int kept = 0;
	for (int i = 0; i < n; i++) {
		struct compiled_addr b = c->addrs[first + i];
		if (kept && !memcmp(c->addrs[first + kept - 1].addr, b.addr, 4))
			continue; /* a longer prefix with the same broadcast address came first */
		int named = 0;
		for (int k = 0; k < s->nprefixes && !named; k++) {
			const struct site_prefix *p = &s->prefixes[k];
			named = p->family == 4 && p->len > 30 && !memcmp(p->addr, b.addr, 3) &&
				(p->addr[3] ^ b.addr[3]) >> (32 - p->len) == 0;
		}
		if (named)
			continue;
		int g = group_for(c, c->group_roles[b.group], 1, 0);
		if (g < 0) {
			snprintf(err->msg, sizeof(err->msg),
				 "%s: the site's prefixes make more than %d distinct combinations "
				 "of roles (broadcast addresses included)",
				 s->path, LX_MAX_GROUPS - 1);
			return -1;
		}
		b.group = (uint32_t)g;
		b.len = 32;
		c->addrs[first + kept++] = b;
		c->broadcasts4++;
	}
	c->naddrs = first + kept;
	return 0;
}

/*
 * `nat PUBLIC PRIVATE`: the public address is a host entry holding the private host's roles,
 * in a group of its own marked nat (the program keys its flows by the private address). It
 * wins over a broadcast entry of the same address: a host the site named.
 */
static int add_nat(const struct site *s, struct compiled *c, struct text_error *err)
{
	if (s->nnat) {
		c->nat = malloc(sizeof(*c->nat) * (size_t)s->nnat);
		if (!c->nat) {
			snprintf(err->msg, sizeof(err->msg), "out of memory");
			return -1;
		}
		memcpy(c->nat, s->nat, sizeof(*c->nat) * (size_t)s->nnat);
		c->nnat = s->nnat;
	}
	for (int i = 0; i < s->nnat; i++) {
		const struct site_nat *n = &s->nat[i];
		int bits = n->family == 4 ? 32 : 128;
		const struct compiled_addr *inside = NULL;
		for (int k = 0; k < c->naddrs && !inside; k++)
			if (c->addrs[k].family == n->family && c->addrs[k].len == bits &&
			    !c->group_nonpeer[c->addrs[k].group] &&
			    !memcmp(c->addrs[k].addr, n->private_addr, 16))
				inside = &c->addrs[k];
		if (!inside) { /* site_load checked it: a listed host */
			snprintf(err->msg, sizeof(err->msg), "%s:%d: nat: no such private host",
				 s->path, n->line);
			return -1;
		}
		int g = group_for(c, c->group_roles[inside->group], 0, 1);
		if (g < 0) {
			snprintf(err->msg, sizeof(err->msg),
				 "%s:%d: this nat line makes more than %d distinct combinations of "
				 "roles (NAT'd public addresses are their own)",
				 s->path, n->line, LX_MAX_GROUPS - 1);
			return -1;
		}
		int k = 0;
		while (k < c->naddrs &&
		       !(c->addrs[k].family == n->family && c->addrs[k].len == bits &&
			 !memcmp(c->addrs[k].addr, n->public_addr, 16)))
			k++;
		if (k < c->naddrs) /* only a broadcast entry can be the same host */
			c->broadcasts4--;
		if (n->family == 4)
			c->hosts4++;
		else
			c->hosts6++;
		struct compiled_addr *a = &c->addrs[k == c->naddrs ? c->naddrs++ : k];
		a->family = n->family;
		memcpy(a->addr, n->public_addr, 16);
		a->len = bits;
		a->group = (uint32_t)g;
	}
	return 0;
}

static void set_bit(uint64_t *words, uint32_t bit)
{
	words[bit / 64] |= 1ULL << (bit % 64);
}

/* Marks the filter bits of every site prefix (see lx_filter4_bit in the shared header). */
static void build_filters(const struct site *s, struct compiled *c)
{
	for (int i = 0; i < s->nprefixes; i++) {
		const struct site_prefix *p = &s->prefixes[i];
		uint32_t top = (uint32_t)p->addr[0] << 24 | (uint32_t)p->addr[1] << 16 |
			       (uint32_t)p->addr[2] << 8 | p->addr[3];
		if (p->family == 6) {
			if (p->len < 32) /* too many /32s to mark: look every address up */
				c->config_flags &= ~(uint32_t)LX_CFG_FILTER6;
			else
				set_bit(c->filter6, lx_filter6_bit(top));
			continue;
		}
		uint32_t first = lx_filter4_bit(top);
		uint32_t count = p->len >= 24 ? 1 : 1u << (24 - p->len);
		for (uint32_t k = 0; k < count; k++)
			set_bit(c->filter4, first + k);
	}
	for (int i = 0; i < s->nnat; i++) {
		const uint8_t *a = s->nat[i].public_addr;
		uint32_t top =
		    (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
		if (s->nat[i].family == 6)
			set_bit(c->filter6, lx_filter6_bit(top));
		else
			set_bit(c->filter4, lx_filter4_bit(top));
	}
}

/* Rules of the local table are keyed by the role's own port, the remote table's by the peer's. */
static int in_remote_table(const struct matrix_rule *r)
{
	return r->kind == LX_KIND_OUTBOUND_TO;
}

/* The highest rank wins (matrix_rule_rank): the same order that settles the two ends. */
static void resolve(const struct matrix *m, struct compiled *c, int g, int proto, int remote,
		    uint32_t *rank)
{
	uint16_t *best =
	    (remote ? c->remote_table : c->rule_table) + compiled_index((uint32_t)g, proto, 0);
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		if (r->proto != proto || in_remote_table(r) != remote ||
		    !(c->group_roles[g] & (1ULL << r->role)))
			continue;
		uint32_t w = c->rank[i];
		for (uint32_t port = r->port_lo; port <= r->port_hi; port++) {
			if (best[port] && rank[port] >= w)
				continue;
			best[port] = (uint16_t)(i + 1);
			rank[port] = w;
		}
	}
	for (uint32_t port = 0; port < LX_PORTS; port++) {
		if (!best[port])
			continue;
		struct lx_port_groups *pg = &c->port_groups[lx_port_index((uint32_t)proto, port)];
		if (remote) {
			pg->remote |= 1u << g;
			c->nremote++;
		} else {
			pg->local |= 1u << g;
		}
	}
}

static void resolve_dscp(const struct matrix *m, const struct site *s, struct compiled *c)
{
	for (int i = 0; i < m->nrules; i++) {
		int dscp = site_service_dscp(m, s, m->rules[i].service);
		c->dscp[i] = dscp < 0 ? LX_DSCP_KEEP : (uint8_t)dscp;
	}
}

int compile_tables(const struct matrix *m, const struct site *s, struct compiled *c,
		   struct text_error *err)
{
	size_t table = (size_t)LX_MAX_GROUPS * LX_PROTO_MAX * LX_PORTS;
	memset(c, 0, sizeof(*c));
	c->nrules = m->nrules;
	c->rule_table = calloc(table, sizeof(uint16_t));
	c->remote_table = calloc(table, sizeof(uint16_t));
	c->port_groups = calloc((size_t)LX_PROTO_MAX * LX_PORTS, sizeof(*c->port_groups));
	c->active = calloc((size_t)m->nrules + 1, 1);
	c->dscp = calloc((size_t)m->nrules + 1, 1);
	c->from_groups = calloc((size_t)m->nrules + 1, sizeof(*c->from_groups));
	c->rank = calloc((size_t)m->nrules + 1, sizeof(*c->rank));
	c->ids = calloc((size_t)m->nrules + 1, sizeof(*c->ids));
	c->filter4 = calloc(LX_FILTER_WORDS, sizeof(uint64_t));
	c->filter6 = calloc(LX_FILTER_WORDS, sizeof(uint64_t));
	uint32_t *width = malloc(sizeof(uint32_t) * LX_PORTS);
	if (!c->rule_table || !c->remote_table || !c->port_groups || !c->active || !c->dscp ||
	    !c->from_groups || !c->rank || !c->ids || !c->filter4 || !c->filter6 || !width) {
		free(width);
		compile_free(c);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	for (int i = 0; i < m->nrules; i++)
		c->rank[i] = matrix_rule_rank(m, i);
	if (assign_groups(m, s, c, err) < 0 || add_broadcasts(s, c, err) < 0 ||
	    add_nat(s, c, err) < 0) {
		free(width);
		compile_free(c);
		return -1;
	}
	set_config_flags(c);
	build_filters(s, c);
	c->flows_max = s->flows_max;
	uint64_t present = 0, servers = 0;
	for (int r = 0; r < m->nroles; r++)
		if (!m->roles[r].client)
			servers |= 1ULL << r;
	for (int g = 1; g < c->ngroups; g++) {
		if (c->group_roles[g] & servers)
			c->server_groups |= 1u << g;
		if (c->group_roles[g] & ~servers)
			c->client_groups |= 1u << g;
		present |= c->group_roles[g];
		if (c->group_roles[g] && !c->group_nonpeer[g])
			c->peer_groups |= 1u << g;
		c->role_groups += !c->group_nonpeer[g] && !c->group_nat[g];
		if (c->group_nat[g])
			c->nat_groups |= 1u << g;
		if (c->group_roles[g] & s->protected_roles)
			c->protected_groups |= 1u << g;
		for (int proto = 0; proto < LX_PROTO_MAX; proto++) {
			resolve(m, c, g, proto, 0, width);
			resolve(m, c, g, proto, 1, width);
		}
	}
	/* Each port also says which groups have it on the other transport: a packet to a
	 * protected host on a port it has only there is refused as `transport`, with no second
	 * lookup on the drop path. */
	for (uint32_t port = 0; port < LX_PORTS; port++) {
		struct lx_port_groups *tcp = &c->port_groups[lx_port_index(LX_PROTO_TCP, port)];
		struct lx_port_groups *udp = &c->port_groups[lx_port_index(LX_PROTO_UDP, port)];
		tcp->local_other = udp->local;
		udp->local_other = tcp->local;
	}
	if (c->nremote > LX_MAX_REMOTE) {
		snprintf(
		    err->msg, sizeof(err->msg),
		    "%s: outbound 'to' rules expand to %u (group, transport, port) entries, more "
		    "than %d: use fewer or narrower port ranges",
		    m->path, c->nremote, LX_MAX_REMOTE);
		free(width);
		compile_free(c);
		return -1;
	}
	for (int i = 0; i < m->nrules; i++)
		if (present & (1ULL << m->rules[i].role)) {
			c->active[i] = 1;
			c->nactive++;
		}
	resolve_dscp(m, s, c);
	/* `from ROLE,...`: the groups holding one of those roles (includes= closure). */
	for (int i = 0; i < m->nrules; i++) {
		if (!m->rules[i].from_roles)
			continue;
		c->from_groups[i] = LX_FROM_RESTRICTED;
		for (int g = 1; g < c->ngroups; g++)
			if (c->group_roles[g] & m->rules[i].from_roles)
				c->from_groups[i] |= 1u << g;
	}
	for (int i = 0; i < m->nrules; i++)
		c->ids[i] = (uint16_t)(i + 1);
	c->max_id = (uint32_t)m->nrules;
	memset(c->media_dscp, LX_DSCP_KEEP, sizeof(c->media_dscp));
	free(width);
	if (compile_rule_records(c, m, err) < 0 || compile_icmp(m, s, c, err) < 0) {
		compile_free(c);
		return -1;
	}
	return 0;
}

static int same_rule(const struct matrix *m, const struct matrix_rule *r,
		     const struct lx_rule_info *info)
{
	return info->kind == r->kind && info->proto == r->proto && info->port_lo == r->port_lo &&
	       info->port_hi == r->port_hi && !strcmp(info->role, m->roles[r->role].slug) &&
	       !strcmp(info->service, m->services[r->service].slug);
}

static void renumber(uint16_t *table, size_t n, const uint16_t *ids)
{
	for (size_t i = 0; i < n; i++)
		if (table[i])
			table[i] = ids[table[i] - 1];
}

int compile_assign_ids(struct compiled *c, const struct matrix *m,
		       const struct compile_old_rule *old, int nold, uint32_t rule_cap,
		       uint8_t *new_ids, struct text_error *err)
{
	uint8_t *taken = calloc(rule_cap, 1);
	if (!taken) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	for (int k = 0; k < nold; k++)
		if (old[k].id < rule_cap)
			taken[old[k].id] = 1;
	uint32_t next = 1;
	c->max_id = 0;
	for (int i = 0; i < m->nrules; i++) {
		uint32_t id = 0;
		for (int k = 0; k < nold && !id; k++)
			if (same_rule(m, &m->rules[i], &old[k].info))
				id = old[k].id;
		if (!id) {
			while (next < rule_cap && taken[next])
				next++;
			if (next >= rule_cap) {
				free(taken);
				snprintf(
				    err->msg, sizeof(err->msg),
				    "the new matrix needs more than the %u rule ids the attached "
				    "maps hold: detach every interface and attach again",
				    rule_cap - 1);
				return -1;
			}
			id = next;
			taken[id] = 1;
			if (new_ids)
				new_ids[id] = 1;
		}
		c->ids[i] = (uint16_t)id;
		if (id > c->max_id)
			c->max_id = id;
	}
	free(taken);
	size_t table = (size_t)LX_MAX_GROUPS * LX_PROTO_MAX * LX_PORTS;
	renumber(c->rule_table, table, c->ids);
	renumber(c->remote_table, table, c->ids);
	return 0;
}

int compile_renumbered(const struct compiled *c, const struct matrix *m,
		       const struct compile_old_rule *old, int nold, uint32_t rule_cap,
		       struct compiled *out, uint8_t *new_ids, struct text_error *err)
{
	size_t table = (size_t)LX_MAX_GROUPS * LX_PROTO_MAX * LX_PORTS;
	*out = *c;
	out->ids = malloc(((size_t)c->nrules + 1) * sizeof(*out->ids));
	out->rule_table = malloc(table * sizeof(*out->rule_table));
	out->remote_table = malloc(table * sizeof(*out->remote_table));
	if (!out->ids || !out->rule_table || !out->remote_table) {
		compile_free_renumbered(out);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	memcpy(out->ids, c->ids, ((size_t)c->nrules + 1) * sizeof(*out->ids));
	memcpy(out->rule_table, c->rule_table, table * sizeof(*out->rule_table));
	memcpy(out->remote_table, c->remote_table, table * sizeof(*out->remote_table));
	if (compile_assign_ids(out, m, old, nold, rule_cap, new_ids, err) < 0) {
		compile_free_renumbered(out);
		return -1;
	}
	return 0;
}

void compile_free_renumbered(struct compiled *out)
{
	free(out->ids);
	free(out->rule_table);
	free(out->remote_table);
	memset(out, 0, sizeof(*out));
}

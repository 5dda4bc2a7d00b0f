// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Parses a site file (maps/README.md): one line per role, `ROLE PREFIX [PREFIX ...]`.
 * A bare address is a host (/32 or /128). A prefix named on several lines, or under
 * several roles, is one prefix holding all of those roles. Keywords:
 *   protect ROLE [ROLE ...]             enforce the matrix in front of these roles
 *   dscp SERVICE VALUE|-                the tag mode's DSCP for a service
 *   allow-icmp ipv4|ipv6 TYPE[:CODE] ...  ICMP protected hosts accept beyond the matrix's
 *   qos PROFILE                         the DSCP profile of maps/qos.profiles (sfb, teams, ...)
 *   flows N                             size of the flow table (connections protected hosts
 *                                       open), 1024..4194304, default LX_MAX_FLOWS
 *   nat PUBLIC PRIVATE                  a 1:1 NAT on this gateway: PUBLIC is the listed host
 *                                       PRIVATE (same roles, same flows)
 *   allow-outbound tcp|udp PORT[-PORT]  protected hosts open connections to those ports too
 * Keywords are not role slugs, so a matrix cannot declare a role of that name.
 */
#include "site.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void site_free(struct site *s)
{
	free(s->prefixes);
	s->prefixes = NULL;
	s->nprefixes = 0;
	free(s->nat);
	s->nat = NULL;
	s->nnat = 0;
	qos_profile_free(&s->qos);
}

int site_service_dscp(const struct matrix *m, const struct site *s, int service)
{
	for (int k = 0; k < s->ndscp; k++)
		if (s->dscp[k].service == service)
			return s->dscp[k].dscp;
	if (s->qos_line && s->qos.dscp && service < s->qos.nservices &&
	    s->qos.dscp[service] != QOS_UNSET)
		return s->qos.dscp[service];
	return m->services[service].dscp;
}

static int parse_qos(struct text_file *tf, struct text_error *err, const struct matrix *m,
		     struct site *s, const struct text_tokens *t)
{
	if (t->n != 2)
		return text_fail(tf, err, "expected 'qos PROFILE' (sfb, teams, expressroute, ...)");
	if (s->qos_line)
		return text_fail(tf, err, "qos: a profile is already selected at line %d",
				 s->qos_line);
	struct text_error why;
	if (qos_profile_load(m, t->tok[1], &s->qos, &why) < 0)
		return text_fail(tf, err, "qos: %s", why.msg);
	s->qos_line = tf->line;
	return 0;
}

/* A profile with an `allow` list: every DSCP written must be one it allows. */
static int check_allowed(const struct matrix *m, struct site *s, struct text_error *err)
{
	if (!s->qos_line || !s->qos.allowed)
		return 0;
	char allowed[160];
	qos_format_allowed(s->qos.allowed, allowed, sizeof(allowed));
	for (int svc = 0; svc < m->nservices; svc++) {
		int v = site_service_dscp(m, s, svc);
		if (v < 0 || (s->qos.allowed & (1ULL << v)))
			continue;
		for (int k = 0; k < s->ndscp; k++)
			if (s->dscp[k].service == svc) {
				snprintf(err->msg, sizeof(err->msg),
					 "%s:%d: dscp %s %d: the %s profile allows only DSCP %s "
					 "(%s:%d)",
					 s->path, s->dscp[k].line, m->services[svc].slug, v,
					 s->qos.name, allowed, s->qos.path, s->qos.allow_line);
				return -1;
			}
		snprintf(
		    err->msg, sizeof(err->msg),
		    "%s:%d: qos %s: service %s keeps DSCP %d, which the profile does not allow "
		    "(only %s): add a dscp line for it",
		    s->path, s->qos_line, s->qos.name, m->services[svc].slug, v, allowed);
		return -1;
	}
	return 0;
}

static int host_bits_set(const struct site_prefix *p)
{
	int bytes = p->family == 4 ? 4 : 16;
	for (int bit = p->len; bit < bytes * 8; bit++)
		if (p->addr[bit / 8] & (0x80 >> (bit % 8)))
			return 1;
	return 0;
}

int site_parse_prefix(const char *text, struct site_prefix *p, char *why, size_t whylen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned long len;

	memset(p, 0, sizeof(*p));
	if (strlen(text) >= sizeof(buf)) {
		snprintf(why, whylen, "'%.60s...' is not an IP address or prefix", text);
		return -1;
	}
	text_copy(buf, sizeof(buf), text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (strchr(buf, '%')) {
		snprintf(why, whylen, "'%s': scope ids (%%IFACE) have no meaning in a site file",
			 text);
		return -1;
	}
	if (inet_pton(AF_INET, buf, p->addr) == 1)
		p->family = 4;
	else if (inet_pton(AF_INET6, buf, p->addr) == 1)
		p->family = 6;
	else {
		snprintf(why, whylen, "'%s' is not an IPv4 or IPv6 address", buf);
		return -1;
	}
	int max = p->family == 4 ? 32 : 128;
	p->len = max;
	if (slash) {
		if (text_parse_uint(slash + 1, 0, (unsigned long)max, &len) < 0) {
			snprintf(why, whylen, "prefix length '/%s' is not 0..%d", slash + 1, max);
			return -1;
		}
		p->len = (int)len;
	}
	if (host_bits_set(p)) {
		struct site_prefix net = *p;
		for (int bit = p->len; bit < max; bit++)
			net.addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
		char fixed[64];
		site_format_prefix(&net, fixed, sizeof(fixed));
		snprintf(why, whylen, "'%s' has host bits set beyond /%d (did you mean %s?)", text,
			 p->len, fixed);
		return -1;
	}
	return 0;
}

void site_format_prefix(const struct site_prefix *p, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, addr, sizeof(addr));
	snprintf(buf, len, "%s/%d", addr, p->len);
}

static int add_prefix(struct text_file *tf, struct text_error *err, struct site *s,
		      const struct site_prefix *p, int role)
{
	if (s->nprefixes == 0 || (s->nprefixes & (s->nprefixes - 1)) == 0) {
		size_t cap = s->nprefixes ? (size_t)s->nprefixes * 2 : 64;
		struct site_prefix *grown = realloc(s->prefixes, cap * sizeof(*grown));
		if (!grown)
			return text_fail(tf, err, "out of memory");
		s->prefixes = grown;
	}
	struct site_prefix *q = &s->prefixes[s->nprefixes++];
	*q = *p;
	q->roles = 1ULL << role;
	q->line = tf->line;
	return 0;
}

static int prefix_cmp(const void *a, const void *b)
{
	const struct site_prefix *x = a, *y = b;
	if (x->family != y->family)
		return x->family - y->family;
	int c = memcmp(x->addr, y->addr, 16);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len - y->len;
	return x->line - y->line;
}

/* One entry per prefix: the same prefix on several lines holds all their roles. */
static void merge_duplicates(struct site *s, const struct matrix *m)
{
	int out = 0;
	if (s->nprefixes == 0)
		return;
	qsort(s->prefixes, (size_t)s->nprefixes, sizeof(*s->prefixes), prefix_cmp);
	for (int i = 0; i < s->nprefixes; i++) {
		struct site_prefix *p = &s->prefixes[i];
		struct site_prefix *last = out ? &s->prefixes[out - 1] : NULL;
		if (last && last->family == p->family && last->len == p->len &&
		    !memcmp(last->addr, p->addr, 16)) {
			uint64_t again = last->roles & p->roles;
			for (int r = 0; again && r < m->nroles; r++)
				if (again & (1ULL << r)) {
					char text[64];
					site_format_prefix(p, text, sizeof(text));
					fprintf(
					    stderr, "%s:%d: warning: %s is already %s (line %d)\n",
					    s->path, p->line, text, m->roles[r].slug, last->line);
					s->nwarnings++;
				}
			last->roles |= p->roles;
			continue;
		}
		s->prefixes[out++] = *p;
	}
	s->nprefixes = out;
}

static int parse_protect(struct text_file *tf, struct text_error *err, const struct matrix *m,
			 struct site *s, const struct text_tokens *t)
{
	if (t->n < 2)
		return text_fail(tf, err, "expected 'protect ROLE [ROLE ...]'");
	for (int i = 1; i < t->n; i++) {
		int role = matrix_find_role(m, t->tok[i]);
		if (role < 0)
			return text_fail(tf, err, "protect: unknown role '%s'", t->tok[i]);
		s->protected_roles |= 1ULL << role;
	}
	if (!s->protect_line)
		s->protect_line = tf->line;
	return 0;
}

static int parse_dscp(struct text_file *tf, struct text_error *err, const struct matrix *m,
		      struct site *s, const struct text_tokens *t)
{
	int v;
	if (t->n != 3)
		return text_fail(tf, err, "expected 'dscp SERVICE VALUE' (VALUE 0..63 or -)");
	int svc = matrix_find_service(m, t->tok[1]);
	if (svc < 0)
		return text_fail(tf, err, "dscp: unknown service '%s' of the %s matrix", t->tok[1],
				 m->product);
	if (matrix_dscp_value(t->tok[2], &v) < 0)
		return text_fail(tf, err, "dscp: '%s' is not 0..63 or '-'", t->tok[2]);
	for (int i = 0; i < s->ndscp; i++)
		if (s->dscp[i].service == svc)
			return text_fail(tf, err, "dscp: service '%s' already set at line %d",
					 t->tok[1], s->dscp[i].line);
	if (s->ndscp == SITE_MAX_DSCP)
		return text_fail(tf, err, "more than %d dscp lines", SITE_MAX_DSCP);
	struct site_dscp *d = &s->dscp[s->ndscp++];
	d->service = svc;
	d->dscp = v;
	d->line = tf->line;
	return 0;
}

static int parse_allow_icmp(struct text_file *tf, struct text_error *err, struct site *s,
			    const struct text_tokens *t)
{
	char why[128];
	if (t->n < 3)
		return text_fail(tf, err, "expected 'allow-icmp ipv4|ipv6 TYPE[:CODE] ...'");
	for (int i = 2; i < t->n; i++) {
		if (s->nicmp == MATRIX_MAX_ICMP)
			return text_fail(tf, err, "more than %d allowed ICMP types",
					 MATRIX_MAX_ICMP);
		struct matrix_icmp *ic = &s->icmp[s->nicmp];
		if (matrix_parse_icmp(t->tok[1], t->tok[i], ic, why, sizeof(why)) < 0)
			return text_fail(tf, err, "allow-icmp: %s", why);
		ic->line = tf->line;
		text_copy(ic->name, sizeof(ic->name), "site");
		s->nicmp++;
	}
	return 0;
}

static int parse_flows(struct text_file *tf, struct text_error *err, struct site *s,
		       const struct text_tokens *t)
{
	unsigned long v = 0;
	if (t->n != 2 || text_parse_uint(t->tok[1], SITE_MIN_FLOWS, SITE_MAX_FLOWS, &v) < 0)
		return text_fail(tf, err, "expected 'flows N' (N %u..%u)", SITE_MIN_FLOWS,
				 SITE_MAX_FLOWS);
	if (s->flows_line)
		return text_fail(tf, err, "flows: already set at line %d", s->flows_line);
	s->flows_max = (uint32_t)v;
	s->flows_line = tf->line;
	return 0;
}

/* An address (no /LEN) for a `nat` line. */
static int parse_host(struct text_file *tf, struct text_error *err, const char *text,
		      struct site_prefix *p)
{
	char why[256];
	if (site_parse_prefix(text, p, why, sizeof(why)) < 0)
		return text_fail(tf, err, "nat: %s", why);
	if (p->len != (p->family == 4 ? 32 : 128) || strchr(text, '/'))
		return text_fail(tf, err, "nat: '%s': expected one address, not a prefix", text);
	int multicast = p->family == 4 ? p->addr[0] >= 224 : p->addr[0] == 0xff;
	if (multicast)
		return text_fail(tf, err, "nat: '%s' is a multicast or broadcast address", text);
	return 0;
}

static int parse_nat(struct text_file *tf, struct text_error *err, struct site *s,
		     const struct text_tokens *t)
{
	struct site_prefix pub, priv;
	char text[64];
	if (t->n != 3 || t->quoted[1] || t->quoted[2])
		return text_fail(tf, err, "expected 'nat PUBLIC PRIVATE' (two addresses)");
	if (parse_host(tf, err, t->tok[1], &pub) < 0 || parse_host(tf, err, t->tok[2], &priv) < 0)
		return -1;
	if (pub.family != priv.family)
		return text_fail(tf, err, "nat: %s and %s are not of one address family", t->tok[1],
				 t->tok[2]);
	if (!memcmp(pub.addr, priv.addr, 16))
		return text_fail(tf, err, "nat: the public and the private address are the same");
	for (int i = 0; i < s->nnat; i++) {
		const struct site_nat *o = &s->nat[i];
		if (o->family != pub.family)
			continue;
		const uint8_t *clash = !memcmp(o->public_addr, pub.addr, 16)	 ? pub.addr
				       : !memcmp(o->private_addr, priv.addr, 16) ? priv.addr
				       : !memcmp(o->public_addr, priv.addr, 16)	 ? priv.addr
				       : !memcmp(o->private_addr, pub.addr, 16)	 ? pub.addr
										 : NULL;
		if (!clash)
			continue;
		struct site_prefix c = { .family = pub.family, .len = 0 };
		memcpy(c.addr, clash, 16);
		site_format_prefix(&c, text, sizeof(text));
		*strchr(text, '/') = '\0';
		return text_fail(tf, err,
				 "nat: %s is already in the nat line at line %d (1:1: one public "
				 "address per host)",
				 text, o->line);
	}
	if (s->nnat == LX_MAX_NAT)
		return text_fail(tf, err, "more than %d nat lines", LX_MAX_NAT);
	if (!s->nat && !(s->nat = calloc(LX_MAX_NAT, sizeof(*s->nat))))
		return text_fail(tf, err, "out of memory");
	struct site_nat *n = &s->nat[s->nnat++];
	n->family = pub.family;
	memcpy(n->public_addr, pub.addr, 16);
	memcpy(n->private_addr, priv.addr, 16);
	n->line = tf->line;
	return 0;
}

static int parse_allow_outbound(struct text_file *tf, struct text_error *err, struct site *s,
				const struct text_tokens *t)
{
	char why[96];
	if (t->n != 3)
		return text_fail(tf, err, "expected 'allow-outbound tcp|udp PORT[-PORT]'");
	struct site_outbound o = { .proto = matrix_proto_parse(t->tok[1]), .line = tf->line };
	if (o.proto < 0)
		return text_fail(tf, err, "allow-outbound: transport '%s' is not tcp or udp",
				 t->tok[1]);
	if (matrix_parse_ports(t->tok[2], &o.port_lo, &o.port_hi, why, sizeof(why)) < 0)
		return text_fail(tf, err, "allow-outbound: %s", why);
	for (int i = 0; i < s->noutbound; i++)
		if (s->outbound[i].proto == o.proto && s->outbound[i].port_lo == o.port_lo &&
		    s->outbound[i].port_hi == o.port_hi)
			return text_fail(tf, err,
					 "allow-outbound: %s %s already allowed at line %d",
					 t->tok[1], t->tok[2], s->outbound[i].line);
	if (s->noutbound == SITE_MAX_OUTBOUND)
		return text_fail(tf, err, "more than %d allow-outbound lines", SITE_MAX_OUTBOUND);
	s->outbound[s->noutbound++] = o;
	return 0;
}

/*
 * Once the whole file is read: each nat line's private address is a host the site lists
 * (a /32 or /128 line: its roles are the public address's), and no public address is listed
 * itself (it would hold two sets of roles).
 */
static int check_nat(const struct site *s, struct text_error *err)
{
	for (int i = 0; i < s->nnat; i++) {
		const struct site_nat *n = &s->nat[i];
		int bits = n->family == 4 ? 32 : 128, host = 0;
		for (int k = 0; k < s->nprefixes; k++) {
			const struct site_prefix *p = &s->prefixes[k];
			if (p->family != n->family || p->len != bits)
				continue;
			if (!memcmp(p->addr, n->public_addr, 16)) {
				struct site_prefix c = *p;
				char text[64];
				site_format_prefix(&c, text, sizeof(text));
				*strchr(text, '/') = '\0';
				snprintf(err->msg, sizeof(err->msg),
					 "%s:%d: nat: the public address %s is listed at line %d: "
					 "list only the private one, the nat line gives the public "
					 "one its roles",
					 s->path, n->line, text, p->line);
				return -1;
			}
			host |= !memcmp(p->addr, n->private_addr, 16);
		}
		if (!host) {
			struct site_prefix c = { .family = n->family, .len = bits };
			char text[64];
			memcpy(c.addr, n->private_addr, 16);
			site_format_prefix(&c, text, sizeof(text));
			*strchr(text, '/') = '\0';
			snprintf(err->msg, sizeof(err->msg),
				 "%s:%d: nat: the private address %s is no host the site lists: "
				 "list it under its role (e.g. 'edge-external %s')",
				 s->path, n->line, text, text);
			return -1;
		}
	}
	return 0;
}

const uint8_t *site_nat_private(const struct site *s, int family, const uint8_t *addr)
{
	for (int i = 0; i < s->nnat; i++)
		if (s->nat[i].family == family &&
		    !memcmp(s->nat[i].public_addr, addr, family == 4 ? 4 : 16))
			return s->nat[i].private_addr;
	return NULL;
}

int site_add_outbound_rules(struct matrix *m, const struct site *s, struct text_error *err)
{
	for (int i = 0; i < s->noutbound; i++) {
		const struct site_outbound *o = &s->outbound[i];
		for (int role = 0; role < m->nroles; role++)
			if ((s->protected_roles & (1ULL << role)) &&
			    matrix_add_outbound(m, role, o->proto, o->port_lo, o->port_hi, s->path,
						o->line, err) < 0)
				return -1;
	}
	return 0;
}

static int parse_line(struct text_file *tf, struct text_error *err, const struct matrix *m,
		      struct site *s, const struct text_tokens *t)
{
	const char *slug = t->tok[0];
	if (t->quoted[0])
		return text_fail(tf, err,
				 "a line starts with a role or keyword, not a quoted name");
	if (!strcmp(slug, "protect"))
		return parse_protect(tf, err, m, s, t);
	if (!strcmp(slug, "dscp"))
		return parse_dscp(tf, err, m, s, t);
	if (!strcmp(slug, "allow-icmp"))
		return parse_allow_icmp(tf, err, s, t);
	if (!strcmp(slug, "qos"))
		return parse_qos(tf, err, m, s, t);
	if (!strcmp(slug, "flows"))
		return parse_flows(tf, err, s, t);
	if (!strcmp(slug, "nat"))
		return parse_nat(tf, err, s, t);
	if (!strcmp(slug, "allow-outbound"))
		return parse_allow_outbound(tf, err, s, t);
	int role = matrix_find_role(m, slug);
	if (role < 0) {
		char roles[1024];
		size_t used = 0;
		for (int i = 0; i < m->nroles && used < sizeof(roles); i++)
			used += (size_t)snprintf(roles + used, sizeof(roles) - used, "%s%s",
						 i ? ", " : "", m->roles[i].slug);
		return text_fail(
		    tf, err,
		    "unknown role '%s' (the %s matrix has: %s; keywords: protect, dscp, "
		    "allow-icmp, allow-outbound, flows, nat, qos)",
		    slug, m->product, roles);
	}
	if (t->n < 2)
		return text_fail(tf, err, "role '%s' without a prefix: expected 'ROLE PREFIX ...'",
				 slug);
	for (int i = 1; i < t->n; i++) {
		struct site_prefix p;
		char why[256];
		if (t->quoted[i] || site_parse_prefix(t->tok[i], &p, why, sizeof(why)) < 0)
			return text_fail(tf, err, "%s",
					 t->quoted[i] ? "a prefix is not quoted" : why);
		if (add_prefix(tf, err, s, &p, role) < 0)
			return -1;
		if (s->nprefixes > LX_MAX_PREFIXES * 2)
			return text_fail(tf, err, "more than %d prefixes", LX_MAX_PREFIXES * 2);
	}
	s->roles_present |= 1ULL << role;
	return 0;
}

int site_load(const char *path, const struct matrix *m, struct site *s, struct text_error *err)
{
	struct text_file tf;
	struct text_tokens t;
	int r;

	memset(s, 0, sizeof(*s));
	text_copy(s->path, sizeof(s->path), path);
	if (text_open(&tf, path, err) < 0)
		return -1;
	while ((r = text_next(&tf, &t, err)) > 0) {
		if (t.n == 0)
			continue;
		if (parse_line(&tf, err, m, s, &t) < 0) {
			r = -1;
			break;
		}
	}
	s->hash = tf.hash;
	if (r == 0)
		merge_duplicates(s, m);
	if (r == 0 && (check_allowed(m, s, err) < 0 || check_nat(s, err) < 0))
		r = -1;
	/* Only for a site that is otherwise fine: an empty one gets its error alone. */
	uint64_t unplaced = r == 0 && s->nprefixes
				? s->protected_roles & ~matrix_role_closure(m, s->roles_present)
				: 0;
	for (int i = 0; i < m->nroles; i++)
		if (unplaced & (1ULL << i)) {
			fprintf(stderr,
				"%s:%d: warning: protected role %s has no address in the site\n",
				path, s->protect_line, m->roles[i].slug);
			s->nwarnings++;
		}
	if (r == 0 && s->nprefixes == 0) {
		snprintf(err->msg, sizeof(err->msg), "%s:%d: the site names no role and prefix",
			 path, tf.line ? tf.line : 1);
		r = -1;
	}
	text_close(&tf);
	if (r < 0)
		site_free(s);
	return r;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Parses a port matrix file. The format is documented in maps/README.md:
 *   product SLUG "Name"
 *   role SLUG "Name" [includes=ROLE,...] [client]
 *   service SLUG DSCP|- "Name"
 *   rule ROLE SERVICE tcp|udp PORT[-PORT] SOURCE          the role listens on PORT
 *   outbound ROLE SERVICE tcp|udp to|from PORT[-PORT] SOURCE
 *                                         the role opens connections to / from PORT
 *   icmp ipv4|ipv6 TYPE[:CODE] "Name"    ICMP protected hosts accept
 * SOURCE: seed:NNN[,NNN], derived:NNN[,NNN], ref:NAME, doc:NAME or local:WORD
 */
#include "matrix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *matrix_proto_name(int proto)
{
	return proto == LX_PROTO_TCP ? "tcp" : proto == LX_PROTO_UDP ? "udp" : "?";
}

const char *matrix_kind_name(int kind)
{
	return kind == LX_KIND_OUTBOUND_TO     ? "outbound-to"
	       : kind == LX_KIND_OUTBOUND_FROM ? "outbound-from"
					       : "listen";
}

int matrix_proto_parse(const char *s)
{
	if (!strcmp(s, "tcp"))
		return LX_PROTO_TCP;
	if (!strcmp(s, "udp"))
		return LX_PROTO_UDP;
	return -1;
}

int matrix_find_role(const struct matrix *m, const char *slug)
{
	for (int i = 0; i < m->nroles; i++)
		if (!strcmp(m->roles[i].slug, slug))
			return i;
	return -1;
}

int matrix_find_service(const struct matrix *m, const char *slug)
{
	for (int i = 0; i < m->nservices; i++)
		if (!strcmp(m->services[i].slug, slug))
			return i;
	return -1;
}

uint64_t matrix_role_closure(const struct matrix *m, uint64_t roles)
{
	/* includes= names only earlier roles, so one pass in declaration order is enough. */
	for (int i = 0; i < m->nroles; i++)
		if (m->roles[i].includes & roles)
			roles |= 1ULL << i;
	return roles;
}

void matrix_free(struct matrix *m)
{
	free(m->services);
	free(m->rules);
	m->services = NULL;
	m->rules = NULL;
}

static int need_fields(struct text_file *tf, struct text_error *err, const struct text_tokens *t,
		       int min, int max, const char *usage)
{
	if (t->n < min || t->n > max)
		return text_fail(tf, err, "expected '%s'", usage);
	return 0;
}

static int check_name(struct text_file *tf, struct text_error *err, const struct text_tokens *t,
		      int i)
{
	if (!t->quoted[i])
		return text_fail(tf, err, "name '%s' must be in double quotes", t->tok[i]);
	if (strlen(t->tok[i]) >= LX_NAME_LEN)
		return text_fail(tf, err, "name longer than %d characters", LX_NAME_LEN - 1);
	return 0;
}

static int check_new_slug(struct text_file *tf, struct text_error *err, const char *what,
			  const char *slug, int existing_line)
{
	if (!text_is_slug(slug, LX_SLUG_LEN))
		return text_fail(
		    tf, err,
		    "%s '%s': use lowercase letters, digits and '-', at most %d characters", what,
		    slug, LX_SLUG_LEN - 1);
	if (existing_line)
		return text_fail(tf, err, "%s '%s' already declared at line %d", what, slug,
				 existing_line);
	return 0;
}

/* The file being read (0 for the first of a combined matrix). */
static int current_file(const struct matrix *m)
{
	return m->nfiles - 1;
}

/*
 * A combined matrix declares a role or service again in a later file: EXISTING_FILE is where it
 * was first declared (-1: nowhere). Returns 0 if this is not such a line, 1 if it is and the two
 * agree (SAME), -1 with the error if they do not.
 */
static int declared_again(struct text_file *tf, struct text_error *err, const struct matrix *m,
			  const char *what, const char *slug, int existing_file, int existing_line,
			  const char *differs, int same)
{
	if (existing_file < 0 || current_file(m) == 0 || existing_file >= current_file(m))
		return 0;
	if (same)
		return 1;
	return text_fail(tf, err,
			 "%s '%s' %s in %s (line %d): matrices combined must agree on their %ss",
			 what, slug, differs, m->files[existing_file], existing_line, what);
}

static int parse_product(struct text_file *tf, struct text_error *err, struct matrix *m,
			 const struct text_tokens *t, int *seen)
{
	if (need_fields(tf, err, t, 3, 3, "product SLUG \"Name\"") < 0)
		return -1;
	if (*seen)
		return text_fail(tf, err, "second 'product' line");
	if (check_new_slug(tf, err, "product", t->tok[1], 0) < 0 || check_name(tf, err, t, 2) < 0)
		return -1;
	*seen = 1;
	if (!m->product[0]) {
		text_copy(m->product, sizeof(m->product), t->tok[1]);
		text_copy(m->product_name, sizeof(m->product_name), t->tok[2]);
		return 0;
	}
	/* A combined matrix: "sfb2015,teams", "Skype for Business Server 2015 + Teams". */
	size_t n = strlen(m->product), need = n + 1 + strlen(t->tok[1]);
	if (need >= sizeof(m->product))
		return text_fail(tf, err, "combined product name '%s,%s' is too long", m->product,
				 t->tok[1]);
	snprintf(m->product + n, sizeof(m->product) - n, ",%s", t->tok[1]);
	n = strlen(m->product_name);
	snprintf(m->product_name + n, sizeof(m->product_name) - n, " + %s", t->tok[2]);
	return 0;
}

static int parse_includes(struct text_file *tf, struct text_error *err, struct matrix *m,
			  const char *list, uint64_t *includes)
{
	char buf[TEXT_MAX_LINE];
	text_copy(buf, sizeof(buf), list);
	for (char *save = NULL, *name = strtok_r(buf, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		int r = matrix_find_role(m, name);
		if (r < 0)
			return text_fail(
			    tf, err, "includes=: role '%s' is not declared above this line", name);
		*includes |= 1ULL << r;
	}
	if (!*includes)
		return text_fail(tf, err, "includes= names no role");
	return 0;
}

static int parse_role(struct text_file *tf, struct text_error *err, struct matrix *m,
		      const struct text_tokens *t)
{
	if (need_fields(tf, err, t, 3, 5, "role SLUG \"Name\" [includes=ROLE,...] [client]") < 0)
		return -1;
	struct matrix_role role = { .line = tf->line };
	for (int i = 3; i < t->n; i++) {
		if (!strcmp(t->tok[i], "client") && !role.client) {
			role.client = 1;
			continue;
		}
		if (strncmp(t->tok[i], "includes=", 9) != 0 || role.includes)
			return text_fail(tf, err,
					 "unknown role option '%s' (expected includes=ROLE,... or "
					 "client, each at most once)",
					 t->tok[i]);
		if (parse_includes(tf, err, m, t->tok[i] + 9, &role.includes) < 0)
			return -1;
	}
	int existing = matrix_find_role(m, t->tok[1]);
	const struct matrix_role *o = existing >= 0 ? &m->roles[existing] : NULL;
	int again = declared_again(tf, err, m, "role", t->tok[1], o ? o->file : -1, o ? o->line : 0,
				   "is declared differently",
				   o && o->includes == role.includes && o->client == role.client);
	if (again)
		return again < 0 ? -1 : 0;
	if (check_new_slug(tf, err, "role", t->tok[1],
			   existing >= 0 ? m->roles[existing].line : 0) < 0 ||
	    check_name(tf, err, t, 2) < 0)
		return -1;
	/* A site line starts with a role or one of these keywords: they cannot be both. */
	static const char *const site_keywords[] = {
		"protect", "dscp", "allow-icmp", "allow-outbound", "flows", "nat", "qos"
	};
	for (size_t i = 0; i < sizeof(site_keywords) / sizeof(site_keywords[0]); i++)
		if (!strcmp(t->tok[1], site_keywords[i]))
			return text_fail(tf, err,
					 "role '%s' is a site keyword (protect, dscp, allow-icmp, "
					 "allow-outbound, "
					 "flows, nat, qos): "
					 "choose another slug",
					 t->tok[1]);
	if (m->nroles == MATRIX_MAX_ROLES)
		return text_fail(tf, err, "more than %d roles", MATRIX_MAX_ROLES);

	text_copy(role.slug, sizeof(role.slug), t->tok[1]);
	text_copy(role.name, sizeof(role.name), t->tok[2]);
	role.file = current_file(m);
	m->roles[m->nroles++] = role;
	return 0;
}

int matrix_dscp_value(const char *s, int *dscp)
{
	unsigned long v;
	if (!strcmp(s, "-")) {
		*dscp = MATRIX_DSCP_KEEP;
		return 0;
	}
	if (text_parse_uint(s, 0, 63, &v) < 0)
		return -1;
	*dscp = (int)v;
	return 0;
}

static int parse_dscp(struct text_file *tf, struct text_error *err, const char *s, int *dscp)
{
	if (matrix_dscp_value(s, dscp) < 0)
		return text_fail(tf, err, "DSCP '%s' is not 0..63 or '-'", s);
	return 0;
}

static void *grow(void *array, int count, size_t elem)
{
	/* Double at powers of two; returns NULL (array untouched) when out of memory. */
	if (count == 0 || (count & (count - 1)) == 0)
		return realloc(array, (size_t)(count ? count * 2 : 16) * elem);
	return array;
}

static int parse_service(struct text_file *tf, struct text_error *err, struct matrix *m,
			 const struct text_tokens *t)
{
	if (need_fields(tf, err, t, 4, 4, "service SLUG DSCP|- \"Name\"") < 0)
		return -1;
	int existing = matrix_find_service(m, t->tok[1]);
	struct matrix_service svc = { .line = tf->line, .file = current_file(m) };
	const struct matrix_service *o = existing >= 0 ? &m->services[existing] : NULL;
	int again = 0;
	if (o && o->file < current_file(m) && parse_dscp(tf, err, t->tok[2], &svc.dscp) < 0)
		return -1;
	again = declared_again(tf, err, m, "service", t->tok[1], o ? o->file : -1, o ? o->line : 0,
			       "has another DSCP", o && o->dscp == svc.dscp);
	if (again)
		return again < 0 ? -1 : 0;
	if (check_new_slug(tf, err, "service", t->tok[1], o ? o->line : 0) < 0)
		return -1;
	if (parse_dscp(tf, err, t->tok[2], &svc.dscp) < 0 || check_name(tf, err, t, 3) < 0)
		return -1;
	text_copy(svc.slug, sizeof(svc.slug), t->tok[1]);
	text_copy(svc.name, sizeof(svc.name), t->tok[3]);

	struct matrix_service *grown = grow(m->services, m->nservices, sizeof(svc));
	if (!grown)
		return text_fail(tf, err, "out of memory");
	m->services = grown;
	m->services[m->nservices++] = svc;
	return 0;
}

int matrix_parse_ports(const char *s, uint16_t *lo, uint16_t *hi, char *why, size_t whylen)
{
	char buf[32];
	unsigned long a, b;
	text_copy(buf, sizeof(buf), s);
	char *dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (text_parse_uint(buf, 1, 65535, &a) < 0) {
		snprintf(why, whylen, "port '%s' is not 1..65535", buf);
		return -1;
	}
	b = a;
	if (dash && text_parse_uint(dash + 1, 1, 65535, &b) < 0) {
		snprintf(why, whylen, "port '%s' is not 1..65535", dash + 1);
		return -1;
	}
	if (b < a) {
		snprintf(why, whylen, "port range %s runs backwards", s);
		return -1;
	}
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

static int parse_ports(struct text_file *tf, struct text_error *err, const char *s, uint16_t *lo,
		       uint16_t *hi)
{
	char why[96];
	if (matrix_parse_ports(s, lo, hi, why, sizeof(why)) < 0)
		return text_fail(tf, err, "%s", why);
	return 0;
}

/* seed:NNN[,NNN], derived:NNN[,NNN], ref:NAME, doc:NAME or local:WORD */
static int check_source(struct text_file *tf, struct text_error *err, const char *s)
{
	static const char *const kinds[] = { "seed", "derived", "ref", "local", "doc" };
	const char *colon = strchr(s, ':');
	if (strlen(s) >= MATRIX_SOURCE_LEN || !colon || !colon[1])
		return text_fail(tf, err,
				 "source '%s': expected seed:NNN, derived:NNN[,NNN], ref:NAME, "
				 "doc:NAME or local:NAME",
				 s);
	size_t kind = sizeof(kinds) / sizeof(kinds[0]);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i]) == (size_t)(colon - s) &&
		    !strncmp(s, kinds[i], strlen(kinds[i])))
			kind = i;
	if (kind == sizeof(kinds) / sizeof(kinds[0]))
		return text_fail(tf, err,
				 "source '%s': kind must be seed, derived, ref, doc or local", s);
	/* Seed ids are the files' numeric prefixes: digits, separated by single commas. */
	for (const char *p = colon + 1; kind < 2 && *p; p++)
		if (!(*p >= '0' && *p <= '9') &&
		    !(*p == ',' && p[-1] != ':' && p[-1] != ',' && p[1]))
			return text_fail(tf, err, "source '%s': seed ids are numbers like 004", s);
	return 0;
}

/* Fields shared by rule and outbound lines, starting at token `at`: PROTO PORTS SOURCE. */
static int parse_rule_fields(struct text_file *tf, struct text_error *err, struct matrix *m,
			     const struct text_tokens *t, int at, struct matrix_rule *r)
{
	r->role = matrix_find_role(m, t->tok[1]);
	if (r->role < 0)
		return text_fail(tf, err, "unknown role '%s' (declare it with a 'role' line first)",
				 t->tok[1]);
	r->service = matrix_find_service(m, t->tok[2]);
	if (r->service < 0)
		return text_fail(tf, err,
				 "unknown service '%s' (declare it with a 'service' line first)",
				 t->tok[2]);
	r->proto = matrix_proto_parse(t->tok[3]);
	if (r->proto < 0)
		return text_fail(tf, err, "transport '%s' is not tcp or udp", t->tok[3]);
	if (parse_ports(tf, err, t->tok[at], &r->port_lo, &r->port_hi) < 0 ||
	    check_source(tf, err, t->tok[at + 1]) < 0)
		return -1;
	text_copy(r->source, sizeof(r->source), t->tok[at + 1]);
	return 0;
}

static int add_rule(struct text_file *tf, struct text_error *err, struct matrix *m,
		    const struct matrix_rule *r, const char *ports)
{
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *o = &m->rules[i];
		if (o->kind == r->kind && o->role == r->role && o->proto == r->proto &&
		    o->port_lo == r->port_lo && o->port_hi == r->port_hi)
			return text_fail(
			    tf, err, "duplicate %s: %s %s %s was already given at line %d",
			    r->kind == LX_KIND_LISTEN ? "rule" : "outbound rule",
			    m->roles[r->role].slug, matrix_proto_name(r->proto), ports, o->line);
	}
	if (m->nrules >= LX_MAX_RULES - 1)
		return text_fail(tf, err, "more than %d rules", LX_MAX_RULES - 1);
	struct matrix_rule *grown = grow(m->rules, m->nrules, sizeof(*r));
	if (!grown)
		return text_fail(tf, err, "out of memory");
	m->rules = grown;
	m->rules[m->nrules++] = *r;
	return 0;
}

/* `from ROLE[,ROLE...]`: the roles whose addresses may use a listen rule. */
static int parse_from(struct text_file *tf, struct text_error *err, const struct matrix *m,
		      const char *list, uint64_t *roles)
{
	char buf[512];
	size_t len = strlen(list);
	*roles = 0;
	if (len >= sizeof(buf) || !len || list[0] == ',' || list[len - 1] == ',' ||
	    strstr(list, ",,"))
		return text_fail(tf, err, "from: expected ROLE[,ROLE...], got '%.60s'", list);
	text_copy(buf, sizeof(buf), list);
	char *save = NULL;
	for (char *r = strtok_r(buf, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
		int role = matrix_find_role(m, r);
		if (role < 0)
			return text_fail(tf, err, "from: unknown role '%s'", r);
		*roles |= 1ULL << role;
	}
	return 0;
}

static int parse_rule(struct text_file *tf, struct text_error *err, struct matrix *m,
		      const struct text_tokens *t)
{
	static const char usage[] = "rule ROLE SERVICE tcp|udp PORT[-PORT] SOURCE [from ROLE,...]";
	if (t->n != 6 && (t->n != 8 || strcmp(t->tok[6], "from")))
		return text_fail(tf, err, "expected '%s'", usage);
	struct matrix_rule r = { .line = tf->line,
				 .kind = LX_KIND_LISTEN,
				 .file = current_file(m) };
	if (parse_rule_fields(tf, err, m, t, 4, &r) < 0 ||
	    (t->n == 8 && parse_from(tf, err, m, t->tok[7], &r.from_roles) < 0))
		return -1;
	return add_rule(tf, err, m, &r, t->tok[4]);
}

static int parse_outbound(struct text_file *tf, struct text_error *err, struct matrix *m,
			  const struct text_tokens *t)
{
	if (need_fields(tf, err, t, 7, 7,
			"outbound ROLE SERVICE tcp|udp to|from PORT[-PORT] SOURCE") < 0)
		return -1;
	struct matrix_rule r = { .line = tf->line, .file = current_file(m) };
	if (!strcmp(t->tok[4], "to"))
		r.kind = LX_KIND_OUTBOUND_TO;
	else if (!strcmp(t->tok[4], "from"))
		r.kind = LX_KIND_OUTBOUND_FROM;
	else
		return text_fail(tf, err,
				 "'%s': outbound rules say 'to PORTS' (the peer's port) or "
				 "'from PORTS' (the role's own)",
				 t->tok[4]);
	if (parse_rule_fields(tf, err, m, t, 5, &r) < 0)
		return -1;
	return add_rule(tf, err, m, &r, t->tok[5]);
}

int matrix_parse_icmp(const char *family, const char *spec, struct matrix_icmp *out, char *why,
		      size_t whylen)
{
	char buf[32];
	unsigned long type, code;
	memset(out, 0, sizeof(*out));
	if (!strcmp(family, "ipv4"))
		out->family = 4;
	else if (!strcmp(family, "ipv6"))
		out->family = 6;
	else {
		snprintf(why, whylen, "ICMP family '%s' is not ipv4 or ipv6", family);
		return -1;
	}
	text_copy(buf, sizeof(buf), spec);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	out->code = MATRIX_ICMP_ANY;
	if (text_parse_uint(buf, 0, 255, &type) < 0 ||
	    (colon && text_parse_uint(colon + 1, 0, 255, &code) < 0)) {
		snprintf(why, whylen, "ICMP '%s': expected TYPE or TYPE:CODE, each 0..255", spec);
		return -1;
	}
	out->type = (int)type;
	if (colon)
		out->code = (int)code;
	return 0;
}

static int parse_icmp(struct text_file *tf, struct text_error *err, struct matrix *m,
		      const struct text_tokens *t)
{
	char why[128];
	if (need_fields(tf, err, t, 4, 4, "icmp ipv4|ipv6 TYPE[:CODE] \"Name\"") < 0)
		return -1;
	if (m->nicmp == MATRIX_MAX_ICMP)
		return text_fail(tf, err, "more than %d icmp lines", MATRIX_MAX_ICMP);
	struct matrix_icmp *ic = &m->icmp[m->nicmp];
	if (matrix_parse_icmp(t->tok[1], t->tok[2], ic, why, sizeof(why)) < 0)
		return text_fail(tf, err, "%s", why);
	if (check_name(tf, err, t, 3) < 0)
		return -1;
	text_copy(ic->name, sizeof(ic->name), t->tok[3]);
	ic->line = tf->line;
	m->nicmp++;
	return 0;
}

static int parse_line(struct text_file *tf, struct text_error *err, struct matrix *m,
		      const struct text_tokens *t, int *product_seen)
{
	const char *kw = t->tok[0];
	if (t->quoted[0])
		return text_fail(tf, err, "a line starts with a keyword, not a quoted name");
	if (!strcmp(kw, "product"))
		return parse_product(tf, err, m, t, product_seen);
	if (!*product_seen)
		return text_fail(tf, err, "the first line must be 'product SLUG \"Name\"'");
	if (!strcmp(kw, "role"))
		return parse_role(tf, err, m, t);
	if (!strcmp(kw, "service"))
		return parse_service(tf, err, m, t);
	if (!strcmp(kw, "rule"))
		return parse_rule(tf, err, m, t);
	if (!strcmp(kw, "outbound"))
		return parse_outbound(tf, err, m, t);
	if (!strcmp(kw, "icmp"))
		return parse_icmp(tf, err, m, t);
	return text_fail(tf, err,
			 "unknown keyword '%s' (expected product, role, service, rule, outbound or "
			 "icmp)",
			 kw);
}

static int load_one(const char *path, struct matrix *m, struct text_error *err)
{
	struct text_file tf;
	struct text_tokens t;
	int r, product_seen = 0, rules_before = m->nrules;

	if (text_open(&tf, path, err) < 0)
		return -1;
	while ((r = text_next(&tf, &t, err)) > 0) {
		if (t.n == 0)
			continue;
		if (parse_line(&tf, err, m, &t, &product_seen) < 0) {
			r = -1;
			break;
		}
	}
	/* FNV-1a over the files in turn, as if they were one. */
	m->hash = m->nfiles == 1 ? tf.hash : (m->hash ^ tf.hash) * 0x100000001b3ULL;
	if (r == 0 && !product_seen) {
		snprintf(err->msg, sizeof(err->msg), "%s:%d: no 'product' line: not a port matrix",
			 path, tf.line ? tf.line : 1);
		r = -1;
	} else if (r == 0 && m->nrules == rules_before) {
		snprintf(err->msg, sizeof(err->msg), "%s:%d: the matrix has no rule", path,
			 tf.line);
		r = -1;
	}
	text_close(&tf);
	return r;
}

int matrix_load(const char *path, struct matrix *m, struct text_error *err)
{
	char list[LX_PATH_LEN];
	int r = 0;

	memset(m, 0, sizeof(*m));
	text_copy(m->path, sizeof(m->path), path);
	if (strlen(path) >= sizeof(list)) {
		snprintf(err->msg, sizeof(err->msg), "%.64s...: matrix path too long", path);
		return -1;
	}
	text_copy(list, sizeof(list), path);
	for (char *next, *one = list; one && r == 0; one = next) {
		next = strchr(one, ',');
		if (next)
			*next++ = '\0';
		if (!*one || m->nfiles == MATRIX_MAX_FILES) {
			snprintf(err->msg, sizeof(err->msg),
				 "%s: expected one matrix file or up to %d separated by ','", path,
				 MATRIX_MAX_FILES);
			r = -1;
			break;
		}
		text_copy(m->files[m->nfiles++], sizeof(m->files[0]), one);
		r = load_one(one, m, err);
	}
	if (r < 0)
		matrix_free(m);
	return r;
}

void matrix_rule_where(const struct matrix *m, const struct matrix_rule *r, char *buf, size_t len)
{
	const char *file = r->file >= 0 && r->file < m->nfiles ? m->files[r->file] : m->path;
	snprintf(buf, len, "%s:%d", file, r->line);
}

uint32_t matrix_rule_rank(const struct matrix *m, int index)
{
	const struct matrix_rule *r = &m->rules[index];
	uint32_t narrow = 65535u - (uint32_t)(r->port_hi - r->port_lo); /* 1..65535 */
	uint32_t server = m->roles[r->role].client ? 0 : 1;
	return server << 30 | narrow << 14 | (uint32_t)(LX_MAX_RULES - 1 - index);
}

int matrix_add_outbound(struct matrix *m, int role, int proto, uint16_t lo, uint16_t hi,
			const char *path, int line, struct text_error *err)
{
	static const char slug[] = "allow-outbound";
	int svc = matrix_find_service(m, slug);
	if (svc < 0) {
		struct matrix_service *grown = grow(m->services, m->nservices, sizeof(*grown));
		if (!grown)
			goto oom;
		m->services = grown;
		struct matrix_service *new_svc = &m->services[m->nservices];
		memset(new_svc, 0, sizeof(*new_svc));
		text_copy(new_svc->slug, sizeof(new_svc->slug), slug);
		text_copy(new_svc->name, sizeof(new_svc->name),
			  "Outbound connections the site allows (allow-outbound)");
		new_svc->dscp = MATRIX_DSCP_KEEP;
		new_svc->line = line;
		new_svc->file = -1;
		svc = m->nservices++;
	}
	int file = -1;
	for (int i = 0; i < m->nfiles; i++)
		if (!strcmp(m->files[i], path))
			file = i;
	if (file < 0 && m->nfiles < MATRIX_MAX_FILES) {
		text_copy(m->files[m->nfiles], sizeof(m->files[0]), path);
		file = m->nfiles++;
	}
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *o = &m->rules[i];
		if (o->kind == LX_KIND_OUTBOUND_TO && o->role == role && o->proto == proto &&
		    o->port_lo == lo && o->port_hi == hi)
			return 0; /* the role opens those already */
	}
	if (m->nrules >= LX_MAX_RULES - 1) {
		snprintf(err->msg, sizeof(err->msg), "%s:%d: more than %d rules", path, line,
			 LX_MAX_RULES - 1);
		return -1;
	}
	struct matrix_rule *rules = grow(m->rules, m->nrules, sizeof(*rules));
	if (!rules)
		goto oom;
	m->rules = rules;
	struct matrix_rule r = { .kind = LX_KIND_OUTBOUND_TO,
				 .role = role,
				 .service = svc,
				 .proto = proto,
				 .port_lo = lo,
				 .port_hi = hi,
				 .line = line,
				 .file = file };
	text_copy(r.source, sizeof(r.source), "local:allow-outbound");
	m->rules[m->nrules++] = r;
	return 0;
oom:
	snprintf(err->msg, sizeof(err->msg), "out of memory");
	return -1;
}

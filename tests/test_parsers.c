// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the user-space parsers and compiler, no kernel needed: matrix_load (rule,
 * outbound and icmp lines), site_load (prefixes and the protect, dscp and allow-icmp
 * keywords), site_parse_prefix, compile_tables (both tables), compile_assign_ids,
 * addr4_build and addr6_build (the address tables against a longest-prefix match),
 * endpoint_parse and packet_build, the JSON writer (json.c) and the option tables
 * (cli_params.c: what options set, usage errors, help).
 * Run from the repository top (tests/run.sh does); bad inputs are generated into a
 * private temporary directory, good ones live in tests/data/ (outbound.matrix: test_datapath
 * reads it too). Checksums and the shared test data names: tests/support.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr4.h"
#include "addr6.h"
#include "check.h"
#include "cli_params.h"
#include "support.h"
#include "compile.h"
#include "json.h"
#include "matrix.h"
#include "packet.h"
#include "qos.h"
#include "site.h"

#define BASE_MATRIX   "tests/data/base.matrix"
#define BASE_SITE     "tests/data/base.site"
#define SEEDS_DIR     "maps/seeds"
#define REFERENCE_DIR "maps/reference"

/* ---- files in a private temporary directory ---- */

static char tmpdir[64];
static char *tmpfiles[512];
static int ntmpfiles;

static const char *tmp_write(const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		exit(2);
	}
	for (int i = 0; i < ntmpfiles; i++)
		if (!strcmp(tmpfiles[i], path))
			return tmpfiles[i];
	if (ntmpfiles == (int)(sizeof(tmpfiles) / sizeof(tmpfiles[0]))) {
		fprintf(stderr, "too many temporary files\n");
		exit(2);
	}
	tmpfiles[ntmpfiles] = strdup(path);
	return tmpfiles[ntmpfiles++];
}

static const char *tmp_text(const char *name, const char *text)
{
	return tmp_write(name, text, strlen(text));
}

static void tmp_cleanup(void)
{
	for (int i = 0; i < ntmpfiles; i++) {
		unlink(tmpfiles[i]);
		free(tmpfiles[i]);
	}
	ntmpfiles = 0;
	if (tmpdir[0])
		rmdir(tmpdir);
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *grown = realloc(buf, cap * 2 + 1);
			if (!grown) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

static int lines_in(const char *text)
{
	int n = 0;
	for (const char *p = text; *p; p++)
		n += *p == '\n';
	return n;
}

/* The tests read tests/data/ and maps/ relative to the repository top. */
/* ---- error expectations ---- */

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void expect_error(const char *what, int rc, const char *got, const char *path, int line,
			 const char *msg)
{
	char want[1024];
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	const char *base = strrchr(path, '/') + 1;
	if (rc == -1 && starts_with(got, want))
		CHECK(1, "%s: -1 with '%s:%d: %s%s'", what, base, line, msg, msg[0] ? "" : "...");
	else if (rc == -1)
		CHECK(0, "%s: expected -1 with '%s:%d: %s%s', got '%s'", what, base, line, msg,
		      msg[0] ? "" : "...", got);
	else
		CHECK(0, "%s: expected -1 with '%s:%d: %s%s', got %d (accepted)", what, base, line,
		      msg, msg[0] ? "" : "...", rc);
}

/*
 * Error paths run in a child process: a crash, or a sanitizer stopping the ASan/UBSan build,
 * becomes one FAIL line (its report on stderr) instead of the end of the whole run.
 */
struct load_call {
	const char *path;
	const struct matrix *m; /* NULL: load a matrix; else a site against this matrix */
};

struct load_result {
	int rc;
	struct text_error err;
};

static int load_isolated(const struct load_call *call, struct load_result *res, char *status,
			 size_t statuslen)
{
	int fds[2];
	memset(res, 0, sizeof(*res));
	if (pipe(fds) < 0)
		return snprintf(status, statuslen, "pipe: %s", strerror(errno)), -1;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return snprintf(status, statuslen, "fork: %s", strerror(errno)), -1;
	char errpath[PATH_MAX];
	snprintf(errpath, sizeof(errpath), "%s/child-stderr.txt", tmpdir);
	if (pid == 0) {
		struct load_result r = { 0 };
		close(fds[0]);
		int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		if (call->m) {
			struct site site;
			r.rc = site_load(call->path, call->m, &site, &r.err);
			if (r.rc == 0)
				site_free(&site);
		} else {
			struct matrix matrix;
			r.rc = matrix_load(call->path, &matrix, &r.err);
			if (r.rc == 0)
				matrix_free(&matrix);
		}
		ssize_t n = write(fds[1], &r, sizeof(r));
		close(fds[1]);
		exit(n == (ssize_t)sizeof(r) ? 0 : 3); /* exit, not _exit: LeakSanitizer runs */
	}
	close(fds[1]);
	size_t got = 0;
	for (ssize_t n; got < sizeof(*res); got += (size_t)n) {
		n = read(fds[0], (char *)res + got, sizeof(*res) - got);
		if (n <= 0)
			break;
	}
	close(fds[0]);
	int wstatus = 0;
	waitpid(pid, &wstatus, 0);

	/* The child's stderr goes on to ours; its first sanitizer line goes into the FAIL. */
	size_t errlen = 0;
	char *errtext = read_all(errpath, &errlen);
	unlink(errpath);
	char first[200] = "";
	if (errtext) {
		fputs(errtext, stderr);
		char *hit = strstr(errtext, "runtime error");
		if (!hit)
			hit = strstr(errtext, "ERROR: ");
		if (hit) {
			while (hit > errtext && hit[-1] != '\n')
				hit--;
			size_t n = strcspn(hit, "\n");
			snprintf(first, sizeof(first), ": %.*s", (int)(n < 180 ? n : 180), hit);
		}
		free(errtext);
	}
	if (got == sizeof(*res) && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
		return 0;
	if (WIFSIGNALED(wstatus))
		snprintf(status, statuslen, "the load died of signal %d%s", WTERMSIG(wstatus),
			 first);
	else
		snprintf(status, statuslen, "the load exited %d %s returning%s",
			 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
			 got == sizeof(*res) ? "after" : "before", first);
	return -1;
}

static void error_case(const char *what, const struct load_call *call, int line, const char *msg)
{
	struct load_result res;
	char status[320];
	if (load_isolated(call, &res, status, sizeof(status)) < 0) {
		CHECK(0, "%s: %s", what, status);
		return;
	}
	expect_error(what, res.rc, res.err.msg, call->path, line, msg);
}

static void matrix_error_at(const char *name, const char *text, size_t len, int line,
			    const char *msg)
{
	struct load_call call = { tmp_write(name, text, len), NULL };
	char what[128];
	snprintf(what, sizeof(what), "matrix error %s", name);
	error_case(what, &call, line, msg);
}

/* A valid head every bad matrix line is appended to. */
static const char matrix_head[] = "product test \"Test\"\n"
				  "role frontend \"Front End\"\n"
				  "role edge-external \"Edge\"\n"
				  "role all-servers \"All servers\" includes=frontend\n"
				  "service sip-tls 24 \"SIP/TLS\"\n"
				  "service stun - \"STUN\"\n"
				  "rule frontend sip-tls tcp 5061 seed:004\n";

/* The head plus one bad line: the error is on that line. */
static void matrix_bad_line(const char *name, const char *line_text, const char *msg)
{
	char text[2048];
	snprintf(text, sizeof(text), "%s%s\n", matrix_head, line_text);
	matrix_error_at(name, text, strlen(text), lines_in(matrix_head) + 1, msg);
}

static void site_error_at(const struct matrix *m, const char *name, const char *text, size_t len,
			  int line, const char *msg)
{
	struct load_call call = { tmp_write(name, text, len), m };
	char what[128];
	snprintf(what, sizeof(what), "site error %s", name);
	error_case(what, &call, line, msg);
}

static void site_bad(const struct matrix *m, const char *name, const char *text, int line,
		     const char *msg)
{
	site_error_at(m, name, text, strlen(text), line, msg);
}

/* ---- matrix ---- */

static int same_matrix(const struct matrix *a, const struct matrix *b, char *why, size_t len)
{
	if (strcmp(a->product, b->product) || strcmp(a->product_name, b->product_name))
		return snprintf(why, len, "product differs"), 0;
	if (a->nroles != b->nroles || a->nservices != b->nservices || a->nrules != b->nrules)
		return snprintf(why, len, "counts differ"), 0;
	for (int i = 0; i < a->nroles; i++) {
		const struct matrix_role *x = &a->roles[i], *y = &b->roles[i];
		if (strcmp(x->slug, y->slug) || strcmp(x->name, y->name) ||
		    x->includes != y->includes || x->line != y->line)
			return snprintf(why, len, "role %d differs", i), 0;
	}
	for (int i = 0; i < a->nservices; i++) {
		const struct matrix_service *x = &a->services[i], *y = &b->services[i];
		if (strcmp(x->slug, y->slug) || strcmp(x->name, y->name) || x->dscp != y->dscp ||
		    x->line != y->line)
			return snprintf(why, len, "service %d differs", i), 0;
	}
	for (int i = 0; i < a->nrules; i++) {
		const struct matrix_rule *x = &a->rules[i], *y = &b->rules[i];
		if (x->kind != y->kind || x->role != y->role || x->service != y->service ||
		    x->proto != y->proto || x->port_lo != y->port_lo || x->port_hi != y->port_hi ||
		    strcmp(x->source, y->source) || x->line != y->line)
			return snprintf(why, len, "rule %d differs", i + 1), 0;
	}
	if (a->nicmp != b->nicmp)
		return snprintf(why, len, "icmp counts differ"), 0;
	for (int i = 0; i < a->nicmp; i++) {
		const struct matrix_icmp *x = &a->icmp[i], *y = &b->icmp[i];
		if (x->family != y->family || x->type != y->type || x->code != y->code ||
		    strcmp(x->name, y->name) || x->line != y->line)
			return snprintf(why, len, "icmp line %d differs", i + 1), 0;
	}
	return 1;
}

static char *to_crlf(const char *text)
{
	char *out = malloc(strlen(text) * 2 + 1), *o = out;
	for (const char *p = text; out && *p; p++) {
		if (*p == '\n')
			*o++ = '\r';
		*o++ = *p;
	}
	if (out)
		*o = '\0';
	return out;
}

/* TEXT, written to the temporary file NAME, loads into the same matrix as want: one check. */
static void expect_same_matrix(const struct matrix *want, const char *name, const char *text,
			       const char *what)
{
	struct matrix m;
	struct text_error err = { { 0 } };
	char diff[128] = "";
	int rc = -1;
	if (text)
		rc = matrix_load(tmp_text(name, text), &m, &err);
	else
		snprintf(err.msg, sizeof(err.msg), "no text to write to %s", name);
	CHECK(rc == 0 && same_matrix(want, &m, diff, sizeof(diff)), "%s%s%s", what,
	      rc || diff[0] ? ": " : "", rc ? err.msg : diff);
	if (rc == 0)
		matrix_free(&m);
}

static int filter_bit(const uint64_t *words, uint32_t bit)
{
	return (words[bit / 64] >> (bit % 64)) & 1;
}

/* Every site address passes the address filter; a /24 no prefix touches does not. */
static void check_filters(const struct site *s, const struct compiled *c, const char *what)
{
	int ok = 1;
	for (int i = 0; i < s->nprefixes; i++) {
		const struct site_prefix *p = &s->prefixes[i];
		uint32_t top = (uint32_t)p->addr[0] << 24 | (uint32_t)p->addr[1] << 16 |
			       (uint32_t)p->addr[2] << 8 | p->addr[3];
		if (p->family == 4) {
			/* the first and the last /24 of the prefix */
			uint32_t last = p->len >= 24 ? top : top | ((1u << (32 - p->len)) - 1);
			ok &= filter_bit(c->filter4, lx_filter4_bit(top)) &&
			      filter_bit(c->filter4, lx_filter4_bit(last));
		} else if (c->config_flags & LX_CFG_FILTER6) {
			ok &= filter_bit(c->filter6, lx_filter6_bit(top));
		}
	}
	CHECK(ok, "%s: every prefix's first and last /24 (IPv4) and /32 (IPv6) pass the filter",
	      what);
	CHECK(!filter_bit(c->filter4, lx_filter4_bit(0xc6120000u)),
	      "%s: 198.18.0.0/24, touched by no prefix, is filtered out", what);
}

static void test_base_matrix(struct matrix *m)
{
	struct text_error err = { { 0 } };
	int rc = matrix_load(BASE_MATRIX, m, &err);
	if (!CHECK(rc == 0, "matrix %s loads%s%s", BASE_MATRIX, rc ? ": " : "",
		   rc ? err.msg : "")) {
		fprintf(stderr, "cannot go on without %s\n", BASE_MATRIX);
		exit(1);
	}
	CHECK(!strcmp(m->product, "test") && !strcmp(m->product_name, "lyncxdp test matrix"),
	      "base matrix: product slug and name");
	CHECK(m->nroles == 5 && m->nservices == 8 && m->nrules == 10,
	      "base matrix: 5 roles, 8 services, 10 rules (got %d, %d, %d)", m->nroles,
	      m->nservices, m->nrules);
	int fe = matrix_find_role(m, "frontend"), med = matrix_find_role(m, "mediation");
	int all = matrix_find_role(m, "all-servers"), every = matrix_find_role(m, "everything");
	int edge = matrix_find_role(m, "edge-external");
	CHECK(fe == 0 && edge == 1 && med == 2 && all == 3 && every == 4,
	      "base matrix: roles in declaration order");
	CHECK(matrix_find_role(m, "nope") == -1 && matrix_find_service(m, "nope") == -1,
	      "base matrix: unknown slugs are not found");
	CHECK(m->roles[all].includes == ((1ULL << fe) | (1ULL << med)) &&
		  m->roles[every].includes == ((1ULL << all) | (1ULL << edge)) &&
		  m->roles[fe].includes == 0,
	      "base matrix: includes= lists become role masks");
	uint64_t want = (1ULL << fe) | (1ULL << all) | (1ULL << every);
	CHECK(matrix_role_closure(m, 1ULL << fe) == want,
	      "base matrix: closure of frontend is frontend, all-servers, everything");
	CHECK(matrix_role_closure(m, 1ULL << edge) == ((1ULL << edge) | (1ULL << every)),
	      "base matrix: closure of edge-external is edge-external, everything");
	CHECK(matrix_role_closure(m, 1ULL << every) == (1ULL << every),
	      "base matrix: closure of everything is itself");
	int https = matrix_find_service(m, "web-https"), tls = matrix_find_service(m, "sip-tls");
	CHECK(https >= 0 && m->services[https].dscp == MATRIX_DSCP_KEEP && tls >= 0 &&
		  m->services[tls].dscp == 24,
	      "base matrix: DSCP '-' keeps, a number is the DSCP");
	const struct matrix_rule *r1 = &m->rules[0], *r3 = &m->rules[2];
	CHECK(r1->role == fe && r1->service == tls && r1->proto == LX_PROTO_TCP &&
		  r1->port_lo == 5061 && r1->port_hi == 5061 && !strcmp(r1->source, "seed:004"),
	      "base matrix: rule 1 fields");
	CHECK(r3->port_lo == 49152 && r3->port_hi == 65535 && !strcmp(r3->source, "local:test"),
	      "base matrix: rule 3 range and source");
	CHECK(m->rules[4].proto == LX_PROTO_UDP && r1->line == 21,
	      "base matrix: udp transport and line numbers");
	CHECK(matrix_proto_parse("tcp") == LX_PROTO_TCP &&
		  matrix_proto_parse("udp") == LX_PROTO_UDP && matrix_proto_parse("TCP") == -1 &&
		  matrix_proto_parse("sctp") == -1,
	      "matrix_proto_parse: tcp, udp, nothing else");
	CHECK(!strcmp(matrix_proto_name(LX_PROTO_TCP), "tcp") &&
		  !strcmp(matrix_proto_name(LX_PROTO_UDP), "udp"),
	      "matrix_proto_name");
}

static void test_matrix_format_variants(const struct matrix *base)
{
	size_t len;
	char *text = read_all(BASE_MATRIX, &len);
	if (!CHECK(text != NULL, "read %s", BASE_MATRIX))
		return;
	struct text_error err = { { 0 } };
	struct matrix m;

	/* CRLF line ends parse exactly like LF ones. */
	char *crlf = to_crlf(text);
	expect_same_matrix(base, "crlf.matrix", crlf, "matrix with CRLF line ends parses like LF");
	free(crlf);

	/* No newline at the end of the last line. */
	char *chopped = strdup(text);
	size_t n = strlen(chopped);
	while (n && chopped[n - 1] == '\n')
		chopped[--n] = '\0';
	expect_same_matrix(base, "no-final-newline.matrix", chopped,
			   "matrix without a final newline parses");
	free(chopped);

	/* Tabs, comments after fields, blank lines. */
	const char *path =
	    tmp_text("spacing.matrix", "\n# comment\n\tproduct\ttest \"Test\"   # trailing\n\n"
				       "role fe \"FE\" # comment\n"
				       "service s 0 \"S\"\n"
				       "rule fe s udp 1-65535 derived:001,002#glued\n");
	int rc = matrix_load(path, &m, &err);
	CHECK(rc == 0 && m.nroles == 1 && m.nrules == 1 && m.rules[0].port_lo == 1 &&
		  m.rules[0].port_hi == 65535 && m.rules[0].line == 7 &&
		  !strcmp(m.rules[0].source, "derived:001,002"),
	      "matrix: tabs, blank lines, comments, full port range, derived list%s%s",
	      rc ? ": " : "", rc ? err.msg : "");
	if (rc == 0)
		matrix_free(&m);

	/* A line of exactly TEXT_MAX_LINE characters is still fine. */
	char *longline = malloc(TEXT_MAX_LINE + 256);
	int k = snprintf(longline, 64, "%s", "product test \"T\"\n#");
	memset(longline + k, 'x', TEXT_MAX_LINE - 1);
	k += TEXT_MAX_LINE - 1;
	k += snprintf(longline + k, 64,
		      "\nrole a \"A\"\nservice s - \"S\"\nrule a s tcp 1 local:x\n");
	path = tmp_write("maxline.matrix", longline, (size_t)k);
	rc = matrix_load(path, &m, &err);
	CHECK(rc == 0, "matrix: a %d-character line is accepted%s%s", TEXT_MAX_LINE, rc ? ": " : "",
	      rc ? err.msg : "");
	if (rc == 0)
		matrix_free(&m);
	free(longline);

	/* The hash covers every byte: CRLF and LF versions differ, the same bytes agree. */
	struct matrix again;
	rc = matrix_load(BASE_MATRIX, &again, &err);
	CHECK(rc == 0 && again.hash == base->hash && again.hash != 0,
	      "matrix hash is stable across loads");
	if (rc == 0)
		matrix_free(&again);
	free(text);

	rc = matrix_load("tests/data/does-not-exist.matrix", &m, &err);
	CHECK(rc == -1 && starts_with(err.msg, "tests/data/does-not-exist.matrix: "),
	      "matrix: a missing file is an error naming it (%s)", err.msg);
}

static void test_matrix_errors(void)
{
	char text[4096];

	/* Product line. */
	snprintf(text, sizeof(text), "role frontend \"FE\"\n");
	matrix_error_at("no-product.matrix", text, strlen(text), 1,
			"the first line must be 'product SLUG \"Name\"'");
	snprintf(text, sizeof(text), "# only comments\n\n# here\n");
	matrix_error_at("comments-only.matrix", text, strlen(text), 3,
			"no 'product' line: not a port matrix");
	matrix_error_at("empty.matrix", "", 0, 1, "no 'product' line: not a port matrix");
	snprintf(text, sizeof(text), "product test \"T\"\nrole a \"A\"\n");
	matrix_error_at("no-rule.matrix", text, strlen(text), 2, "the matrix has no rule");
	matrix_bad_line("second-product.matrix", "product other \"Other\"",
			"second 'product' line");
	snprintf(text, sizeof(text), "product test Test\n");
	matrix_error_at("product-unquoted.matrix", text, strlen(text), 1,
			"name 'Test' must be in double quotes");
	snprintf(text, sizeof(text), "product test\n");
	matrix_error_at("product-fields.matrix", text, strlen(text), 1,
			"expected 'product SLUG \"Name\"'");

	/* Keywords and slugs. */
	matrix_bad_line(
	    "unknown-keyword.matrix", "port frontend 5061",
	    "unknown keyword 'port' (expected product, role, service, rule, outbound or "
	    "icmp)");
	matrix_bad_line("quoted-keyword.matrix", "\"role\" x \"X\"",
			"a line starts with a keyword, not a quoted name");
	matrix_bad_line("bad-slug-upper.matrix", "role Front_End \"FE\"",
			"role 'Front_End': use lowercase letters, digits and '-', at most 31 "
			"characters");
	matrix_bad_line("bad-slug-digit.matrix", "service 1sip 24 \"S\"",
			"service '1sip': use lowercase letters, digits and '-', at most 31 "
			"characters");
	matrix_bad_line("bad-slug-long.matrix", "role abcdefghijklmnopqrstuvwxyzabcdef \"L\"",
			"role 'abcdefghijklmnopqrstuvwxyzabcdef': use lowercase letters");
	matrix_bad_line("dup-role.matrix", "role edge-external \"Again\"",
			"role 'edge-external' already declared at line 3");
	matrix_bad_line("dup-service.matrix", "service stun 46 \"Again\"",
			"service 'stun' already declared at line 6");
	matrix_bad_line("includes-undeclared.matrix", "role mediation \"M\" includes=frontend,pool",
			"includes=: role 'pool' is not declared above this line");
	matrix_bad_line("includes-later.matrix", "role pool \"P\" includes=pool",
			"includes=: role 'pool' is not declared above this line");
	matrix_bad_line("includes-empty.matrix",
			"role pool \"P\" includes=", "includes= names no role");
	matrix_bad_line(
	    "role-option.matrix", "role pool \"P\" contains=frontend",
	    "unknown role option 'contains=frontend' (expected includes=ROLE,... or client, "
	    "each at most once)");
	matrix_bad_line("name-unquoted.matrix", "role pool Pool",
			"name 'Pool' must be in double quotes");

	/* Rules. */
	matrix_bad_line("rule-unknown-role.matrix", "rule director sip-tls tcp 5061 seed:004",
			"unknown role 'director' (declare it with a 'role' line first)");
	matrix_bad_line("rule-unknown-service.matrix", "rule frontend sip-mtls tcp 5061 seed:004",
			"unknown service 'sip-mtls' (declare it with a 'service' line first)");
	matrix_bad_line("rule-transport.matrix", "rule frontend stun sctp 3478 seed:004",
			"transport 'sctp' is not tcp or udp");
	matrix_bad_line("rule-transport-upper.matrix", "rule frontend stun UDP 3478 seed:004",
			"transport 'UDP' is not tcp or udp");
	matrix_bad_line("rule-port-0.matrix", "rule frontend stun udp 0 seed:004",
			"port '0' is not 1..65535");
	matrix_bad_line("rule-port-65536.matrix", "rule frontend stun udp 65536 seed:004",
			"port '65536' is not 1..65535");
	matrix_bad_line("rule-port-hi-65536.matrix", "rule frontend stun udp 1000-65536 seed:004",
			"port '65536' is not 1..65535");
	matrix_bad_line("rule-port-text.matrix", "rule frontend stun udp sip seed:004",
			"port 'sip' is not 1..65535");
	matrix_bad_line("rule-port-negative.matrix", "rule frontend stun udp -5 seed:004", "port ");
	matrix_bad_line("rule-range-backwards.matrix", "rule frontend stun udp 6000-5000 seed:004",
			"port range 6000-5000 runs backwards");
	matrix_bad_line("rule-dup.matrix", "rule frontend stun tcp 5061 seed:001",
			"duplicate rule: frontend tcp 5061 was already given at line 7");
	matrix_bad_line("rule-fields.matrix", "rule frontend stun tcp 5061",
			"expected 'rule ROLE SERVICE tcp|udp PORT[-PORT] SOURCE [from ROLE,...]'");

	/* from ROLE,...: who may use a listening rule. */
	matrix_bad_line("rule-from-alone.matrix", "rule edge-external stun udp 3478 seed:001 from",
			"expected 'rule ROLE SERVICE tcp|udp PORT[-PORT] SOURCE [from ROLE,...]'");
	matrix_bad_line("rule-from-word.matrix",
			"rule edge-external stun udp 3478 seed:001 by frontend",
			"expected 'rule ROLE SERVICE tcp|udp PORT[-PORT] SOURCE [from ROLE,...]'");
	matrix_bad_line("rule-from-unknown.matrix",
			"rule edge-external stun udp 3478 seed:001 from frontend,director",
			"from: unknown role 'director'");
	matrix_bad_line("rule-from-comma.matrix",
			"rule edge-external stun udp 3478 seed:001 from frontend,",
			"from: expected ROLE[,ROLE...], got 'frontend,'");
	matrix_bad_line("rule-from-empty.matrix",
			"rule edge-external stun udp 3478 seed:001 from frontend,,all-servers",
			"from: expected ROLE[,ROLE...], got 'frontend,,all-servers'");
	matrix_bad_line("outbound-from-list.matrix",
			"outbound edge-external stun udp to 3478 seed:001 from frontend",
			"expected 'outbound ROLE SERVICE tcp|udp to|from PORT[-PORT] SOURCE'");
	{
		char text[2048];
		snprintf(text, sizeof(text), "%s%s\n", matrix_head,
			 "rule edge-external stun udp 3478 seed:001 from frontend,all-servers "
			 "# comment");
		struct matrix fm;
		struct text_error ferr = { { 0 } };
		const char *fpath = tmp_write("rule-from.matrix", text, strlen(text));
		int frc = matrix_load(fpath, &fm, &ferr);
		if (CHECK(frc == 0, "rule ... from frontend,all-servers loads%s", why(&ferr))) {
			const struct matrix_rule *r = &fm.rules[fm.nrules - 1];
			CHECK(r->from_roles == ((1ULL << matrix_find_role(&fm, "frontend")) |
						(1ULL << matrix_find_role(&fm, "all-servers"))) &&
				  fm.rules[0].from_roles == 0,
			      "from: the rule's from_roles are frontend and all-servers; a rule "
			      "without from has none");
			matrix_free(&fm);
		}
	}

	/* DSCP. */
	matrix_bad_line("dscp-64.matrix", "service video 64 \"Video\"",
			"DSCP '64' is not 0..63 or '-'");
	matrix_bad_line("dscp-minus-1.matrix", "service video -1 \"Video\"",
			"DSCP '-1' is not 0..63 or '-'");
	matrix_bad_line("dscp-x.matrix", "service video x \"Video\"",
			"DSCP 'x' is not 0..63 or '-'");
	matrix_bad_line("dscp-hex.matrix", "service video 0x2e \"Video\"",
			"DSCP '0x2e' is not 0..63 or '-'");

	/* Sources. */
	matrix_bad_line(
	    "source-no-colon.matrix", "rule frontend stun udp 3478 seed004",
	    "source 'seed004': expected seed:NNN, derived:NNN[,NNN], ref:NAME, doc:NAME or "
	    "local:NAME");
	matrix_bad_line(
	    "source-empty-id.matrix", "rule frontend stun udp 3478 seed:",
	    "source 'seed:': expected seed:NNN, derived:NNN[,NNN], ref:NAME, doc:NAME or "
	    "local:NAME");
	matrix_bad_line("source-kind.matrix", "rule frontend stun udp 3478 vendor:004",
			"source 'vendor:004': kind must be seed, derived, ref, doc or local");
	matrix_bad_line("source-kind-prefix.matrix", "rule frontend stun udp 3478 seeds:004",
			"source 'seeds:004': kind must be seed, derived, ref, doc or local");
	/* The documented form is seed:NNN: an id that is not a number cannot name a seed. */
	matrix_bad_line("source-id-not-number.matrix", "rule frontend stun udp 3478 seed:abc", "");

	/* Lexical. */
	matrix_bad_line("unterminated-quote.matrix", "service video 34 \"Video",
			"unterminated quote");
	matrix_bad_line("text-after-quote.matrix", "service video 34 \"Video\"x",
			"text right after a closing quote");
	matrix_bad_line("control-char.matrix", "service video 34 \"Video\" \x01",
			"control character 0x01");

	/* A one-megabyte line, and a NUL byte: generated. */
	size_t big = 1 << 20;
	size_t headlen = strlen(matrix_head);
	char *huge = malloc(headlen + big + 2);
	memcpy(huge, matrix_head, headlen);
	huge[headlen] = '#';
	memset(huge + headlen + 1, 'x', big);
	huge[headlen + 1 + big] = '\n';
	char msg[64];
	snprintf(msg, sizeof(msg), "line longer than %d characters", TEXT_MAX_LINE);
	matrix_error_at("huge-line.matrix", huge, headlen + big + 2, lines_in(matrix_head) + 1,
			msg);
	free(huge);

	static const char nul[] = "product test \"T\"\nrole fr\0ontend \"FE\"\n";
	matrix_error_at("nul.matrix", nul, sizeof(nul) - 1, 2,
			"binary data (NUL byte): not a text file");
	static const char nul_comment[] = "product test \"T\"\n# a comment \0 with a NUL\n";
	matrix_error_at("nul-in-comment.matrix", nul_comment, sizeof(nul_comment) - 1, 2,
			"binary data (NUL byte): not a text file");

	/* 65 roles: more than a role set holds. */
	char *many = malloc(65 * 40 + 64);
	int k = sprintf(many, "product test \"T\"\n");
	for (int i = 0; i < 65; i++)
		k += sprintf(many + k, "role r%d \"R%d\"\n", i, i);
	matrix_error_at("65-roles.matrix", many, (size_t)k, 66, "more than 64 roles");
	free(many);
}

/*
 * The ids a shipped rule's source cites: seed:NNN[,NNN...] or derived:NNN[,...], each three
 * digits, ascending, no repeats (maps/README.md), and each a file SEEDS_DIR/NNN_*.txt;
 * ref:NAME names a reference document, REFERENCE_DIR/NAME.md.
 */
#define MAPS_README "maps/README.md"

/* 1 when the file holds the text. */
static int file_mentions(const char *path, const char *text)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void test_shipped_sources(const struct matrix *m, const char *path)
{
	struct stat st;
	/* The seeds and notes are in the repository: their absence fails, it is no skip. */
	CHECK(stat(SEEDS_DIR, &st) == 0 && S_ISDIR(st.st_mode), "%s: the seeds it cites are in %s",
	      path, SEEDS_DIR);
	CHECK(stat(REFERENCE_DIR, &st) == 0 && S_ISDIR(st.st_mode),
	      "%s: the reference notes it cites are in %s", path, REFERENCE_DIR);
	int ids = 0, bad_form = 0, missing = 0, refs = 0, bad_refs = 0;
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		const char *colon = strchr(r->source, ':');
		if (!colon || starts_with(r->source, "local:"))
			continue;
		if (starts_with(r->source, "doc:")) {
			/* A published document: maps/README.md lists each with its address. */
			char cite[MATRIX_SOURCE_LEN + 4];
			snprintf(cite, sizeof(cite), "`%s`", r->source);
			refs++;
			if (!text_is_slug(colon + 1, LX_SLUG_LEN) ||
			    !file_mentions(MAPS_README, cite)) {
				bad_refs++;
				CHECK(0, "%s line %d (rule %d): source %s: not listed in %s", path,
				      r->line, i + 1, r->source, MAPS_README);
			}
			continue;
		}
		if (starts_with(r->source, "ref:")) {
			char doc[PATH_MAX];
			refs++;
			snprintf(doc, sizeof(doc), "%s/%s.md", REFERENCE_DIR, colon + 1);
			if (!text_is_slug(colon + 1, LX_SLUG_LEN) || access(doc, R_OK) != 0) {
				bad_refs++;
				CHECK(0, "%s line %d (rule %d): source %s: no reference %s", path,
				      r->line, i + 1, r->source, doc);
			}
			continue;
		}
		char list[MATRIX_SOURCE_LEN];
		text_copy(list, sizeof(list), colon + 1);
		int prev = -1;
		for (char *save = NULL, *id = strtok_r(list, ",", &save); id;
		     id = strtok_r(NULL, ",", &save)) {
			int digits = strlen(id) == 3;
			for (const char *p = id; *p; p++)
				digits &= *p >= '0' && *p <= '9';
			int n = digits ? atoi(id) : -1;
			ids++;
			if (!digits || n <= prev) {
				bad_form++;
				CHECK(0,
				      "%s line %d (rule %d): source %s: id '%s' is not three "
				      "digits in "
				      "ascending order without repeats",
				      path, r->line, i + 1, r->source, id);
				continue;
			}
			prev = n;
			char pattern[256];
			snprintf(pattern, sizeof(pattern), "%s/%s_*.txt", SEEDS_DIR, id);
			glob_t g;
			if (glob(pattern, 0, NULL, &g) == 0) {
				globfree(&g);
			} else {
				missing++;
				CHECK(0,
				      "%s line %d (rule %d): source %s cites %s but no %s exists",
				      path, r->line, i + 1, r->source, id, pattern);
			}
		}
	}
	if (!bad_form)
		CHECK(1, "%s: all %d seed/derived ids are NNN, ascending, without repeats", path,
		      ids);
	if (!missing)
		CHECK(1, "%s: all %d seed/derived ids cited exist in %s", path, ids, SEEDS_DIR);
	if (!bad_refs)
		CHECK(1, "%s: all %d ref: sources name a document in %s", path, refs,
		      REFERENCE_DIR);
}

/*
 * Both tables, for every group, transport and port: the group's local bit in port_groups is
 * set <=> the rule table has a rule there, its remote bit <=> the remote table has one. Each
 * entry is the id (c->ids) of a rule of a role the group holds, on that transport, whose
 * range covers the port, and of the table's kind: listen and outbound-from rules in the rule
 * table (the role's own port), outbound-to rules in the remote table (the peer's port).
 * nremote counts the remote table's entries.
 */
static void check_tables_consistent(const char *label, const struct matrix *m,
				    const struct compiled *c)
{
	static int index_of[LX_PORTS];
	long bad = 0, count[2] = { 0, 0 };
	for (int id = 0; id < LX_PORTS; id++)
		index_of[id] = -1;
	for (int i = 0; i < m->nrules; i++)
		if (c->ids[i])
			index_of[c->ids[i]] = i;
	for (uint32_t g = 0; g < LX_MAX_GROUPS; g++)
		for (int proto = 0; proto < LX_PROTO_MAX; proto++)
			for (uint32_t port = 0; port < LX_PORTS; port++) {
				struct lx_port_groups pg =
				    c->port_groups[lx_port_index((uint32_t)proto, port)];
				for (int table = 0; table < 2; table++) {
					uint16_t id = table ? compiled_remote_at(c, g, proto, port)
							    : compiled_rule_at(c, g, proto, port);
					int bit = !!((table ? pg.remote : pg.local) & (1u << g));
					int idx = id ? index_of[id] : -1;
					const struct matrix_rule *r =
					    idx >= 0 ? &m->rules[idx] : NULL;
					const char *what = NULL;
					count[table] += id != 0;
					if (bit != (id != 0))
						what =
						    "the port_groups bit disagrees with the table";
					else if (id && !r)
						what = "an id no rule has";
					else if (id && (g == 0 || (int)g >= c->ngroups))
						what = "an entry for a group that does not exist";
					else if (r && (r->kind == LX_KIND_OUTBOUND_TO) != table)
						what = "a rule of the other table's kind";
					else if (r && (r->proto != proto || port < r->port_lo ||
						       port > r->port_hi))
						what =
						    "a rule whose transport and range do not cover "
						    "the port";
					else if (r && !(c->group_roles[g] & (1ULL << r->role)))
						what = "a rule of a role the group does not hold";
					if (what && bad++ < 5)
						CHECK(0,
						      "%s: group %u %s port %u, %s table: bit %d, "
						      "rule id %u: %s",
						      label, g, matrix_proto_name(proto), port,
						      table ? "remote" : "rule", bit, id, what);
				}
			}
	if (!bad)
		CHECK(1,
		      "%s: port_groups local bit <=> rule table, remote bit <=> remote table, each "
		      "entry a rule of its kind covering the port, for all %d groups x 2 x 65536 "
		      "(%ld + %ld entries)",
		      label, LX_MAX_GROUPS, count[0], count[1]);
	else
		CHECK(0, "%s: %ld inconsistent (group, proto, port, table) entries", label, bad);
	CHECK(c->nremote == (uint32_t)count[1],
	      "%s: nremote %u = entries of the remote table (%ld)", label, c->nremote, count[1]);
}

/* A site giving every role of the matrix its own host, then compiled. */
static void test_shipped_compile(const struct matrix *m, const char *path)
{
	char text[64 * 64], name[64];
	int k = 0;
	for (int i = 0; i < m->nroles && i < 31; i++)
		k += snprintf(text + k, sizeof(text) - (size_t)k, "%s 10.0.0.%d 2001:db8::%x\n",
			      m->roles[i].slug, i + 1, i + 1);
	snprintf(name, sizeof(name), "shipped-%s.site", m->product);
	const char *spath = tmp_text(name, text);
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	if (!CHECK(site_load(spath, m, &s, &err) == 0, "%s: a site with every role loads%s", path,
		   why(&err)))
		return;
	if (CHECK(compile_tables(m, &s, &c, &err) == 0, "%s: compiles with every role%s", path,
		  why(&err))) {
		CHECK(c.nactive == m->nrules || m->nroles > 31,
		      "%s: every rule active when every role is present (%d of %d)", path,
		      c.nactive, m->nrules);
		int ids_ok = c.max_id == (uint32_t)m->nrules;
		for (int i = 0; i < m->nrules; i++)
			ids_ok &= c.ids[i] == i + 1;
		CHECK(ids_ok, "%s: compile_tables gives rule i the id i + 1 (max_id %u)", path,
		      c.max_id);
		check_tables_consistent(path, m, &c);
		compile_free(&c);
	}
	site_free(&s);
}

static int has_icmp(const struct matrix *m, int family, int type, int code)
{
	for (int i = 0; i < m->nicmp; i++)
		if (m->icmp[i].family == family && m->icmp[i].type == type &&
		    m->icmp[i].code == code)
			return 1;
	return 0;
}

static void test_shipped_matrices(void)
{
	glob_t g;
	int rc = glob("maps/*.matrix", 0, NULL, &g);
	if (!CHECK(rc == 0 && g.gl_pathc > 0, "maps/*.matrix: at least one shipped matrix"))
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *path = g.gl_pathv[i];
		struct matrix m;
		struct text_error err = { { 0 } };
		rc = matrix_load(path, &m, &err);
		if (!CHECK(rc == 0, "%s parses%s%s", path, rc ? ": " : "", rc ? err.msg : ""))
			continue;
		char stem[LX_PATH_LEN];
		const char *base = strrchr(path, '/') + 1;
		text_copy(stem, sizeof(stem), base);
		*strrchr(stem, '.') = '\0';
		CHECK(!strcmp(stem, m.product), "%s: product slug '%s' matches the file name", path,
		      m.product);
		CHECK(m.nrules > 0 && m.nroles > 0, "%s: %d roles, %d services, %d rules", path,
		      m.nroles, m.nservices, m.nrules);
		int kinds[3] = { 0, 0, 0 };
		for (int r = 0; r < m.nrules; r++)
			kinds[m.rules[r].kind]++;
		/* Every on-premises product has an Edge that opens connections; Teams has no
		 * server of the site's own. */
		CHECK(kinds[LX_KIND_LISTEN] > 0 &&
			  (kinds[LX_KIND_OUTBOUND_TO] > 0 || !strcmp(m.product, "teams")),
		      "%s: %d listen, %d outbound-to, %d outbound-from rules", path,
		      kinds[LX_KIND_LISTEN], kinds[LX_KIND_OUTBOUND_TO],
		      kinds[LX_KIND_OUTBOUND_FROM]);
		/* README: path MTU discovery and neighbour discovery pass a protected host. */
		CHECK(has_icmp(&m, 4, 3, 4) && has_icmp(&m, 6, 2, MATRIX_ICMP_ANY) &&
			  has_icmp(&m, 6, 135, MATRIX_ICMP_ANY) &&
			  has_icmp(&m, 6, 136, MATRIX_ICMP_ANY),
		      "%s: %d icmp lines, among them ipv4 3:4, ipv6 2, 135 and 136", path, m.nicmp);
		test_shipped_sources(&m, path);
		test_shipped_compile(&m, path);
		matrix_free(&m);
	}
	globfree(&g);
}

/* ---- site ---- */

static void test_site_prefix(void)
{
	struct site_prefix p;
	char why[256] = "", text[64];

	int rc = site_parse_prefix("192.0.2.10", &p, why, sizeof(why));
	site_format_prefix(&p, text, sizeof(text));
	CHECK(rc == 0 && p.family == 4 && p.len == 32 && !strcmp(text, "192.0.2.10/32"),
	      "site_parse_prefix: bare IPv4 address is a /32 (%s)", text);
	rc = site_parse_prefix("2001:db8::1", &p, why, sizeof(why));
	site_format_prefix(&p, text, sizeof(text));
	CHECK(rc == 0 && p.family == 6 && p.len == 128 && !strcmp(text, "2001:db8::1/128"),
	      "site_parse_prefix: bare IPv6 address is a /128 (%s)", text);
	rc = site_parse_prefix("10.0.0.0/8", &p, why, sizeof(why));
	CHECK(rc == 0 && p.len == 8 && p.addr[0] == 10, "site_parse_prefix: 10.0.0.0/8");
	rc = site_parse_prefix("0.0.0.0/0", &p, why, sizeof(why));
	CHECK(rc == 0 && p.len == 0, "site_parse_prefix: 0.0.0.0/0");
	rc = site_parse_prefix("::/0", &p, why, sizeof(why));
	CHECK(rc == 0 && p.len == 0 && p.family == 6, "site_parse_prefix: ::/0");
	rc = site_parse_prefix("2001:db8:e::/48", &p, why, sizeof(why));
	CHECK(rc == 0 && p.len == 48 && p.addr[5] == 0x0e, "site_parse_prefix: 2001:db8:e::/48");

	struct {
		const char *text, *why;
	} bad[] = {
		{ "192.0.2.0/33", "prefix length '/33' is not 0..32" },
		{ "2001:db8::/129", "prefix length '/129' is not 0..128" },
		{ "192.0.2.0/", "prefix length '/' is not 0..32" },
		{ "192.0.2.0/-1", "prefix length '/-1' is not 0..32" },
		{ "192.0.2.0/24x", "prefix length '/24x' is not 0..32" },
		{ "192.0.2.1/24", "'192.0.2.1/24' has host bits set beyond /24 (did you mean "
				  "192.0.2.0/24?)" },
		{ "2001:db8::1/64", "'2001:db8::1/64' has host bits set beyond /64 (did you mean "
				    "2001:db8::/64?)" },
		{ "10.1.2.3/0",
		  "'10.1.2.3/0' has host bits set beyond /0 (did you mean 0.0.0.0/0?)" },
		{ "fe80::1%eth0",
		  "'fe80::1%eth0': scope ids (%IFACE) have no meaning in a site file" },
		{ "fe80::%eth0/64",
		  "'fe80::%eth0/64': scope ids (%IFACE) have no meaning in a site file" },
		{ "192.0.2.300", "'192.0.2.300' is not an IPv4 or IPv6 address" },
		{ "192.0.2", "'192.0.2' is not an IPv4 or IPv6 address" },
		{ "frontend.example.com", "'frontend.example.com' is not an IPv4 or IPv6 address" },
		{ "2001:db8:::1", "'2001:db8:::1' is not an IPv4 or IPv6 address" },
		{ "", "'' is not an IPv4 or IPv6 address" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		rc = site_parse_prefix(bad[i].text, &p, why, sizeof(why));
		if (rc == -1 && !strcmp(why, bad[i].why))
			CHECK(1, "site_parse_prefix '%s': -1, \"%s\"", bad[i].text, bad[i].why);
		else
			CHECK(0, "site_parse_prefix '%s': expected -1, \"%s\"; got %d, \"%s\"",
			      bad[i].text, bad[i].why, rc, why);
	}
	char huge[300];
	memset(huge, '1', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	rc = site_parse_prefix(huge, &p, why, sizeof(why));
	CHECK(rc == -1 && strstr(why, "is not an IP address or prefix"),
	      "site_parse_prefix: a 299-character token is refused");
}

static void test_site_errors(const struct matrix *m)
{
	site_bad(
	    m, "unknown-role.site", "frontend 192.0.2.10\ndirector 192.0.2.20\n", 2,
	    "unknown role 'director' (the test matrix has: frontend, edge-external, mediation, "
	    "all-servers, everything; keywords: protect, dscp, allow-icmp, allow-outbound, flows, "
	    "nat, qos)");
	site_bad(m, "no-prefix.site", "# roles\nfrontend\n", 2,
		 "role 'frontend' without a prefix: expected 'ROLE PREFIX ...'");
	site_bad(m, "bad-address.site", "frontend 192.0.2.10 192.0.2.300\n", 1,
		 "'192.0.2.300' is not an IPv4 or IPv6 address");
	site_bad(m, "len-33.site", "frontend 192.0.2.0/33\n", 1,
		 "prefix length '/33' is not 0..32");
	site_bad(m, "len-129.site", "frontend 2001:db8::/129\n", 1,
		 "prefix length '/129' is not 0..128");
	site_bad(m, "host-bits.site", "\nedge-external 203.0.113.7/24\n", 2,
		 "'203.0.113.7/24' has host bits set beyond /24 (did you mean 203.0.113.0/24?)");
	site_bad(m, "host-bits6.site", "edge-external 2001:db8:e::1/48\n", 1,
		 "'2001:db8:e::1/48' has host bits set beyond /48 (did you mean 2001:db8:e::/48?)");
	site_bad(m, "scope-id.site", "frontend fe80::1%eth0\n", 1,
		 "'fe80::1%eth0': scope ids (%IFACE) have no meaning in a site file");
	site_bad(m, "quoted.site", "frontend \"192.0.2.10\"\n", 1, "a prefix is not quoted");
	/* protect, dscp and allow-icmp are keywords now: test_site_keywords has their errors. */
	site_bad(m, "protect.site", "frontend 192.0.2.10\nprotect 192.0.2.10\n", 2,
		 "protect: unknown role '192.0.2.10'");
	site_bad(m, "unterminated.site", "frontend \"192.0.2.10\n", 1, "unterminated quote");

	size_t big = 1 << 20;
	char *huge = malloc(big + 64);
	int k = sprintf(huge, "frontend 192.0.2.10\nfrontend ");
	memset(huge + k, '1', big);
	huge[(size_t)k + big] = '\n';
	char msg[64];
	snprintf(msg, sizeof(msg), "line longer than %d characters", TEXT_MAX_LINE);
	site_error_at(m, "huge-line.site", huge, (size_t)k + big + 1, 2, msg);
	free(huge);

	static const char nul[] = "frontend 192.0.2.10\nedge-external 203.0.\0"
				  "113.0/24\n";
	site_error_at(m, "nul.site", nul, sizeof(nul) - 1, 2,
		      "binary data (NUL byte): not a text file");
}

/* A site without a single prefix. */
static void test_site_empty(const struct matrix *m)
{
	site_bad(m, "empty.site", "", 1, "the site names no role and prefix");
	site_bad(m, "comments.site", "# nothing\n\n# here\n", 3,
		 "the site names no role and prefix");
}

/* Runs fn with stderr sent to a file; returns what it wrote (malloc'd). */
static char *capture_stderr(int (*fn)(void *), void *arg, int *rc)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/stderr.txt", tmpdir);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || fd < 0)
		return NULL;
	dup2(fd, 2);
	close(fd);
	*rc = fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	size_t len;
	char *out = read_all(path, &len);
	unlink(path);
	return out;
}

struct site_call {
	const char *path;
	const struct matrix *m;
	struct site *s;
	struct text_error *err;
};

static int call_site_load(void *arg)
{
	struct site_call *c = arg;
	return site_load(c->path, c->m, c->s, c->err);
}

static const struct compiled_addr *find_addr(const struct compiled *c, const char *prefix)
{
	struct site_prefix p;
	char why[256];
	if (site_parse_prefix(prefix, &p, why, sizeof(why)) < 0)
		return NULL;
	for (int i = 0; i < c->naddrs; i++)
		if (c->addrs[i].family == p.family && c->addrs[i].len == p.len &&
		    !memcmp(c->addrs[i].addr, p.addr, 16))
			return &c->addrs[i];
	return NULL;
}

static uint64_t roles_of(const struct matrix *m, const char *list)
{
	char buf[256];
	uint64_t roles = 0;
	text_copy(buf, sizeof(buf), list);
	for (char *save = NULL, *r = strtok_r(buf, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
		int i = matrix_find_role(m, r);
		if (i < 0) {
			fprintf(stderr, "test bug: no role %s\n", r);
			exit(2);
		}
		roles |= 1ULL << i;
	}
	return roles;
}

static void test_site_semantics(const struct matrix *m)
{
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	int rc;

	/* The same prefix on two lines: one entry with both roles, first line kept. */
	const char *path = tmp_text("merge.site", "frontend 192.0.2.10\n"
						  "mediation 2001:db8::7 192.0.2.10\n");
	rc = site_load(path, m, &s, &err);
	if (CHECK(rc == 0, "site merge: loads%s", rc ? why(&err) : "")) {
		const struct site_prefix *p = s.nprefixes ? &s.prefixes[0] : NULL;
		CHECK(s.nprefixes == 2 && p && p->family == 4 &&
			  p->roles == roles_of(m, "frontend,mediation") && p->line == 1 &&
			  s.nwarnings == 0,
		      "site merge: same prefix on two lines holds both roles, no warning");
		CHECK(s.roles_present == roles_of(m, "frontend,mediation"),
		      "site merge: roles_present names the two roles");
		site_free(&s);
	}

	/* The same prefix twice for the same role: a warning, not an error. */
	path =
	    tmp_text("dup.site", "frontend 192.0.2.10\n# again\nfrontend 192.0.2.11 192.0.2.10\n");
	struct site_call call = { path, m, &s, &err };
	char *warn = capture_stderr(call_site_load, &call, &rc);
	char want[512];
	snprintf(want, sizeof(want), "%s:3: warning: 192.0.2.10/32 is already frontend (line 1)",
		 path);
	CHECK(rc == 0 && s.nwarnings == 1 && s.nprefixes == 2,
	      "site duplicate same-role prefix: loads with one warning (rc %d, %d warnings)", rc,
	      rc == 0 ? s.nwarnings : -1);
	for (size_t n = warn ? strlen(warn) : 0; n && warn[n - 1] == '\n'; n--)
		warn[n - 1] = '\0';
	if (warn && strstr(warn, want))
		CHECK(1, "site duplicate same-role prefix: warning 'dup.site:3: warning: "
			 "192.0.2.10/32 is already frontend (line 1)'");
	else
		CHECK(0, "site duplicate same-role prefix: expected warning '%s', got '%s'", want,
		      warn ? warn : "(nothing)");
	free(warn);
	if (rc == 0)
		site_free(&s);

	/* The base site: hosts inside other roles' prefixes, closure through includes=. */
	rc = site_load(BASE_SITE, m, &s, &err);
	if (!CHECK(rc == 0, "%s loads%s", BASE_SITE, rc ? why(&err) : ""))
		return;
	CHECK(s.nprefixes == 9 && s.nwarnings == 0, "base site: 9 prefixes (got %d)", s.nprefixes);
	rc = compile_tables(m, &s, &c, &err);
	if (!CHECK(rc == 0, "base site compiles%s", rc ? why(&err) : "")) {
		site_free(&s);
		return;
	}
	struct {
		const char *prefix, *roles;
	} want_roles[] = {
		{ "192.0.2.10", "frontend,all-servers,everything" },
		{ "2001:db8::10", "frontend,all-servers,everything" },
		{ "203.0.113.0/24", "edge-external,everything" },
		{ "2001:db8:e::/48", "edge-external,everything" },
		{ "198.51.100.0/28", "mediation,all-servers,everything" },
		{ "198.51.100.5", "frontend,mediation,all-servers,everything" },
		{ "2001:db8:d::5", "frontend,mediation,all-servers,everything" },
	};
	for (size_t i = 0; i < sizeof(want_roles) / sizeof(want_roles[0]); i++) {
		const struct compiled_addr *a = find_addr(&c, want_roles[i].prefix);
		CHECK(a && a->group > 0 && (int)a->group < c.ngroups &&
			  c.group_roles[a->group] == roles_of(m, want_roles[i].roles),
		      "base site: %s holds %s", want_roles[i].prefix, want_roles[i].roles);
	}
	/* The broadcast addresses of the two IPv4 prefixes keep their roles, in groups that
	 * are never a client's peer. */
	const struct compiled_addr *b24 = find_addr(&c, "203.0.113.255");
	const struct compiled_addr *b28 = find_addr(&c, "198.51.100.15");
	const struct compiled_addr *n24 = find_addr(&c, "203.0.113.0/24");
	CHECK(b24 && b28 && n24 && b24->group != n24->group &&
		  c.group_roles[b24->group] == c.group_roles[n24->group] &&
		  c.group_nonpeer[b24->group] && c.group_nonpeer[b28->group] &&
		  !(c.peer_groups & (1u << b24->group | 1u << b28->group)) &&
		  (c.peer_groups & 1u << n24->group),
	      "base site: 203.0.113.255 and 198.51.100.15 (broadcast addresses) keep their roles, "
	      "never a peer");
	CHECK(c.ngroups == 7,
	      "base site: 4 distinct role sets and 2 broadcast groups, groups 1..6 (ngroups %d)",
	      c.ngroups);
	CHECK(c.hosts4 == 3 && c.broadcasts4 == 2 && c.role_groups == 4 && c.nets4 == 2 &&
		  c.hosts6 == 2 && c.nets6 == 2 &&
		  c.config_flags ==
		      (LX_CFG_HOST4 | LX_CFG_NET4 | LX_CFG_HOST6 | LX_CFG_NET6 | LX_CFG_FILTER6),
	      "base site: host and prefix counts (and 2 broadcast hosts), config flags");
	check_filters(&s, &c, "base site");
	CHECK(c.nactive == m->nrules, "base site: every rule is active");

	/* Precedence: smallest range wins; same width, the earlier line. */
	const struct compiled_addr *fe = find_addr(&c, "192.0.2.10");
	const struct compiled_addr *med = find_addr(&c, "198.51.100.0/28");
	const struct compiled_addr *edge = find_addr(&c, "203.0.113.0/24");
	const struct compiled_addr *both = find_addr(&c, "198.51.100.5");
	if (fe && med && edge && both) {
		struct {
			const struct compiled_addr *a;
			const char *who;
			int proto;
			uint32_t port, rule;
		} prec[] = {
			{ fe, "frontend", LX_PROTO_TCP, 5061, 1 },
			{ fe, "frontend", LX_PROTO_TCP, 443, 2 },
			{ fe, "frontend", LX_PROTO_TCP, 49152, 4 },
			{ fe, "frontend", LX_PROTO_TCP, 57500, 4 },
			{ fe, "frontend", LX_PROTO_TCP, 57501, 3 },
			{ fe, "frontend", LX_PROTO_TCP, 65535, 3 },
			{ fe, "frontend", LX_PROTO_UDP, 50000, 5 },
			{ fe, "frontend", LX_PROTO_UDP, 65535, 0 },
			{ fe, "frontend", LX_PROTO_TCP, 5000, 9 },
			{ fe, "frontend", LX_PROTO_TCP, 5068, 9 },
			{ fe, "frontend", LX_PROTO_TCP, 5120, 0 },
			{ fe, "frontend", LX_PROTO_UDP, 3478, 0 },
			{ med, "mediation", LX_PROTO_TCP, 5068, 8 },
			{ med, "mediation", LX_PROTO_TCP, 5049, 9 },
			{ med, "mediation", LX_PROTO_TCP, 5050, 9 },
			{ med, "mediation", LX_PROTO_TCP, 5099, 9 },
			{ med, "mediation", LX_PROTO_TCP, 5100, 10 },
			{ med, "mediation", LX_PROTO_TCP, 5149, 10 },
			{ med, "mediation", LX_PROTO_TCP, 5150, 0 },
			{ med, "mediation", LX_PROTO_TCP, 5061, 9 },
			{ med, "mediation", LX_PROTO_TCP, 443, 0 },
			{ med, "mediation", LX_PROTO_TCP, 60000, 0 },
			{ med, "mediation", LX_PROTO_TCP, 50000, 4 },
			{ edge, "edge-external", LX_PROTO_UDP, 3478, 6 },
			{ edge, "edge-external", LX_PROTO_TCP, 443, 7 },
			{ edge, "edge-external", LX_PROTO_TCP, 3478, 0 },
			{ edge, "edge-external", LX_PROTO_TCP, 5000, 9 },
			{ edge, "edge-external", LX_PROTO_UDP, 50000, 0 },
			{ both, "frontend+mediation", LX_PROTO_TCP, 443, 2 },
			{ both, "frontend+mediation", LX_PROTO_TCP, 5068, 8 },
			{ both, "frontend+mediation", LX_PROTO_TCP, 5120, 10 },
			{ both, "frontend+mediation", LX_PROTO_TCP, 5061, 1 },
		};
		for (size_t i = 0; i < sizeof(prec) / sizeof(prec[0]); i++) {
			uint16_t got =
			    compiled_rule_at(&c, prec[i].a->group, prec[i].proto, prec[i].port);
			CHECK(got == prec[i].rule,
			      "compile precedence: %s %s %u -> rule %u (got %u)", prec[i].who,
			      matrix_proto_name(prec[i].proto), prec[i].port, prec[i].rule, got);
		}
	}
	check_tables_consistent("base site", m, &c);
	compile_free(&c);
	site_free(&s);

	/* A role present only through includes= activates nothing by itself. */
	path = tmp_text("edge-only.site", "edge-external 203.0.113.1\n");
	if (site_load(path, m, &s, &err) == 0) {
		if (compile_tables(m, &s, &c, &err) == 0) {
			/* edge-external: rules 6, 7; everything (by closure): rule 9 */
			CHECK(c.nactive == 3 && c.active[5] && c.active[6] && c.active[8] &&
				  !c.active[0],
			      "compile: only rules of roles present (with closure) are active (%d)",
			      c.nactive);
			check_tables_consistent("edge-only site", m, &c);
			compile_free(&c);
		}
		site_free(&s);
	}
}

/* 32 roles, 32 distinct hosts: the 32nd role set is one more than the groups hold. */
static void test_too_many_groups(void)
{
	char mtext[8192], stext[4096];
	int k = sprintf(mtext, "product many \"Many roles\"\nservice s - \"S\"\n");
	for (int i = 0; i < 32; i++)
		k += sprintf(mtext + k, "role r%d \"R%d\"\nrule r%d s tcp %d local:t\n", i, i, i,
			     1000 + i);
	const char *mpath = tmp_text("many.matrix", mtext);
	struct matrix m;
	struct text_error err = { { 0 } };
	if (!CHECK(matrix_load(mpath, &m, &err) == 0, "32-role matrix loads%s", why(&err)))
		return;
	for (int nroles = 31; nroles <= 32; nroles++) {
		k = sprintf(stext, "# %d roles, one host each\n", nroles);
		for (int i = 0; i < nroles; i++)
			k += sprintf(stext + k, "r%d 10.0.%d.1\n", i, i);
		char name[32];
		snprintf(name, sizeof(name), "groups-%d.site", nroles);
		const char *spath = tmp_text(name, stext);
		struct site s;
		struct compiled c;
		if (!CHECK(site_load(spath, &m, &s, &err) == 0, "%s loads", name))
			continue;
		int rc = compile_tables(&m, &s, &c, &err);
		if (nroles == 31) {
			CHECK(rc == 0 && c.ngroups == 32,
			      "31 distinct role sets compile (ngroups %d)",
			      rc == 0 ? c.ngroups : -1);
		} else {
			expect_error(
			    "compile 32 distinct role sets", rc, err.msg, spath, 33,
			    "this prefix makes more than 31 distinct combinations of roles");
		}
		if (rc == 0)
			compile_free(&c);
		site_free(&s);
	}
	matrix_free(&m);
}

static void test_site_crlf(const struct matrix *m)
{
	size_t len;
	char *text = read_all(BASE_SITE, &len);
	if (!text)
		return;
	char *crlf = to_crlf(text);
	const char *path = tmp_text("crlf.site", crlf);
	struct site a, b;
	struct text_error err = { { 0 } };
	int ra = site_load(BASE_SITE, m, &a, &err);
	int rb = site_load(path, m, &b, &err);
	int same =
	    ra == 0 && rb == 0 && a.nprefixes == b.nprefixes && a.roles_present == b.roles_present;
	for (int i = 0; same && i < a.nprefixes; i++)
		same = a.prefixes[i].family == b.prefixes[i].family &&
		       a.prefixes[i].len == b.prefixes[i].len &&
		       a.prefixes[i].roles == b.prefixes[i].roles &&
		       a.prefixes[i].line == b.prefixes[i].line &&
		       !memcmp(a.prefixes[i].addr, b.prefixes[i].addr, 16);
	CHECK(same, "site with CRLF line ends parses like LF%s", why(&err));
	if (ra == 0)
		site_free(&a);
	if (rb == 0)
		site_free(&b);
	free(crlf);
	free(text);
}

/* ---- endpoint_parse ---- */

static void test_endpoints(void)
{
	struct endpoint ep;
	char why[256];
	static const uint8_t v4[4] = { 192, 0, 2, 10 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

	int rc = endpoint_parse("192.0.2.10:5061", &ep, why, sizeof(why));
	CHECK(rc == 0 && ep.family == 4 && ep.port == 5061 && !memcmp(ep.addr, v4, 4),
	      "endpoint_parse 192.0.2.10:5061");
	rc = endpoint_parse("[2001:db8::1]:443", &ep, why, sizeof(why));
	CHECK(rc == 0 && ep.family == 6 && ep.port == 443 && !memcmp(ep.addr, v6, 16),
	      "endpoint_parse [2001:db8::1]:443");
	rc = endpoint_parse("192.0.2.10:0", &ep, why, sizeof(why));
	CHECK(rc == 0 && ep.port == 0, "endpoint_parse port 0");
	rc = endpoint_parse("192.0.2.10:65535", &ep, why, sizeof(why));
	CHECK(rc == 0 && ep.port == 65535, "endpoint_parse port 65535");
	rc = endpoint_parse("[::ffff:192.0.2.1]:1", &ep, why, sizeof(why));
	CHECK(rc == 0 && ep.family == 6 && ep.addr[10] == 0xff && ep.addr[15] == 1,
	      "endpoint_parse IPv4-mapped IPv6");

	const char *bad[] = {
		"192.0.2.10",
		"192.0.2.10:",
		"192.0.2.10:65536",
		"192.0.2.10:-1",
		"192.0.2.10:80x",
		"192.0.2.300:80",
		"2001:db8::1:443",
		"2001:db8::1",
		"[2001:db8::1]",
		"[2001:db8::1]443",
		"[2001:db8::1:443",
		"[192.0.2.1]:80",
		"[2001:db8::1]:",
		":80",
		"",
		"[2001:db8::1]:99999",
		"192.0.2.10:5061 ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		rc = endpoint_parse(bad[i], &ep, why, sizeof(why));
		CHECK(rc == -1 && why[0], "endpoint_parse rejects '%s' (%s)", bad[i], why);
	}
	rc = endpoint_parse("192.0.2.10:65536", &ep, why, sizeof(why));
	CHECK(rc == -1 && !strcmp(why, "port '65536' is not 0..65535"),
	      "endpoint_parse 65536: says 'port '65536' is not 0..65535' (%s)", why);
	rc = endpoint_parse("2001:db8::1:443", &ep, why, sizeof(why));
	CHECK(rc == -1 && !strcmp(why, "'2001:db8::1:443': expected IPV4:PORT or [IPV6]:PORT"),
	      "endpoint_parse IPv6 without brackets: asks for [IPV6]:PORT (%s)", why);
}

/* ---- packet_build ---- */

/* A TCP/UDP/ICMPv6 checksum over the pseudo header verifies when the sum is 0xffff. */
static int l4_sum_ok(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
		     const uint8_t *l4, size_t len)
{
	size_t alen = family == 4 ? 4 : 16;
	uint32_t sum = csum_add(src, alen, 0);
	sum = csum_add(dst, alen, sum);
	sum += proto + (uint32_t)len;
	return csum_fold(csum_add(l4, len, sum)) == 0xffff;
}

static void spec_init(struct packet_spec *s, int family, uint8_t proto)
{
	memset(s, 0, sizeof(*s));
	s->ipproto = proto;
	s->src.family = s->dst.family = family;
	if (family == 4) {
		memcpy(s->src.addr, (uint8_t[]){ 198, 51, 100, 1 }, 4);
		memcpy(s->dst.addr, (uint8_t[]){ 192, 0, 2, 10 }, 4);
	} else {
		s->src.addr[0] = s->dst.addr[0] = 0x20;
		s->src.addr[1] = s->dst.addr[1] = 0x01;
		s->src.addr[2] = s->dst.addr[2] = 0x0d;
		s->src.addr[3] = s->dst.addr[3] = 0xb8;
		s->src.addr[15] = 1;
		s->dst.addr[15] = 0x10;
	}
	s->src.port = 50123;
	s->dst.port = 5061;
}

static void test_packets(void)
{
	uint8_t buf[4096];
	struct packet_spec s;

	/* IPv4 TCP, no VLAN. */
	spec_init(&s, 4, IPPROTO_TCP);
	s.payload_len = 11;
	s.tos = 46 << 2;
	size_t len = packet_build(&s, buf, sizeof(buf));
	CHECK(len == 14 + 20 + 20 + 11, "packet ipv4 tcp: length 65 (got %zu)", len);
	CHECK(get16(buf + 12) == 0x0800, "packet ipv4 tcp: ethertype 0x0800");
	const uint8_t *ip = buf + 14;
	CHECK(ip[0] == 0x45 && ip[1] == 46 << 2 && get16(ip + 2) == len - 14 && ip[9] == 6 &&
		  ip[8] > 0 && get16(ip + 6) == 0,
	      "packet ipv4 tcp: version/IHL, TOS, total length, protocol, TTL, no fragment");
	CHECK(csum_fold(csum_add(ip, 20, 0)) == 0xffff,
	      "packet ipv4 tcp: header checksum verifies");
	CHECK(!memcmp(ip + 12, s.src.addr, 4) && !memcmp(ip + 16, s.dst.addr, 4),
	      "packet ipv4 tcp: addresses");
	const uint8_t *l4 = ip + 20;
	CHECK(get16(l4) == 50123 && get16(l4 + 2) == 5061 && l4[12] >> 4 == 5 && l4[13] == 0x02,
	      "packet ipv4 tcp: ports, data offset 5, SYN by default");
	CHECK(l4_sum_ok(4, s.src.addr, s.dst.addr, 6, l4, len - 34),
	      "packet ipv4 tcp: TCP checksum verifies");

	/* IPv4 with options: IHL grows, checksum still verifies. */
	for (int opt = 4; opt <= 40; opt += 12) {
		spec_init(&s, 4, IPPROTO_UDP);
		s.ipv4_options = (uint8_t)opt;
		s.payload_len = 3;
		len = packet_build(&s, buf, sizeof(buf));
		ip = buf + 14;
		size_t hl = 20 + (size_t)opt;
		CHECK(len == 14 + hl + 8 + 3 && (ip[0] & 0x0f) == hl / 4 &&
			  get16(ip + 2) == hl + 11 && csum_fold(csum_add(ip, hl, 0)) == 0xffff &&
			  get16(ip + hl + 4) == 11 &&
			  l4_sum_ok(4, s.src.addr, s.dst.addr, 17, ip + hl, 11),
		      "packet ipv4 udp with %d bytes of options: IHL %zu, lengths, checksums", opt,
		      hl / 4);
	}

	/* Fragment fields. */
	spec_init(&s, 4, IPPROTO_UDP);
	s.more_fragments = 1;
	s.frag_offset = 185;
	len = packet_build(&s, buf, sizeof(buf));
	CHECK(len && get16(buf + 14 + 6) == (0x2000 | 185) &&
		  csum_fold(csum_add(buf + 14, 20, 0)) == 0xffff,
	      "packet ipv4 fragment: MF and offset, checksum verifies");

	/* VLAN tags. */
	spec_init(&s, 4, IPPROTO_UDP);
	s.nvlans = 1;
	s.vlan_id[0] = 100;
	len = packet_build(&s, buf, sizeof(buf));
	CHECK(len == 14 + 4 + 20 + 8 && get16(buf + 12) == 0x8100 && get16(buf + 14) == 100 &&
		  get16(buf + 16) == 0x0800 && buf[18] == 0x45,
	      "packet one 802.1Q tag: TPID, VLAN id, inner ethertype, IP after");
	s.nvlans = 2;
	s.vlan_tpid[0] = 0x88a8;
	s.vlan_id[0] = 200;
	s.vlan_id[1] = 4095 + 4096; /* only 12 bits are the VLAN id */
	len = packet_build(&s, buf, sizeof(buf));
	CHECK(len == 14 + 8 + 20 + 8 && get16(buf + 12) == 0x88a8 && get16(buf + 14) == 200 &&
		  get16(buf + 16) == 0x8100 && get16(buf + 18) == 4095 &&
		  get16(buf + 20) == 0x0800 && buf[22] == 0x45,
	      "packet 802.1ad + 802.1Q tags: TPIDs, VLAN ids, inner ethertype");

	/* IPv6 UDP, destination options and a fragment header. */
	spec_init(&s, 6, IPPROTO_UDP);
	s.payload_len = 20;
	s.tos = 0xb8;
	len = packet_build(&s, buf, sizeof(buf));
	ip = buf + 14;
	CHECK(len == 14 + 40 + 8 + 20 && get16(buf + 12) == 0x86dd && ip[0] >> 4 == 6 &&
		  ((ip[0] & 0x0f) << 4 | ip[1] >> 4) == 0xb8 && get16(ip + 4) == 28 &&
		  ip[6] == 17 && ip[7] > 0,
	      "packet ipv6 udp: version, traffic class, payload length, next header");
	CHECK(!memcmp(ip + 8, s.src.addr, 16) && !memcmp(ip + 24, s.dst.addr, 16) &&
		  get16(ip + 44) == 28 && l4_sum_ok(6, s.src.addr, s.dst.addr, 17, ip + 40, 28),
	      "packet ipv6 udp: addresses, UDP length and checksum");

	spec_init(&s, 6, IPPROTO_TCP);
	s.ipv6_ext = 3;
	s.ipv6_fragment = 1;
	s.more_fragments = 1;
	len = packet_build(&s, buf, sizeof(buf));
	ip = buf + 14;
	int chain_ok = len == 14 + 40 + 3 * 8 + 8 + 20 && get16(ip + 4) == 3 * 8 + 8 + 20 &&
		       ip[6] == IPPROTO_DSTOPTS;
	const uint8_t *h = ip + 40;
	for (int i = 0; chain_ok && i < 3; i++, h += 8)
		chain_ok = h[0] == (i < 2 ? IPPROTO_DSTOPTS : IPPROTO_FRAGMENT) && h[1] == 0;
	chain_ok = chain_ok && h[0] == IPPROTO_TCP && get16(h + 2) == 1 /* offset 0, M */;
	CHECK(chain_ok, "packet ipv6 3 destination options + fragment: next headers chain to TCP");
	CHECK(l4_sum_ok(6, s.src.addr, s.dst.addr, 6, h + 8, 20),
	      "packet ipv6 with extension headers: TCP checksum over the upper layer only");
	spec_init(&s, 6, IPPROTO_UDP);
	s.ipv6_fragment = 1;
	s.frag_offset = 100;
	len = packet_build(&s, buf, sizeof(buf));
	CHECK(len && buf[14 + 6] == IPPROTO_FRAGMENT && get16(buf + 14 + 40 + 2) == 100 << 3,
	      "packet ipv6 non-first fragment: offset in 8-byte units, M clear");

	/* ICMP and ICMPv6. */
	spec_init(&s, 4, IPPROTO_ICMP);
	len = packet_build(&s, buf, sizeof(buf));
	CHECK(len == 14 + 20 + 8 && buf[14 + 9] == 1 && buf[34] == 8 &&
		  csum_fold(csum_add(buf + 34, 8, 0)) == 0xffff,
	      "packet icmp echo request, checksum verifies");
	spec_init(&s, 6, IPPROTO_ICMPV6);
	len = packet_build(&s, buf, sizeof(buf));
	CHECK(len == 14 + 40 + 8 && buf[14 + 6] == 58 && buf[54] == 128 &&
		  l4_sum_ok(6, s.src.addr, s.dst.addr, 58, buf + 54, 8),
	      "packet icmpv6 echo request, checksum verifies");

	/* What does not fit or cannot be built. */
	spec_init(&s, 4, IPPROTO_TCP);
	CHECK(packet_build(&s, buf, 40) == 0, "packet_build: 0 when the buffer is too small");
	s.payload_len = sizeof(buf);
	CHECK(packet_build(&s, buf, sizeof(buf)) == 0,
	      "packet_build: 0 when the payload is too big");
	s.payload_len = 0;
	s.nvlans = 3;
	CHECK(packet_build(&s, buf, sizeof(buf)) == 0, "packet_build: 0 for three VLAN tags");
	s.nvlans = 0;
	s.ipv4_options = 44;
	CHECK(packet_build(&s, buf, sizeof(buf)) == 0, "packet_build: 0 for 44 bytes of options");
	s.ipv4_options = 6;
	CHECK(packet_build(&s, buf, sizeof(buf)) == 0, "packet_build: 0 for options not x4");
	s.ipv4_options = 0;
	s.dst.family = 6;
	CHECK(packet_build(&s, buf, sizeof(buf)) == 0, "packet_build: 0 for mixed families");
}

/* ---- outbound rules and icmp lines ---- */

/* OB_MATRIX (tests/support.h) opens with a comment of this many lines. */
#define OB_HEAD 8

static void test_matrix_outbound(void)
{
	struct matrix m;
	struct text_error err = { { 0 } };
	int rc = matrix_load(OB_MATRIX, &m, &err);
	if (!CHECK(rc == 0, "outbound matrix loads%s", why(&err)))
		return;
	int edge = matrix_find_role(&m, "edge"), fe = matrix_find_role(&m, "fe");
	int pool = matrix_find_role(&m, "pool");
	int sip = matrix_find_service(&m, "sip"), dns = matrix_find_service(&m, "dns");
	int relay = matrix_find_service(&m, "relay");
	CHECK(m.nrules == 10 && m.nicmp == 3, "outbound matrix: 10 rules, 3 icmp lines (%d, %d)",
	      m.nrules, m.nicmp);
	struct {
		int kind, role, service, proto;
		uint16_t lo, hi;
		const char *source;
		int line;
	} want[] = {
		{ LX_KIND_LISTEN, edge, sip, LX_PROTO_TCP, 5061, 5061, "local:t", OB_HEAD + 9 },
		{ LX_KIND_OUTBOUND_TO, edge, sip, LX_PROTO_TCP, 5061, 5061, "ref:edge-firewall",
		  OB_HEAD + 10 },
		{ LX_KIND_OUTBOUND_TO, edge, matrix_find_service(&m, "wide"), LX_PROTO_TCP, 5000,
		  5100, "local:t", OB_HEAD + 11 },
		{ LX_KIND_OUTBOUND_FROM, edge, relay, LX_PROTO_UDP, 50000, 59999, "derived:001",
		  OB_HEAD + 12 },
		{ LX_KIND_LISTEN, edge, relay, LX_PROTO_UDP, 50000, 50009, "local:t",
		  OB_HEAD + 13 },
		{ LX_KIND_OUTBOUND_TO, pool, dns, LX_PROTO_TCP, 5050, 5150, "seed:004",
		  OB_HEAD + 14 },
		{ LX_KIND_LISTEN, fe, sip, LX_PROTO_TCP, 5061, 5061, "local:t", OB_HEAD + 15 },
		{ LX_KIND_OUTBOUND_TO, edge, dns, LX_PROTO_UDP, 53, 53, "ref:edge-firewall",
		  OB_HEAD + 16 },
		{ LX_KIND_OUTBOUND_FROM, fe, sip, LX_PROTO_TCP, 5061, 5061, "local:t",
		  OB_HEAD + 17 },
		{ LX_KIND_OUTBOUND_TO, fe, sip, LX_PROTO_TCP, 5061, 5061, "local:t", OB_HEAD + 18 },
	};
	for (int i = 0; i < m.nrules && i < (int)(sizeof(want) / sizeof(want[0])); i++) {
		const struct matrix_rule *r = &m.rules[i];
		CHECK(r->kind == want[i].kind && r->role == want[i].role &&
			  r->service == want[i].service && r->proto == want[i].proto &&
			  r->port_lo == want[i].lo && r->port_hi == want[i].hi &&
			  !strcmp(r->source, want[i].source) && r->line == want[i].line,
		      "outbound matrix: rule %d is %s %s %s %u-%u %s, line %d (got %s %s %s %u-%u "
		      "%s, line %d)",
		      i + 1, matrix_kind_name(want[i].kind), m.roles[want[i].role].slug,
		      matrix_proto_name(want[i].proto), want[i].lo, want[i].hi, want[i].source,
		      want[i].line, matrix_kind_name(r->kind), m.roles[r->role].slug,
		      matrix_proto_name(r->proto), r->port_lo, r->port_hi, r->source, r->line);
	}
	struct {
		int family, type, code;
		const char *name;
		int line;
	} icmp[] = {
		{ 4, 3, 4, "Fragmentation needed", OB_HEAD + 19 },
		{ 6, 2, MATRIX_ICMP_ANY, "Packet too big", OB_HEAD + 20 },
		{ 6, 135, MATRIX_ICMP_ANY, "Neighbour # solicitation", OB_HEAD + 21 },
	};
	for (int i = 0; i < m.nicmp && i < 3; i++)
		CHECK(m.icmp[i].family == icmp[i].family && m.icmp[i].type == icmp[i].type &&
			  m.icmp[i].code == icmp[i].code && !strcmp(m.icmp[i].name, icmp[i].name) &&
			  m.icmp[i].line == icmp[i].line,
		      "outbound matrix: icmp line %d is ipv%d %d%s%.0d '%s' at line %d", i + 1,
		      icmp[i].family, icmp[i].type, icmp[i].code < 0 ? " (any code)" : ":",
		      icmp[i].code < 0 ? 0 : icmp[i].code, icmp[i].name, icmp[i].line);
	CHECK(!strcmp(matrix_kind_name(LX_KIND_LISTEN), "listen") &&
		  !strcmp(matrix_kind_name(LX_KIND_OUTBOUND_TO), "outbound-to") &&
		  !strcmp(matrix_kind_name(LX_KIND_OUTBOUND_FROM), "outbound-from"),
	      "matrix_kind_name: listen, outbound-to, outbound-from");

	/* CRLF line ends parse exactly like LF ones, outbound and icmp lines included. */
	size_t lf_len;
	char *lf = read_all(OB_MATRIX, &lf_len);
	char *crlf = lf ? to_crlf(lf) : NULL;
	free(lf);
	expect_same_matrix(&m, "outbound-crlf.matrix", crlf,
			   "outbound matrix with CRLF line ends parses like LF");
	free(crlf);
	matrix_free(&m);

	/* Only outbound rules: a matrix all the same. Only icmp lines: no rule. */
	const char *path =
	    tmp_text("outbound-only.matrix", "product t \"T\"\nrole a \"A\"\nservice s - \"S\"\n"
					     "outbound a s udp to 53 ref:x\n");
	rc = matrix_load(path, &m, &err);
	CHECK(rc == 0 && m.nrules == 1 && m.rules[0].kind == LX_KIND_OUTBOUND_TO,
	      "a matrix of outbound rules only loads%s", why(&err));
	if (rc == 0)
		matrix_free(&m);
	char text[256];
	snprintf(text, sizeof(text), "product t \"T\"\nrole a \"A\"\nicmp ipv6 2 \"PTB\"\n");
	matrix_error_at("icmp-only.matrix", text, strlen(text), 3, "the matrix has no rule");

	/* Every source kind, and the forms of ref: and local: names. */
	static const char *const sources[] = { "seed:004",    "seed:000,001,004",
					       "derived:002", "ref:edge-firewall",
					       "ref:qos",     "local:my-site",
					       "ref:a,b" };
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		snprintf(text, sizeof(text),
			 "product t \"T\"\nrole a \"A\"\nservice s - \"S\"\n"
			 "outbound a s tcp from 1-2 %s\n",
			 sources[i]);
		rc = matrix_load(tmp_text("source-ok.matrix", text), &m, &err);
		CHECK(rc == 0 && !strcmp(m.rules[0].source, sources[i]),
		      "matrix: source %s accepted on an outbound line%s", sources[i], why(&err));
		if (rc == 0)
			matrix_free(&m);
	}

	/* matrix_parse_icmp on its own. */
	struct matrix_icmp ic;
	char reason[128];
	rc = matrix_parse_icmp("ipv4", "0", &ic, reason, sizeof(reason));
	CHECK(rc == 0 && ic.family == 4 && ic.type == 0 && ic.code == MATRIX_ICMP_ANY,
	      "matrix_parse_icmp ipv4 0: type 0, any code");
	rc = matrix_parse_icmp("ipv6", "255:255", &ic, reason, sizeof(reason));
	CHECK(rc == 0 && ic.family == 6 && ic.type == 255 && ic.code == 255,
	      "matrix_parse_icmp ipv6 255:255");
	rc = matrix_parse_icmp("ipv4", "3:0", &ic, reason, sizeof(reason));
	CHECK(rc == 0 && ic.type == 3 && ic.code == 0, "matrix_parse_icmp ipv4 3:0 (code 0)");
	struct {
		const char *family, *spec, *why;
	} bad[] = {
		{ "ipv5", "3", "ICMP family 'ipv5' is not ipv4 or ipv6" },
		{ "IPv4", "3", "ICMP family 'IPv4' is not ipv4 or ipv6" },
		{ "icmp", "3", "ICMP family 'icmp' is not ipv4 or ipv6" },
		{ "ipv4", "256", "ICMP '256': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv4", "3:256", "ICMP '3:256': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv6", "-1", "ICMP '-1': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv6", "2:", "ICMP '2:': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv6", ":2", "ICMP ':2': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv6", "2:x", "ICMP '2:x': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv6", "2:1:0", "ICMP '2:1:0': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv4", "echo", "ICMP 'echo': expected TYPE or TYPE:CODE, each 0..255" },
		{ "ipv4", "", "ICMP '': expected TYPE or TYPE:CODE, each 0..255" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reason[0] = '\0';
		rc = matrix_parse_icmp(bad[i].family, bad[i].spec, &ic, reason, sizeof(reason));
		CHECK(rc == -1 && !strcmp(reason, bad[i].why),
		      "matrix_parse_icmp %s '%s': -1, \"%s\" (got %d, \"%s\")", bad[i].family,
		      bad[i].spec, bad[i].why, rc, reason);
	}
}

static void test_matrix_outbound_errors(void)
{
	char text[8192];
	matrix_bad_line("outbound-sideways.matrix",
			"outbound edge-external stun udp sideways 53 ref:edge-firewall",
			"'sideways': outbound rules say 'to PORTS' (the peer's port) or 'from "
			"PORTS' (the role's own)");
	matrix_bad_line("outbound-upper.matrix", "outbound edge-external stun udp TO 53 ref:x",
			"'TO': outbound rules say 'to PORTS'");
	matrix_bad_line("outbound-no-direction.matrix",
			"outbound edge-external stun udp 53 ref:edge-firewall",
			"expected 'outbound ROLE SERVICE tcp|udp to|from PORT[-PORT] SOURCE'");
	matrix_bad_line("outbound-no-source.matrix", "outbound edge-external stun udp to 53",
			"expected 'outbound ROLE SERVICE tcp|udp to|from PORT[-PORT] SOURCE'");
	matrix_bad_line("outbound-extra.matrix", "outbound edge-external stun udp to 53 ref:x more",
			"expected 'outbound ROLE SERVICE tcp|udp to|from PORT[-PORT] SOURCE'");
	matrix_bad_line("outbound-unknown-role.matrix", "outbound director stun udp to 53 ref:x",
			"unknown role 'director' (declare it with a 'role' line first)");
	matrix_bad_line("outbound-unknown-service.matrix",
			"outbound edge-external dns udp to 53 ref:x",
			"unknown service 'dns' (declare it with a 'service' line first)");
	matrix_bad_line("outbound-transport.matrix", "outbound edge-external stun icmp to 53 ref:x",
			"transport 'icmp' is not tcp or udp");
	matrix_bad_line("outbound-port-0.matrix", "outbound edge-external stun udp to 0 ref:x",
			"port '0' is not 1..65535");
	matrix_bad_line("outbound-port-65536.matrix",
			"outbound edge-external stun udp from 50000-65536 ref:x",
			"port '65536' is not 1..65535");
	matrix_bad_line("outbound-backwards.matrix",
			"outbound edge-external stun udp from 59999-50000 ref:x",
			"port range 59999-50000 runs backwards");
	matrix_bad_line("outbound-ref-empty.matrix", "outbound edge-external stun udp to 53 ref:",
			"source 'ref:': expected seed:NNN, derived:NNN[,NNN], ref:NAME, doc:NAME "
			"or local:NAME");
	matrix_bad_line(
	    "outbound-local-empty.matrix", "outbound edge-external stun udp to 53 local:",
	    "source 'local:': expected seed:NNN, derived:NNN[,NNN], ref:NAME, doc:NAME or "
	    "local:NAME");
	matrix_bad_line("outbound-source-kind.matrix",
			"outbound edge-external stun udp to 53 reference:x",
			"source 'reference:x': kind must be seed, derived, ref, doc or local");

	/* Duplicates: same kind, role, transport and ports; other kinds are not duplicates. */
	snprintf(text, sizeof(text),
		 "%soutbound edge-external stun udp to 53 ref:a\n"
		 "outbound edge-external sip-tls udp to 53 ref:b\n",
		 matrix_head);
	matrix_error_at(
	    "outbound-dup-to.matrix", text, strlen(text), lines_in(matrix_head) + 2,
	    "duplicate outbound rule: edge-external udp 53 was already given at line 8");
	snprintf(text, sizeof(text),
		 "%soutbound edge-external stun udp from 50000-59999 ref:a\n"
		 "# between\n"
		 "outbound edge-external stun udp from 50000-59999 ref:a\n",
		 matrix_head);
	matrix_error_at("outbound-dup-from.matrix", text, strlen(text), lines_in(matrix_head) + 3,
			"duplicate outbound rule: edge-external udp 50000-59999 was already given "
			"at line 8");
	snprintf(text, sizeof(text), "%soutbound frontend sip-tls tcp from 5061 ref:a\n",
		 matrix_head);
	struct matrix m;
	struct text_error err = { { 0 } };
	int rc = matrix_load(tmp_text("outbound-not-dup.matrix", text), &m, &err);
	CHECK(rc == 0 && m.nrules == 2,
	      "outbound from 5061 next to rule 5061 of the same role: not a duplicate%s",
	      why(&err));
	if (rc == 0)
		matrix_free(&m);
	snprintf(text, sizeof(text),
		 "%soutbound edge-external stun udp to 3478 ref:a\n"
		 "outbound edge-external stun udp from 3478 ref:a\n"
		 "rule edge-external stun udp 3478 ref:a\n"
		 "outbound edge-external stun tcp to 3478 ref:a\n"
		 "outbound all-servers stun udp to 3478 ref:a\n"
		 "outbound edge-external stun udp to 3478-3479 ref:a\n",
		 matrix_head);
	rc = matrix_load(tmp_text("outbound-kinds.matrix", text), &m, &err);
	CHECK(rc == 0 && m.nrules == 7,
	      "to, from and listen on the same port; other transport, role, range: no "
	      "duplicates%s",
	      why(&err));
	if (rc == 0)
		matrix_free(&m);
	matrix_bad_line("rule-dup-of-listen.matrix", "rule frontend stun tcp 5061 ref:x",
			"duplicate rule: frontend tcp 5061 was already given at line 7");

	/* icmp lines. */
	matrix_bad_line("icmp-family.matrix", "icmp ipv5 3 \"X\"",
			"ICMP family 'ipv5' is not ipv4 or ipv6");
	matrix_bad_line("icmp-type-256.matrix", "icmp ipv4 256 \"X\"",
			"ICMP '256': expected TYPE or TYPE:CODE, each 0..255");
	matrix_bad_line("icmp-code-256.matrix", "icmp ipv4 3:256 \"X\"",
			"ICMP '3:256': expected TYPE or TYPE:CODE, each 0..255");
	matrix_bad_line("icmp-code-x.matrix", "icmp ipv6 1:x \"X\"",
			"ICMP '1:x': expected TYPE or TYPE:CODE, each 0..255");
	matrix_bad_line("icmp-unquoted.matrix", "icmp ipv4 3:4 Fragmentation",
			"name 'Fragmentation' must be in double quotes");
	matrix_bad_line("icmp-no-name.matrix", "icmp ipv4 3:4",
			"expected 'icmp ipv4|ipv6 TYPE[:CODE] \"Name\"'");
	matrix_bad_line("icmp-extra.matrix", "icmp ipv4 3 4 \"X\"",
			"expected 'icmp ipv4|ipv6 TYPE[:CODE] \"Name\"'");
	int k = snprintf(text, sizeof(text), "%s", matrix_head);
	for (int i = 0; i <= MATRIX_MAX_ICMP; i++)
		k += snprintf(text + k, sizeof(text) - (size_t)k, "icmp ipv6 %d \"T\"\n", i % 256);
	matrix_error_at("icmp-257.matrix", text, (size_t)k,
			lines_in(matrix_head) + MATRIX_MAX_ICMP + 1, "more than 256 icmp lines");

	/*
	 * A site line starting with protect, dscp or allow-icmp is that keyword (user/site.c:
	 * "Keywords are not role slugs, so a matrix cannot declare a role of that name"): a
	 * matrix role of that name could never get an address, so the matrix must refuse it.
	 */
	static const char *const keywords[] = { "protect", "dscp", "allow-icmp", "allow-outbound",
						"flows",   "nat",  "qos" };
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		char name[64], line[128], msg[64];
		snprintf(name, sizeof(name), "role-keyword-%s.matrix", keywords[i]);
		snprintf(line, sizeof(line), "role %s \"A role named like a site keyword\"",
			 keywords[i]);
		snprintf(msg, sizeof(msg), "role '%s'", keywords[i]);
		matrix_bad_line(name, line, msg);
	}
}

/* ---- site keywords: protect, dscp, allow-icmp ---- */

static void test_site_keywords(const struct matrix *m)
{
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	int rc;

	const char *path = tmp_text("keywords.site", "protect edge-external\n"
						     "frontend 192.0.2.10\n"
						     "protect all-servers mediation\n"
						     "edge-external 203.0.113.0/24\n"
						     "mediation 198.51.100.0/28\n"
						     "dscp media-audio 40\n"
						     "dscp web-https 0\n"
						     "dscp sip-tls -\n"
						     "allow-icmp ipv4 8 0:0\n"
						     "allow-icmp ipv6 128 1:4 # comment\n"
						     "dscp wide-b 63\n");
	rc = site_load(path, m, &s, &err);
	if (CHECK(rc == 0, "site with protect, dscp and allow-icmp loads%s", why(&err))) {
		CHECK(s.protected_roles == roles_of(m, "edge-external,all-servers,mediation"),
		      "site keywords: protect lines add up (edge-external, all-servers, "
		      "mediation)");
		CHECK(s.roles_present == roles_of(m, "frontend,edge-external,mediation") &&
			  s.nprefixes == 3 && s.nwarnings == 0,
		      "site keywords: keywords add no role or prefix, no warning");
		struct {
			const char *service;
			int dscp, line;
		} want[] = { { "media-audio", 40, 6 },
			     { "web-https", 0, 7 },
			     { "sip-tls", MATRIX_DSCP_KEEP, 8 },
			     { "wide-b", 63, 11 } };
		int ok = s.ndscp == 4;
		for (int i = 0; ok && i < 4; i++)
			ok = s.dscp[i].service == matrix_find_service(m, want[i].service) &&
			     s.dscp[i].dscp == want[i].dscp && s.dscp[i].line == want[i].line;
		CHECK(ok, "site keywords: 4 dscp lines: service, value (- keeps), line");
		struct {
			int family, type, code, line;
		} icmp[] = { { 4, 8, MATRIX_ICMP_ANY, 9 },
			     { 4, 0, 0, 9 },
			     { 6, 128, MATRIX_ICMP_ANY, 10 },
			     { 6, 1, 4, 10 } };
		ok = s.nicmp == 4;
		for (int i = 0; ok && i < 4; i++)
			ok = s.icmp[i].family == icmp[i].family && s.icmp[i].type == icmp[i].type &&
			     s.icmp[i].code == icmp[i].code && s.icmp[i].line == icmp[i].line;
		CHECK(ok, "site keywords: allow-icmp takes several TYPE[:CODE] per line (%d)",
		      s.nicmp);

		rc = compile_tables(m, &s, &c, &err);
		if (CHECK(rc == 0, "site keywords: compiles%s", why(&err))) {
			/* Every group holding a protected role (with closure) is protected. */
			uint32_t want_groups = 0;
			for (int g = 1; g < c.ngroups; g++)
				if (c.group_roles[g] & s.protected_roles)
					want_groups |= 1u << g;
			const struct compiled_addr *fe = find_addr(&c, "192.0.2.10");
			const struct compiled_addr *edge = find_addr(&c, "203.0.113.0/24");
			const struct compiled_addr *med = find_addr(&c, "198.51.100.0/28");
			CHECK(fe && edge && med && c.protected_groups == want_groups &&
				  (c.protected_groups & (1u << fe->group)) &&
				  (c.protected_groups & (1u << edge->group)) &&
				  (c.protected_groups & (1u << med->group)) &&
				  !(c.protected_groups & 1u),
			      "site keywords: protected_groups 0x%x: edge, mediation, and frontend "
			      "through all-servers; never group 0",
			      c.protected_groups);
			/* Site values where given, the matrix's default elsewhere. */
			static const uint8_t dscp[10] = {
				LX_DSCP_KEEP, 0, 24, 40, 40, LX_DSCP_KEEP, LX_DSCP_KEEP, 24, 0, 63
			};
			ok = 1;
			for (int i = 0; i < 10 && i < m->nrules; i++)
				if (c.dscp[i] != dscp[i])
					ok = CHECK(0, "site keywords: rule %d DSCP %u, want %u",
						   i + 1, c.dscp[i], dscp[i]);
			if (ok)
				CHECK(1, "site keywords: every rule's DSCP is the site's override "
					 "or the matrix default");
			compile_free(&c);
		}
		site_free(&s);
	}

	/* Protecting only the Edge leaves the Front End's group alone. */
	path =
	    tmp_text("protect-edge.site",
		     "frontend 192.0.2.10\nedge-external 203.0.113.0/24\nprotect edge-external\n");
	if (site_load(path, m, &s, &err) == 0) {
		if (compile_tables(m, &s, &c, &err) == 0) {
			const struct compiled_addr *fe = find_addr(&c, "192.0.2.10");
			const struct compiled_addr *edge = find_addr(&c, "203.0.113.0/24");
			const struct compiled_addr *bc = find_addr(&c, "203.0.113.255");
			CHECK(fe && edge && bc &&
				  c.protected_groups == (1u << edge->group | 1u << bc->group),
			      "protect edge-external: only the edge groups (its prefix and its "
			      "broadcast address) are protected (0x%x)",
			      c.protected_groups);
			compile_free(&c);
		}
		site_free(&s);
	} else {
		CHECK(0, "protect-edge.site loads%s", why(&err));
	}
	/* No protect line: nothing is protected. */
	path = tmp_text("dscp.site", "dscp media-audio 46\nfrontend 192.0.2.10\n");
	rc = site_load(path, m, &s, &err);
	if (CHECK(rc == 0 && s.protected_roles == 0 && s.ndscp == 1 && s.dscp[0].line == 1 &&
		      s.dscp[0].dscp == 46 &&
		      s.dscp[0].service == matrix_find_service(m, "media-audio"),
		  "dscp.site (dscp before any role, once refused as not supported) loads; no "
		  "protect line protects nothing%s",
		  why(&err))) {
		if (compile_tables(m, &s, &c, &err) == 0) {
			CHECK(c.protected_groups == 0, "no protect: protected_groups 0");
			compile_free(&c);
		}
		site_free(&s);
	}

	/* A protected role with no address: a warning naming it, not an error. */
	struct {
		const char *name, *text, *missing[2];
		int line; /* of the first protect line */
	} warn_cases[] = {
		{ "protect-missing.site",
		  "frontend 192.0.2.10\nprotect mediation edge-external\n",
		  { "edge-external", "mediation" },
		  2 },
		{ "protect-missing-fe.site",
		  "protect frontend\nmediation 198.51.100.0/28\n",
		  { "frontend", NULL },
		  1 },
	};
	for (size_t i = 0; i < sizeof(warn_cases) / sizeof(warn_cases[0]); i++) {
		path = tmp_text(warn_cases[i].name, warn_cases[i].text);
		struct site_call call = { path, m, &s, &err };
		char *warn = capture_stderr(call_site_load, &call, &rc);
		int ok = rc == 0 && s.nwarnings > 0 && warn;
		for (int k = 0; ok && k < 2 && warn_cases[i].missing[k]; k++) {
			char want[512];
			snprintf(want, sizeof(want),
				 "%s:%d: warning: protected role %s has no address in the site\n",
				 path, warn_cases[i].line, warn_cases[i].missing[k]);
			ok = strstr(warn, want) != NULL;
		}
		CHECK(ok,
		      "%s: loads, warns 'warning: protected role %s%s%s has no address in the "
		      "site'%s%s",
		      warn_cases[i].name, warn_cases[i].missing[0],
		      warn_cases[i].missing[1] ? ", " : "",
		      warn_cases[i].missing[1] ? warn_cases[i].missing[1] : "",
		      !ok && warn ? "; stderr: " : "", !ok && warn ? warn : "");
		if (rc == 0) {
			CHECK(s.protected_roles != 0 && (s.protected_roles & s.roles_present) == 0,
			      "%s: the role stays protected (nothing to enforce on)",
			      warn_cases[i].name);
			site_free(&s);
		}
		free(warn);
	}
	/* Present through includes=: all-servers is held by the frontend's address. */
	path = tmp_text("protect-closure.site",
			"protect all-servers everything\nfrontend 192.0.2.10\n");
	struct site_call call = { path, m, &s, &err };
	char *warn = capture_stderr(call_site_load, &call, &rc);
	CHECK(rc == 0 && s.nwarnings == 0 && warn && !warn[0],
	      "protect all-servers everything with only a frontend: no warning (closure)%s%s",
	      warn && warn[0] ? ": " : "", warn ? warn : "");
	if (rc == 0)
		site_free(&s);
	free(warn);

	/* Errors. */
	site_bad(m, "protect-nothing.site", "frontend 192.0.2.10\nprotect\n", 2,
		 "expected 'protect ROLE [ROLE ...]'");
	site_bad(m, "protect-unknown.site", "protect edge-external director\n", 1,
		 "protect: unknown role 'director'");
	site_bad(m, "protect-upper.site", "protect Frontend\n", 1,
		 "protect: unknown role 'Frontend'");
	site_bad(m, "protect-quoted.site", "\"protect\" frontend\n", 1,
		 "a line starts with a role or keyword, not a quoted name");
	site_bad(m, "dscp-no-value.site", "frontend 192.0.2.10\ndscp media-audio\n", 2,
		 "expected 'dscp SERVICE VALUE' (VALUE 0..63 or -)");
	site_bad(m, "dscp-extra.site", "dscp media-audio 46 34\n", 1,
		 "expected 'dscp SERVICE VALUE' (VALUE 0..63 or -)");
	site_bad(m, "dscp-unknown.site", "dscp media-video 34\n", 1,
		 "dscp: unknown service 'media-video' of the test matrix");
	site_bad(m, "dscp-role.site", "dscp frontend 34\n", 1,
		 "dscp: unknown service 'frontend' of the test matrix");
	site_bad(m, "dscp-64.site", "dscp media-audio 64\n", 1, "dscp: '64' is not 0..63 or '-'");
	site_bad(m, "dscp-minus-1.site", "dscp media-audio -1\n", 1,
		 "dscp: '-1' is not 0..63 or '-'");
	site_bad(m, "dscp-hex.site", "dscp media-audio 0x2e\n", 1,
		 "dscp: '0x2e' is not 0..63 or '-'");
	site_bad(m, "dscp-ef.site", "dscp media-audio EF\n", 1, "dscp: 'EF' is not 0..63 or '-'");
	site_bad(m, "dscp-dup.site",
		 "dscp media-audio 46\nfrontend 192.0.2.10\ndscp media-audio -\n", 3,
		 "dscp: service 'media-audio' already set at line 1");
	site_bad(m, "dscp-dup-same.site", "dscp sip-tls 24\n\ndscp sip-tls 24\n", 3,
		 "dscp: service 'sip-tls' already set at line 1");
	site_bad(m, "allow-icmp-nothing.site", "allow-icmp ipv4\n", 1,
		 "expected 'allow-icmp ipv4|ipv6 TYPE[:CODE] ...'");
	site_bad(m, "allow-icmp-family.site", "allow-icmp ipv5 8\n", 1,
		 "allow-icmp: ICMP family 'ipv5' is not ipv4 or ipv6");
	site_bad(m, "allow-icmp-no-family.site", "allow-icmp 8\n", 1,
		 "expected 'allow-icmp ipv4|ipv6 TYPE[:CODE] ...'");
	site_bad(m, "allow-icmp-256.site", "frontend 192.0.2.10\nallow-icmp ipv4 8 256\n", 2,
		 "allow-icmp: ICMP '256': expected TYPE or TYPE:CODE, each 0..255");
	site_bad(m, "allow-icmp-code.site", "allow-icmp ipv6 1:4 1:256\n", 1,
		 "allow-icmp: ICMP '1:256': expected TYPE or TYPE:CODE, each 0..255");
	site_bad(m, "allow-icmp-code-x.site", "allow-icmp ipv6 1:x\n", 1,
		 "allow-icmp: ICMP '1:x': expected TYPE or TYPE:CODE, each 0..255");
	site_bad(m, "allow-icmp-name.site", "allow-icmp ipv4 echo\n", 1,
		 "allow-icmp: ICMP 'echo': expected TYPE or TYPE:CODE, each 0..255");
	char text[8192];
	int k = snprintf(text, sizeof(text), "frontend 192.0.2.10\n");
	for (int line = 0; line < 6; line++) {
		k += snprintf(text + k, sizeof(text) - (size_t)k, "allow-icmp ipv6");
		for (int i = 0; i < 50; i++)
			k += snprintf(text + k, sizeof(text) - (size_t)k, " %d:%d", line, i);
		k += snprintf(text + k, sizeof(text) - (size_t)k, "\n");
	}
	/* 50 per line: the 257th is on the sixth allow-icmp line, line 7 of the file. */
	site_error_at(m, "allow-icmp-257.site", text, (size_t)k, 7,
		      "more than 256 allowed ICMP types");

	/* flows N: the flow table's size. */
	site_bad(m, "flows-none.site", "frontend 192.0.2.10\nflows\n", 2,
		 "expected 'flows N' (N 1024..4194304)");
	site_bad(m, "flows-small.site", "flows 1023\n", 1, "expected 'flows N' (N 1024..4194304)");
	site_bad(m, "flows-big.site", "flows 4194305\n", 1, "expected 'flows N' (N 1024..4194304)");
	site_bad(m, "flows-two.site", "flows 4096 8192\n", 1,
		 "expected 'flows N' (N 1024..4194304)");
	site_bad(m, "flows-dup.site", "flows 4096\nfrontend 192.0.2.10\nflows 4096\n", 3,
		 "flows: already set at line 1");
	struct site fs;
	struct compiled fc;
	struct text_error ferr = { { 0 } };
	const char *fpath = tmp_text("flows.site", "frontend 192.0.2.10\nflows 200000\n");
	int frc = site_load(fpath, m, &fs, &ferr);
	if (CHECK(frc == 0 && fs.flows_max == 200000 && fs.flows_line == 2,
		  "flows 200000: the site's flow-table size%s", why(&ferr))) {
		if (CHECK(compile_tables(m, &fs, &fc, &ferr) == 0 && fc.flows_max == 200000,
			  "flows 200000: compiled for the loader%s", why(&ferr)))
			compile_free(&fc);
		site_free(&fs);
	}
}

/* ---- compile: the remote table, outbound precedence ---- */

static void test_compile_outbound(void)
{
	struct matrix m;
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	if (load_checked("outbound", OB_MATRIX, OB_SITE, &m, &s) < 0)
		return;
	if (!CHECK(compile_tables(&m, &s, &c, &err) == 0, "outbound site compiles%s", why(&err))) {
		site_free(&s);
		matrix_free(&m);
		return;
	}
	const struct compiled_addr *edge = find_addr(&c, "203.0.113.10");
	const struct compiled_addr *fe = find_addr(&c, "192.0.2.11");
	if (CHECK(edge && fe && c.ngroups == 3 &&
		      c.group_roles[edge->group] == ((1ULL << matrix_find_role(&m, "edge")) |
						     (1ULL << matrix_find_role(&m, "pool"))),
		  "outbound site: two groups, the edge's holding edge and pool")) {
		struct {
			const struct compiled_addr *a;
			const char *who;
			int remote, proto;
			uint32_t port, rule;
		} prec[] = {
			{ edge, "edge", 0, LX_PROTO_TCP, 5061, 1 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5061, 2 },
			{ edge, "edge", 0, LX_PROTO_TCP, 5062, 0 },
			{ edge, "edge", 1, LX_PROTO_TCP, 4999, 0 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5000, 3 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5049, 3 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5050, 3 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5060, 3 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5062, 3 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5100, 3 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5101, 6 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5150, 6 },
			{ edge, "edge", 1, LX_PROTO_TCP, 5151, 0 },
			{ edge, "edge", 0, LX_PROTO_TCP, 5101, 0 },
			{ edge, "edge", 0, LX_PROTO_UDP, 49999, 0 },
			{ edge, "edge", 0, LX_PROTO_UDP, 50000, 5 },
			{ edge, "edge", 0, LX_PROTO_UDP, 50009, 5 },
			{ edge, "edge", 0, LX_PROTO_UDP, 50010, 4 },
			{ edge, "edge", 0, LX_PROTO_UDP, 59999, 4 },
			{ edge, "edge", 0, LX_PROTO_UDP, 60000, 0 },
			{ edge, "edge", 1, LX_PROTO_UDP, 50010, 0 },
			{ edge, "edge", 1, LX_PROTO_UDP, 53, 8 },
			{ edge, "edge", 1, LX_PROTO_UDP, 52, 0 },
			{ edge, "edge", 1, LX_PROTO_UDP, 54, 0 },
			{ edge, "edge", 0, LX_PROTO_UDP, 53, 0 },
			{ edge, "edge", 1, LX_PROTO_TCP, 53, 0 },
			{ fe, "fe", 0, LX_PROTO_TCP, 5061, 7 },
			{ fe, "fe", 1, LX_PROTO_TCP, 5061, 10 },
			{ fe, "fe", 1, LX_PROTO_TCP, 5062, 0 },
			{ fe, "fe", 1, LX_PROTO_UDP, 53, 0 },
			{ fe, "fe", 0, LX_PROTO_UDP, 50010, 0 },
		};
		for (size_t i = 0; i < sizeof(prec) / sizeof(prec[0]); i++) {
			const struct compiled_addr *a = prec[i].a;
			uint16_t got =
			    prec[i].remote
				? compiled_remote_at(&c, a->group, prec[i].proto, prec[i].port)
				: compiled_rule_at(&c, a->group, prec[i].proto, prec[i].port);
			CHECK(got == prec[i].rule,
			      "compile outbound: %s %s %s port %u -> rule %u (got %u)", prec[i].who,
			      prec[i].remote ? "remote (peer's)" : "own",
			      matrix_proto_name(prec[i].proto), prec[i].port, prec[i].rule, got);
		}
		uint32_t e = 1u << edge->group, f = 1u << fe->group;
		struct lx_port_groups p5061 = c.port_groups[lx_port_index(LX_PROTO_TCP, 5061)];
		struct lx_port_groups p5101 = c.port_groups[lx_port_index(LX_PROTO_TCP, 5101)];
		struct lx_port_groups p53 = c.port_groups[lx_port_index(LX_PROTO_UDP, 53)];
		struct lx_port_groups p50005 = c.port_groups[lx_port_index(LX_PROTO_UDP, 50005)];
		CHECK(p5061.local == (e | f) && p5061.remote == (e | f) && p5101.local == 0 &&
			  p5101.remote == e && p53.local == 0 && p53.remote == e &&
			  p50005.local == e && p50005.remote == 0,
		      "compile outbound: port_groups keep the role's own ports (local) apart from "
		      "peers' ports (remote)");
		CHECK(
		    c.nremote == 151 + 1 + 1,
		    "compile outbound: nremote 153 (edge tcp 5000-5150, udp 53; fe tcp 5061), got "
		    "%u",
		    c.nremote);
		CHECK(c.nactive == 10 && c.dscp[7] == 10 && c.dscp[2] == 0 &&
			  c.dscp[3] == LX_DSCP_KEEP && c.dscp[0] == 24,
		      "compile outbound: every rule active; outbound rules get their service's "
		      "DSCP");
	}
	check_tables_consistent("outbound site", &m, &c);
	compile_free(&c);
	site_free(&s);

	/* Only the Front End present: its three rules, no edge rule anywhere. */
	const char *path = tmp_text("outbound-fe.site", "fe 192.0.2.11\ndscp dns -\n");
	if (site_load(path, &m, &s, &err) == 0) {
		if (compile_tables(&m, &s, &c, &err) == 0) {
			CHECK(c.nactive == 3 && c.active[6] && c.active[8] && c.active[9] &&
				  !c.active[1] && c.nremote == 1 && c.dscp[7] == LX_DSCP_KEEP &&
				  c.dscp[5] == LX_DSCP_KEEP,
			      "compile outbound, Front End only: rules 7, 9, 10 active, one remote "
			      "entry; dscp dns - applies to every dns rule");
			check_tables_consistent("outbound, Front End only", &m, &c);
			compile_free(&c);
		}
		site_free(&s);
	}
	matrix_free(&m);
}

/* ---- compile_assign_ids: keeping rule ids (and counters) across a reload ---- */

static void rule_info_of(const struct matrix *m, int i, struct lx_rule_info *info)
{
	const struct matrix_rule *r = &m->rules[i];
	memset(info, 0, sizeof(*info));
	text_copy(info->role, sizeof(info->role), m->roles[r->role].slug);
	text_copy(info->service, sizeof(info->service), m->services[r->service].slug);
	text_copy(info->name, sizeof(info->name), m->services[r->service].name);
	info->port_lo = r->port_lo;
	info->port_hi = r->port_hi;
	info->proto = (uint8_t)r->proto;
	info->kind = (uint8_t)r->kind;
	info->active = 1;
}

/*
 * tests/data/outbound.matrix changed: B1 new (fe tcp 443); B2 = A1; B3 = A2 (only its source
 * differs); B4 = A3 with a wider range (new); B5 = A4 as a listen rule (new); B6 = A5; B7 = A6; B8
 * = A8 with another service (new); B9 = A9; B10 = A10; B11 = A10 on udp (new); B12 = A1 on another
 * role (new). A3, A4, A7, A8 are gone.
 */
static const char ob_matrix_b[] = "product ob \"Outbound rules\"\n"
				  "role edge \"Edge\"\n"
				  "role fe \"Front End\"\n"
				  "role pool \"Pool\" includes=edge\n"
				  "service sip 24 \"SIP\"\n"
				  "service wide 0 \"Wide\"\n"
				  "service relay - \"Relay\"\n"
				  "service dns 10 \"DNS\"\n"
				  "rule fe sip tcp 443 local:new\n"
				  "rule edge sip tcp 5061 local:t\n"
				  "outbound edge sip tcp to 5061 ref:other\n"
				  "outbound edge wide tcp to 5000-5101 local:t\n"
				  "rule edge relay udp 50000-59999 derived:001\n"
				  "rule edge relay udp 50000-50009 local:t\n"
				  "outbound pool dns tcp to 5050-5150 seed:004\n"
				  "outbound edge sip udp to 53 ref:edge-firewall\n"
				  "outbound fe sip tcp from 5061 local:t\n"
				  "outbound fe sip tcp to 5061 local:t\n"
				  "outbound fe sip udp to 5061 local:t\n"
				  "rule pool sip tcp 5061 local:t\n";

#define TABLE_ENTRIES ((size_t)LX_MAX_GROUPS * LX_PROTO_MAX * LX_PORTS)

/* After compile_assign_ids: every table entry is the new id of the rule it held before. */
static int renumbered(const char *label, const struct compiled *c, const uint16_t *rules_before,
		      const uint16_t *remote_before, const struct lx_port_groups *pg_before)
{
	long bad = 0;
	for (size_t i = 0; i < TABLE_ENTRIES; i++) {
		uint16_t want = rules_before[i] ? c->ids[rules_before[i] - 1] : 0;
		uint16_t want_r = remote_before[i] ? c->ids[remote_before[i] - 1] : 0;
		bad += c->rule_table[i] != want;
		bad += c->remote_table[i] != want_r;
	}
	int pg_same =
	    !memcmp(pg_before, c->port_groups, sizeof(*pg_before) * LX_PROTO_MAX * LX_PORTS);
	return CHECK(bad == 0 && pg_same,
		     "%s: both tables renumbered to the new ids (%ld entries wrong), port_groups "
		     "unchanged",
		     label, bad);
}

struct assign_case {
	const char *label;
	const struct matrix *old_m; /* the attached rules */
	const uint32_t *old_ids;    /* the ids they hold */
	const struct matrix *m;	    /* the new matrix */
	uint32_t rule_cap;
	const uint32_t *want;	  /* [new rule index] -> id */
	const uint32_t *want_new; /* ids that must be new, 0-terminated */
	uint32_t want_max;
};

static void run_assign_case(const struct assign_case *a, const struct site *s, int null_new_ids)
{
	struct compiled c;
	struct text_error err = { { 0 } };
	if (!CHECK(compile_tables(a->m, s, &c, &err) == 0, "%s: compiles%s", a->label, why(&err)))
		return;
	struct compile_old_rule old[64];
	for (int i = 0; i < a->old_m->nrules; i++) {
		old[i].id = a->old_ids[i];
		rule_info_of(a->old_m, i, &old[i].info);
	}
	uint16_t *rules_before = malloc(TABLE_ENTRIES * sizeof(uint16_t));
	uint16_t *remote_before = malloc(TABLE_ENTRIES * sizeof(uint16_t));
	struct lx_port_groups *pg = malloc(sizeof(*pg) * LX_PROTO_MAX * LX_PORTS);
	uint8_t *new_ids = calloc(a->rule_cap, 1);
	memcpy(rules_before, c.rule_table, TABLE_ENTRIES * sizeof(uint16_t));
	memcpy(remote_before, c.remote_table, TABLE_ENTRIES * sizeof(uint16_t));
	memcpy(pg, c.port_groups, sizeof(*pg) * LX_PROTO_MAX * LX_PORTS);
	uint32_t nremote = c.nremote;

	int rc = compile_assign_ids(&c, a->m, old, a->old_m->nrules, a->rule_cap,
				    null_new_ids ? NULL : new_ids, &err);
	if (CHECK(rc == 0, "%s: compile_assign_ids%s", a->label, why(&err))) {
		char got[512] = "";
		int k = 0, ok = 1;
		for (int i = 0; i < a->m->nrules; i++) {
			ok &= c.ids[i] == a->want[i];
			k += snprintf(got + k, sizeof(got) - (size_t)k, " %u", c.ids[i]);
		}
		CHECK(ok && c.max_id == a->want_max, "%s: rule ids%s, max_id %u", a->label, got,
		      c.max_id);
		if (!null_new_ids) {
			int new_ok = 1, nnew = 0;
			for (const uint32_t *w = a->want_new; *w; w++, nnew++)
				new_ok &= new_ids[*w] == 1;
			int marked = 0;
			for (uint32_t id = 0; id < a->rule_cap; id++)
				marked += new_ids[id] != 0;
			CHECK(new_ok && marked == nnew,
			      "%s: new_ids marks exactly the %d new ids (%d marked)", a->label,
			      nnew, marked);
		}
		renumbered(a->label, &c, rules_before, remote_before, pg);
		CHECK(c.nremote == nremote, "%s: nremote unchanged (%u)", a->label, c.nremote);
		check_tables_consistent(a->label, a->m, &c);
	}
	free(rules_before);
	free(remote_before);
	free(pg);
	free(new_ids);
	compile_free(&c);
}

/*
 * What compile returns for the rule maps equals the matrix's rules (the loader writes it as
 * it is), and compile_renumbered gives a reload its own ids and tables, leaving c alone.
 */
static void check_records_and_renumbered(const struct matrix *a, const struct matrix *b,
					 const uint32_t *a_ids, const uint32_t *want)
{
	struct compiled c, out;
	struct site site, *s = &site;
	struct text_error err = { { 0 } };
	static const char icmp_site[] = "edge 203.0.113.10 2001:db8:e::10\n"
					"fe 192.0.2.11 2001:db8::11\n"
					"allow-icmp ipv4 8\n"
					"allow-icmp ipv6 128:0\n";
	if (!CHECK(site_load(tmp_text("records.site", icmp_site), b, s, &err) == 0,
		   "records: site loads%s", why(&err)))
		return;
	if (!CHECK(compile_tables(b, s, &c, &err) == 0, "records: compiles%s", why(&err))) {
		site_free(s);
		return;
	}
	int bad_info = 0, bad_action = 0;
	for (int i = 0; i < b->nrules; i++) {
		struct lx_rule_info want_info;
		rule_info_of(b, i, &want_info);
		want_info.active = c.active[i];
		want_info.dscp = c.dscp[i];
		bad_info += memcmp(&want_info, &c.infos[i], sizeof(want_info)) != 0;
		const struct lx_rule_action *x = &c.actions[i];
		bad_action += x->kind != b->rules[i].kind || x->dscp != c.dscp[i] ||
			      x->rank != c.rank[i] || x->from_groups != c.from_groups[i] ||
			      x->client != b->roles[b->rules[i].role].client || x->media != 0;
	}
	CHECK(bad_info == 0 && bad_action == 0,
	      "records: rule infos and actions are the matrix's rules (%d infos, %d actions "
	      "differ)",
	      bad_info, bad_action);
	CHECK(c.nicmp == 2 && b->nicmp == 0 && c.icmp_keys[0] == lx_icmp_key(4, 8, LX_ICMP_ANY) &&
		  c.icmp_keys[1] == lx_icmp_key(6, 128, 0),
	      "records: ICMP keys are the site's allow-icmp lines (%d keys)", c.nicmp);

	struct compile_old_rule old[16];
	for (int i = 0; i < a->nrules; i++) {
		old[i].id = a_ids[i];
		rule_info_of(a, i, &old[i].info);
	}
	uint16_t *rules_before = malloc(TABLE_ENTRIES * sizeof(uint16_t));
	uint16_t *ids_before = malloc(((size_t)b->nrules + 1) * sizeof(uint16_t));
	if (rules_before && ids_before) {
		memcpy(rules_before, c.rule_table, TABLE_ENTRIES * sizeof(uint16_t));
		memcpy(ids_before, c.ids, ((size_t)b->nrules + 1) * sizeof(uint16_t));
		int rc = compile_renumbered(&c, b, old, a->nrules, 64, &out, NULL, &err);
		if (CHECK(rc == 0, "renumbered: compiles%s", why(&err))) {
			int ids_ok = 1;
			for (int i = 0; i < b->nrules; i++)
				ids_ok &= out.ids[i] == want[i];
			int c_same =
			    !memcmp(rules_before, c.rule_table, TABLE_ENTRIES * sizeof(uint16_t)) &&
			    !memcmp(ids_before, c.ids, ((size_t)b->nrules + 1) * sizeof(uint16_t));
			CHECK(ids_ok && c_same && out.rule_table != c.rule_table &&
				  out.infos == c.infos,
			      "renumbered: its own ids and tables with the kept ids, c unchanged");
			compile_free_renumbered(&out);
		}
	}
	free(rules_before);
	free(ids_before);
	compile_free(&c);
	site_free(s);
}

static void test_assign_ids(void)
{
	struct matrix a, b;
	struct site s;
	struct text_error err = { { 0 } };
	if (!CHECK(matrix_load(OB_MATRIX, &a, &err) == 0, "ids: matrix A loads%s", why(&err)))
		return;
	if (!CHECK(matrix_load(tmp_text("ids-b.matrix", ob_matrix_b), &b, &err) == 0,
		   "ids: matrix B loads%s", why(&err))) {
		matrix_free(&a);
		return;
	}
	if (!CHECK(site_load(OB_SITE, &a, &s, &err) == 0, "ids: site loads%s", why(&err))) {
		matrix_free(&a);
		matrix_free(&b);
		return;
	}
	CHECK(a.nrules == 10 && b.nrules == 12, "ids: A has 10 rules, B 12 (%d, %d)", a.nrules,
	      b.nrules);

	/* The same matrix again: every rule keeps its id, whatever the ids were. */
	uint32_t spread[10], seq[10], even[10];
	for (int i = 0; i < 10; i++) {
		spread[i] = 3 * (uint32_t)i + 2;
		seq[i] = (uint32_t)i + 1;
		even[i] = 2 * (uint32_t)i + 2;
	}
	static const uint32_t none[] = { 0 };
	struct assign_case same = { "ids, same matrix", &a, spread, &a, 64, spread, none, 29 };
	run_assign_case(&same, &s, 0);

	/* Identical rules keep their ids; new ones take the lowest ids no attached rule has. */
	static const uint32_t b_after_seq[12] = { 11, 1, 2, 12, 13, 5, 6, 14, 9, 10, 15, 16 };
	static const uint32_t b_new_seq[] = { 11, 12, 13, 14, 15, 16, 0 };
	struct assign_case changed = { "ids, changed matrix", &a,	 seq, &b, 64,
				       b_after_seq,	      b_new_seq, 16 };
	run_assign_case(&changed, &s, 0);
	changed.label = "ids, changed matrix, new_ids NULL";
	run_assign_case(&changed, &s, 1);

	/* Free ids between attached ones are taken first, lowest first. */
	static const uint32_t b_after_even[12] = { 1, 2, 4, 3, 5, 10, 12, 7, 18, 20, 9, 11 };
	static const uint32_t b_new_even[] = { 1, 3, 5, 7, 9, 11, 0 };
	struct assign_case holes = {
		"ids, attached ids 2, 4, ..., 20", &a, even, &b, 64, b_after_even, b_new_even, 20
	};
	run_assign_case(&holes, &s, 0);
	check_records_and_renumbered(&a, &b, seq, b_after_seq);

	/* Exactly enough ids (rule_cap 17: ids 1..16), then one too few. */
	changed.label = "ids, rule_cap 17 (ids up to 16)";
	changed.rule_cap = 17;
	run_assign_case(&changed, &s, 0);
	struct compiled c;
	if (compile_tables(&b, &s, &c, &err) == 0) {
		struct compile_old_rule old[10];
		for (int i = 0; i < 10; i++) {
			old[i].id = seq[i];
			rule_info_of(&a, i, &old[i].info);
		}
		uint8_t new_ids[16] = { 0 };
		int rc = compile_assign_ids(&c, &b, old, 10, 16, new_ids, &err);
		CHECK(rc == -1 && !strcmp(err.msg, "the new matrix needs more than the 15 rule ids "
						   "the attached maps hold: detach every "
						   "interface and attach again"),
		      "ids, rule_cap 16: -1, 'the new matrix needs more than the 15 rule ids the "
		      "attached maps hold: detach every interface and attach again' (got %d, "
		      "'%s')",
		      rc, err.msg);
		compile_free(&c);
	}
	site_free(&s);
	matrix_free(&a);
	matrix_free(&b);
}

/* ---- QoS profiles (maps/qos.profiles) ---- */

/* Lines `mark PROFILE SERVICE ...` (not `=DEFAULT`) of a profiles file. */
static int count_marks(const char *path, const char *profile)
{
	FILE *f = fopen(path, "r");
	char line[512], kw[32], name[64], svc[64];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%31s %63s %63s", kw, name, svc) == 3 && !strcmp(kw, "mark") &&
		    !strcmp(name, profile) && svc[0] != '=')
			n++;
	if (f)
		fclose(f);
	return n;
}

static void test_qos_shipped(void)
{
	static const char *const products[] = {
		"ocs2007r2", "lync2010", "lync2013", "sfb2015", "teams", "sfb2015.matrix,maps/teams"
	};
	static const char *const profiles[] = { "sfb", "teams", "expressroute" };
	for (size_t k = 0; k < 6; k++) {
		char path[128];
		struct matrix m;
		struct text_error err = { { 0 } };
		snprintf(path, sizeof(path), "maps/%s.matrix", products[k]);
		if (!CHECK(matrix_load(path, &m, &err) == 0, "qos: %s loads%s", path, why(&err)))
			continue;
		for (size_t i = 0; i < 3; i++) {
			struct qos_profile p;
			int rc = qos_profile_load(&m, profiles[i], &p, &err);
			if (!CHECK(rc == 0, "qos: profile %s loads against %s%s", profiles[i],
				   products[k], why(&err)))
				continue;
			int marked = 0, bad = 0;
			char first[160] = "";
			for (int s = 0; s < m.nservices; s++) {
				marked += p.mark_line[s] > 0;
				int v = p.dscp[s] == QOS_UNSET ? m.services[s].dscp : p.dscp[s];
				int want = m.services[s].dscp;
				const char *slug = m.services[s].slug;
				if (!strcmp(profiles[i], "teams") ||
				    !strcmp(profiles[i], "expressroute")) {
					if (!strcmp(slug, "media-audio"))
						want = 46;
					else if (!strcmp(slug, "media-video"))
						want = 34;
					else if (!strcmp(slug, "app-sharing-media"))
						want = 18;
				}
				if (!strcmp(profiles[i], "expressroute")) {
					if (!strcmp(slug, "file-transfer") ||
					    !strcmp(slug, "chat-file-transfer"))
						want = 10;
					else if (m.services[s].dscp == 24 &&
						 strcmp(slug, "app-sharing-media"))
						want = 0; /* CS3 signalling: not honoured, reset */
					if (v >= 0 && !(p.allowed & (1ULL << v)) && !bad++)
						snprintf(first, sizeof(first),
							 "; %s %d not allowed", slug, v);
				}
				if (v != want && !bad++)
					snprintf(first, sizeof(first), "; %s: %d, expected %d",
						 slug, v, want);
			}
			CHECK(bad == 0,
			      "qos: %s on %s: every service's DSCP as the profile's source "
			      "says%s",
			      profiles[i], products[k], first);
			int lines = count_marks(p.path, profiles[i]);
			CHECK(marked == lines,
			      "qos: %s: all %d mark lines name a service of %s (%d matched)",
			      profiles[i], lines, products[k], marked);
			qos_profile_free(&p);
		}
		matrix_free(&m);
	}
}

/* A profiles file beside a small matrix in the temporary directory. */
static void qos_case(const char *what, const char *profiles, const char *site, int line,
		     const char *msg)
{
	struct matrix m;
	struct text_error err = { { 0 } };
	const char *mpath = tmp_text("qos.matrix", matrix_head);
	tmp_text("qos.profiles", profiles);
	if (matrix_load(mpath, &m, &err) < 0) {
		CHECK(0, "qos: the small matrix loads%s", why(&err));
		return;
	}
	char name[64];
	snprintf(name, sizeof(name), "qos-%s.site", what);
	site_bad(&m, name, site, line, msg);
	matrix_free(&m);
}

static void test_qos_profiles(void)
{
	test_qos_shipped();

	const char *site = "frontend 192.0.2.10\nqos er\n";
	const char *good = "profile er \"ER\" ref:x\nallow er 46 34 0\nmark er =24 0\n";
	qos_case("unknown", good, "frontend 192.0.2.10\nqos nosuch\n", 2,
		 "qos: unknown qos profile 'nosuch'");
	qos_case("twice", good, "qos er\nfrontend 192.0.2.10\nqos er\n", 3,
		 "qos: a profile is already selected at line 1");
	qos_case("no-name", good, "frontend 192.0.2.10\nqos\n", 2,
		 "expected 'qos PROFILE' (sfb, teams, expressroute, ...)");
	char msg[256];
	snprintf(msg, sizeof(msg),
		 "qos: %s/qos.profiles:1: mark: profile 'er' is not declared above", tmpdir);
	qos_case("undeclared", "mark er sip-tls 0\n", site, 2, msg);
	snprintf(msg, sizeof(msg), "qos: %s/qos.profiles:2: '64' is not a DSCP (0..63) or '-'",
		 tmpdir);
	qos_case("dscp-64", "profile er \"ER\" ref:x\nmark er sip-tls 64\n", site, 2, msg);
	snprintf(msg, sizeof(msg), "qos: %s/qos.profiles:2: profile 'er' declared twice", tmpdir);
	qos_case("dup-profile", "profile er \"ER\" ref:x\nprofile er \"ER\" ref:x\n", site, 2, msg);
	snprintf(msg, sizeof(msg),
		 "qos: %s/qos.profiles:3: mark: service 'sip-tls' already marked at line 2",
		 tmpdir);
	qos_case("dup-mark", "profile er \"ER\" ref:x\nmark er sip-tls 0\nmark er sip-tls 10\n",
		 site, 2, msg);
	snprintf(msg, sizeof(msg), "qos: %s/qos.profiles:2: unknown keyword 'set'", tmpdir);
	qos_case("keyword", "profile er \"ER\" ref:x\nset er sip-tls 0\n", site, 2, msg);
	snprintf(msg, sizeof(msg),
		 "qos: %s/qos.profiles:1: expected 'profile NAME \"Title\" SOURCE'", tmpdir);
	qos_case("unquoted", "profile er ER ref:x\n", site, 2, msg);
	snprintf(msg, sizeof(msg), "qos: %s/qos.profiles:2: allow: '-' is not a DSCP", tmpdir);
	qos_case("allow-keep", "profile er \"ER\" ref:x\nallow er 46 -\n", site, 2, msg);
	/* allow: the matrix default 24 of sip-tls is not one of 46 34 0 without a mark */
	qos_case("default-not-allowed", "profile er \"ER\" ref:x\nallow er 46 34 0\n", site, 2,
		 "qos er: service sip-tls keeps DSCP 24, which the profile does not allow "
		 "(only 46, 34, 0): add a dscp line for it");
	snprintf(msg, sizeof(msg),
		 "dscp sip-tls 26: the er profile allows only DSCP 46, 34, 0 (%s/qos.profiles:2)",
		 tmpdir);
	qos_case("site-not-allowed", good, "frontend 192.0.2.10\nqos er\ndscp sip-tls 26\n", 3,
		 msg);

	/* Precedence: site dscp > profile mark > matrix default; `-` allowed whatever `allow`. */
	struct matrix m;
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	const char *mpath = tmp_text("qos.matrix", matrix_head);
	tmp_text("qos.profiles", good);
	if (!CHECK(matrix_load(mpath, &m, &err) == 0, "qos: small matrix%s", why(&err)))
		return;
	const char *sp = tmp_text("qos-ok.site", "frontend 192.0.2.10\nqos er\n");
	int rc = site_load(sp, &m, &s, &err);
	if (CHECK(rc == 0, "qos: site selecting er loads%s", why(&err))) {
		int tls = matrix_find_service(&m, "sip-tls"),
		    stun = matrix_find_service(&m, "stun");
		CHECK(site_service_dscp(&m, &s, tls) == 0 &&
			  site_service_dscp(&m, &s, stun) == MATRIX_DSCP_KEEP,
		      "qos: er gives sip-tls 0 (=24 0), stun stays '-' (got %d, %d)",
		      site_service_dscp(&m, &s, tls), site_service_dscp(&m, &s, stun));
		CHECK(compile_tables(&m, &s, &c, &err) == 0 && c.dscp[0] == 0,
		      "qos: the compiled sip-tls rule writes 0 (got %d)", c.dscp[0]);
		compile_free(&c);
		site_free(&s);
	}
	sp = tmp_text("qos-override.site", "frontend 192.0.2.10\nqos er\ndscp sip-tls 46\n");
	rc = site_load(sp, &m, &s, &err);
	if (CHECK(rc == 0, "qos: a site dscp line inside the allowed set loads%s", why(&err))) {
		CHECK(site_service_dscp(&m, &s, matrix_find_service(&m, "sip-tls")) == 46,
		      "qos: the site's dscp line wins over the profile");
		site_free(&s);
	}
	matrix_free(&m);
}

/* The `client` role option, rule ranks, and matrices combined with ',' (sfb2015,teams). */
static void test_client_and_combined(void)
{
	struct matrix m;
	struct text_error err = { { 0 } };
	const char *a = tmp_text("combine-a.matrix", "product aaa \"A\"\n"
						     "role fe \"FE\"\n"
						     "role cl \"Clients\" client\n"
						     "service sip 24 \"SIP\"\n"
						     "service media - \"Media\"\n"
						     "rule fe sip tcp 5061 local:t\n"
						     "rule cl media udp 1024-65535 local:t\n");
	const char *b = tmp_text("combine-b.matrix", "product bbb \"B\"\n"
						     "role cl \"Clients again\" client\n"
						     "role cloud \"Cloud\"\n"
						     "service media - \"Media\"\n"
						     "service relay - \"Relay\"\n"
						     "rule cloud relay udp 3478-3481 doc:x\n"
						     "rule cl media udp 50000-50019 local:t\n");
	char both[2 * LX_PATH_LEN];
	snprintf(both, sizeof(both), "%s,%s", a, b);
	int rc = matrix_load(both, &m, &err);
	if (CHECK(rc == 0, "combined matrix a,b loads%s", why(&err))) {
		CHECK(!strcmp(m.product, "aaa,bbb") && m.nroles == 3 && m.nservices == 3 &&
			  m.nrules == 4 && m.nfiles == 2,
		      "combined: product %s, %d roles, %d services, %d rules from %d files",
		      m.product, m.nroles, m.nservices, m.nrules, m.nfiles);
		int cl = matrix_find_role(&m, "cl"), fe = matrix_find_role(&m, "fe");
		CHECK(cl >= 0 && fe >= 0 && m.roles[cl].client && !m.roles[fe].client,
		      "combined: 'client' is a role option; cl is a client role, fe is not");
		char where[LX_PATH_LEN + 16], want[LX_PATH_LEN + 16];
		matrix_rule_where(&m, &m.rules[2], where, sizeof(where));
		snprintf(want, sizeof(want), "%s:6", b);
		CHECK(!strcmp(where, want), "combined: rule 3 was read at %s (%s)", want, where);
		/* Ranks: server rule over client rule whatever the width; then narrower; then
		 * earlier line. */
		CHECK(matrix_rule_rank(&m, 2) > matrix_rule_rank(&m, 3) &&
			  matrix_rule_rank(&m, 0) > matrix_rule_rank(&m, 2) &&
			  matrix_rule_rank(&m, 3) > matrix_rule_rank(&m, 1),
		      "ranks: fe 5061 > cloud 3478-3481 > cl 50000-50019 > cl 1024-65535");
		matrix_free(&m);
	}
	const char *c = tmp_text("combine-c.matrix", "product ccc \"C\"\n"
						     "role fe \"FE\" client\n"
						     "service sip 24 \"SIP\"\n"
						     "rule fe sip tcp 5062 local:t\n");
	snprintf(both, sizeof(both), "%s,%s", a, c);
	rc = matrix_load(both, &m, &err);
	CHECK(rc < 0 && strstr(err.msg, "combine-c.matrix:2: role 'fe' is declared differently"),
	      "combined: a role declared otherwise is an error with file:line (%s)", err.msg);
	const char *d = tmp_text("combine-d.matrix", "product ddd \"D\"\n"
						     "role fe \"FE\"\n"
						     "service sip 46 \"SIP\"\n"
						     "rule fe sip tcp 5062 local:t\n");
	snprintf(both, sizeof(both), "%s,%s", a, d);
	rc = matrix_load(both, &m, &err);
	CHECK(rc < 0 && strstr(err.msg, "combine-d.matrix:3: service 'sip' has another DSCP"),
	      "combined: a service with another DSCP is an error with file:line (%s)", err.msg);
	snprintf(both, sizeof(both), "%s,,%s", a, d);
	rc = matrix_load(both, &m, &err);
	CHECK(rc < 0 && strstr(err.msg, "expected one matrix file or up to"),
	      "combined: an empty name in the list is an error (%s)", err.msg);
	rc = matrix_load("maps/sfb2015.matrix,maps/teams.matrix", &m, &err);
	if (CHECK(rc == 0, "maps/sfb2015.matrix,maps/teams.matrix loads%s", why(&err))) {
		CHECK(!strcmp(m.product, "sfb2015,teams") &&
			  matrix_find_role(&m, "teams-cloud") >= 0,
		      "sfb2015,teams: product %s, role teams-cloud", m.product);
		matrix_free(&m);
	}
	matrix_bad_line("role-client-twice.matrix", "role cl \"C\" client client",
			"unknown role option 'client' (expected includes=ROLE,... or client, each "
			"at most once)");
}

/* ---- addr4_build: the three-level IPv4 table equals a longest-prefix match ---- */

/* The walk the data path does (group_of4 in bpf/lyncxdp.bpf.c). */
static uint32_t addr4_walk(const struct addr4_table *t, uint32_t a)
{
	uint32_t v = t->l1[a >> 16];
	if (!(v & LX_DIR4_CHILD))
		return v;
	if ((v & ~LX_DIR4_CHILD) >= t->n2)
		return 0xdead;
	v = t->l2[v & ~LX_DIR4_CHILD].entry[(a >> 8) & 0xff];
	if (!(v & LX_DIR4_CHILD))
		return v;
	if ((v & ~LX_DIR4_CHILD) >= t->n3)
		return 0xdead;
	return t->l3[v & ~LX_DIR4_CHILD].group[a & 0xff];
}

static uint32_t addr_u32(const struct compiled_addr *a)
{
	return (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 | (uint32_t)a->addr[2] << 8 |
	       a->addr[3];
}

static int prefix_covers(const uint8_t *p, int len, const uint8_t *a)
{
	for (int bit = 0; bit < len; bit++)
		if ((p[bit / 8] ^ a[bit / 8]) & (0x80 >> (bit % 8)))
			return 0;
	return 1;
}

/* Longest prefix of a family covering a, the later entry on a tie (as map updates overwrite),
 * by a plain scan. */
static uint32_t addr_lpm(const struct compiled *c, int family, const uint8_t *a)
{
	int best = -1;
	uint32_t group = 0;
	for (int i = 0; i < c->naddrs; i++) {
		const struct compiled_addr *p = &c->addrs[i];
		if (p->family == family && p->len >= best && prefix_covers(p->addr, p->len, a)) {
			best = p->len;
			group = p->group;
		}
	}
	return group;
}

/* The group of an address in the compiled table (exact entry), 0 when it has none. */
static uint32_t compiled_group(const struct compiled *c, const char *text)
{
	struct site_prefix p;
	char why[128];
	if (site_parse_prefix(text, &p, why, sizeof(why)) < 0)
		return 0;
	for (int i = 0; i < c->naddrs; i++)
		if (c->addrs[i].family == p.family && c->addrs[i].len == p.len &&
		    !memcmp(c->addrs[i].addr, p.addr, 16))
			return c->addrs[i].group;
	return 0;
}

/*
 * Site `nat PUBLIC PRIVATE` and `allow-outbound`: the public address is a host entry holding
 * the private host's roles, in a group of its own marked nat (also where it was a prefix's
 * broadcast address); allow-outbound adds one outbound-to rule per protected role, none where
 * the role has those ports already.
 */
static void test_site_nat_outbound(const struct matrix *base)
{
	struct site s;
	struct compiled c;
	struct text_error err = { { 0 } };
	const char *path = tmp_text("nat.site", "protect edge-external\n"
						"edge-external 198.51.100.30 2001:db8::30\n"
						"frontend 192.0.2.10\n"
						"edge-external 203.0.113.0/24\n"
						"nat 203.0.113.255 198.51.100.30\n"
						"nat 2001:db8:ff::30 2001:db8::30\n"
						"nat 203.0.113.7 192.0.2.10\n");
	int rc = site_load(path, base, &s, &err);
	if (!CHECK(rc == 0 && s.nnat == 3, "nat site loads, 3 nat lines%s", rc ? why(&err) : ""))
		return;
	const uint8_t *priv = site_nat_private(&s, 4, (const uint8_t[4]){ 203, 0, 113, 255 });
	CHECK(priv && priv[0] == 198 && priv[3] == 30,
	      "site_nat_private: 203.0.113.255 is 198.51.100.30");
	CHECK(!site_nat_private(&s, 4, (const uint8_t[4]){ 198, 51, 100, 30 }),
	      "site_nat_private: a private address is no public one");
	rc = compile_tables(base, &s, &c, &err);
	if (CHECK(rc == 0, "nat site compiles%s", rc ? why(&err) : "")) {
		uint32_t g_priv = compiled_group(&c, "198.51.100.30/32"),
			 g_pub = compiled_group(&c, "203.0.113.255/32"),
			 g_pub6 = compiled_group(&c, "2001:db8:ff::30/128"),
			 g_priv6 = compiled_group(&c, "2001:db8::30/128"),
			 g_fe_pub = compiled_group(&c, "203.0.113.7/32");
		CHECK(g_priv && g_pub && g_pub != g_priv &&
			  c.group_roles[g_pub] == c.group_roles[g_priv] && c.group_nat[g_pub] &&
			  !c.group_nat[g_priv] && (c.nat_groups & (1u << g_pub)) &&
			  (c.protected_groups & (1u << g_pub)) && (c.peer_groups & (1u << g_pub)),
		      "nat: 203.0.113.255 (the /24's broadcast address) holds 198.51.100.30's "
		      "roles in a nat group, protected and a peer (groups %u, %u)",
		      g_pub, g_priv);
		CHECK(g_pub6 == g_pub && g_priv6 == g_priv,
		      "nat: the IPv6 pair shares the IPv4 pair's groups (%u, %u)", g_pub6, g_priv6);
		CHECK(g_fe_pub && c.group_nat[g_fe_pub] &&
			  c.group_roles[g_fe_pub] ==
			      c.group_roles[compiled_group(&c, "192.0.2.10/32")] &&
			  !(c.protected_groups & (1u << g_fe_pub)),
		      "nat: a Front End's public address holds frontend only, not the /24's "
		      "edge-external, and is not protected");
		CHECK(c.broadcasts4 == 0 && c.hosts4 == 4 && c.hosts6 == 2,
		      "nat: the broadcast entry gave way to the nat host (broadcasts %u, hosts "
		      "%u/%u)",
		      c.broadcasts4, c.hosts4, c.hosts6);
		compile_free(&c);
	}
	site_free(&s);

	/* allow-outbound: one rule per protected role, none where the matrix has it. */
	struct matrix m;
	if (!CHECK(matrix_load(BASE_MATRIX, &m, &err) == 0, "base matrix loads"))
		return;
	path = tmp_text("outbound.site", "protect edge-external frontend\n"
					 "edge-external 198.51.100.30\n"
					 "frontend 192.0.2.10\n"
					 "allow-outbound udp 123\n"
					 "allow-outbound tcp 8530-8531\n");
	rc = site_load(path, &m, &s, &err);
	int before = m.nrules;
	if (CHECK(rc == 0, "allow-outbound site loads%s", rc ? why(&err) : "") &&
	    CHECK(site_add_outbound_rules(&m, &s, &err) == 0, "allow-outbound rules added%s",
		  why(&err))) {
		CHECK(m.nrules == before + 4,
		      "allow-outbound: 2 lines x 2 protected roles = 4 rules "
		      "(%d)",
		      m.nrules - before);
		const struct matrix_rule *r = &m.rules[before];
		char where[256], want[256];
		matrix_rule_where(&m, r, where, sizeof(where));
		snprintf(want, sizeof(want), "%s:4", path);
		CHECK(r->kind == LX_KIND_OUTBOUND_TO && r->proto == LX_PROTO_UDP &&
			  r->port_lo == 123 && r->port_hi == 123 &&
			  !strcmp(m.services[r->service].slug, "allow-outbound") &&
			  !strcmp(r->source, "local:allow-outbound") && !strcmp(where, want),
		      "allow-outbound: outbound %s allow-outbound udp to 123 local:allow-outbound "
		      "at %s (got %s)",
		      m.roles[r->role].slug, want, where);
		CHECK(site_add_outbound_rules(&m, &s, &err) == 0 && m.nrules == before + 4,
		      "allow-outbound: applied twice, no rule added twice (%d)", m.nrules - before);
		rc = compile_tables(&m, &s, &c, &err);
		if (CHECK(rc == 0, "allow-outbound site compiles%s", rc ? why(&err) : "")) {
			uint32_t g = compiled_group(&c, "198.51.100.30/32");
			CHECK(compiled_remote_at(&c, g, LX_PROTO_UDP, 123) == before + 1 ||
				  compiled_remote_at(&c, g, LX_PROTO_UDP, 123) == before + 2,
			      "allow-outbound: the Edge's group has an outbound rule to udp 123");
			CHECK(compiled_remote_at(&c, g, LX_PROTO_TCP, 8531) &&
				  !compiled_remote_at(&c, g, LX_PROTO_TCP, 8532),
			      "allow-outbound: ... and to tcp 8530-8531, not 8532");
			compile_free(&c);
		}
	}
	if (rc == 0)
		site_free(&s);
	matrix_free(&m);
}

static uint32_t addr4_lpm(const struct compiled *c, uint32_t a)
{
	uint8_t b[4];
	put32(b, a);
	return addr_lpm(c, 4, b);
}

static void test_addr4(void)
{
	static struct compiled_addr addrs[600];
	struct compiled c = { .addrs = addrs };
	unsigned seed = 13;
	int lens[] = { 0, 8, 12, 15, 16, 17, 20, 23, 24, 25, 26, 28, 30, 31, 32, 32, 32, 32 };
	for (int round = 0; round < 8; round++) {
		/* Clustered in a few /12s so that prefixes nest and chunks are shared. */
		c.naddrs = round == 0 ? 0 : 50 + round * 60;
		for (int i = 0; i < c.naddrs; i++) {
			struct compiled_addr *a = &addrs[i];
			uint32_t v = (uint32_t)rand_r(&seed) << 1 ^ (uint32_t)rand_r(&seed);
			v = (v & 0x000fffffu) |
			    (0xc0000000u + ((uint32_t)(rand_r(&seed) % 3) << 20));
			a->family = i % 7 == 6 ? 6 : 4; /* IPv6 entries are not the table's */
			a->len = lens[(unsigned)rand_r(&seed) % (sizeof(lens) / sizeof(lens[0]))];
			if (round == 1 && i == 0)
				a->len = 0; /* a default route */
			uint32_t mask = a->len ? ~0u << (32 - a->len) : 0;
			v &= mask;
			a->addr[0] = (uint8_t)(v >> 24);
			a->addr[1] = (uint8_t)(v >> 16);
			a->addr[2] = (uint8_t)(v >> 8);
			a->addr[3] = (uint8_t)v;
			a->group = 1 + (uint32_t)rand_r(&seed) % 30;
		}
		struct addr4_table t;
		if (!CHECK(addr4_build(&c, &t) == 0, "addr4 round %d: %d entries build", round,
			   c.naddrs))
			continue;
		int bad = 0;
		uint32_t first_bad = 0;
		for (int k = 0; k < 200000; k++) {
			uint32_t a;
			if (k % 2 && c.naddrs) { /* near an entry: inside, at its edges */
				const struct compiled_addr *p =
				    &addrs[(unsigned)k % (unsigned)c.naddrs];
				a = addr_u32(p) + (uint32_t)(rand_r(&seed) % 512) - 256;
			} else {
				a = (uint32_t)rand_r(&seed) << 1 ^ (uint32_t)rand_r(&seed);
				if (k % 4 == 0)
					a = (a & 0x000fffffu) | 0xc0000000u;
			}
			if (addr4_walk(&t, a) != addr4_lpm(&c, a) && !bad++)
				first_bad = a;
		}
		CHECK(!bad,
		      "addr4 round %d: 200000 addresses get the longest prefix's group (%d "
		      "differ, "
		      "first %08x), %u l2 and %u l3 chunks",
		      round, bad, first_bad, t.n2, t.n3);
		addr4_free(&t);
	}
}

/* ---- addr6_build: the per-length IPv6 tables equal a longest-prefix match ---- */

/* The probes the data path does (group_of6 in bpf/lyncxdp.bpf.c). */
static uint32_t addr6_probe(const struct addr6_table *t, const uint8_t addr[16])
{
	uint32_t a[4];
	memcpy(a, addr, 16);
	for (uint32_t i = 0; i < t->nlens; i++) {
		uint32_t len = t->lens[i], m[4];
		for (uint32_t k = 0; k < 4; k++)
			m[k] = lx_addr6_word(a[k], k, len);
		const struct lx_addr6_bucket *b =
		    &t->buckets[lx_addr6_hash(m, len) & (t->nbuckets - 1)];
		for (int w = 0; w < LX_ADDR6_WAYS; w++)
			if (b->slot[w].group && b->slot[w].len == len &&
			    !memcmp(b->slot[w].addr, m, 16))
				return b->slot[w].group;
	}
	return 0;
}

static void test_addr6(void)
{
	static struct compiled_addr addrs[3000];
	struct compiled c = { .addrs = addrs };
	unsigned seed = 6;
	int lens[] = { 0, 16, 29, 32, 48, 56, 63, 64, 127, 128, 128, 128 };
	for (int round = 0; round < 6; round++) {
		c.naddrs = round == 5 ? 3000 : round * 120;
		int nlens = round < 4 ? 5 + round : 12; /* round 4: 9 lengths, one too many */
		for (int i = 0; i < c.naddrs; i++) {
			struct compiled_addr *a = &addrs[i];
			a->family = i % 9 == 8 ? 4 : 6; /* IPv4 entries are not the table's */
			a->len = lens[(unsigned)rand_r(&seed) % (unsigned)nlens];
			if (round == 5)
				a->len = i % 2 ? 128 : 64;
			/* Clustered: 2001:db8:X::/48 with X small, low bits random. */
			memset(a->addr, 0, 16);
			a->addr[0] = 0x20;
			a->addr[1] = 0x01;
			a->addr[2] = 0x0d;
			a->addr[3] = 0xb8;
			a->addr[5] = (uint8_t)(rand_r(&seed) % 4);
			for (int k = 6; k < 16; k++)
				a->addr[k] = k < 8 || k > 13 ? (uint8_t)(rand_r(&seed) % 3) : 0;
			for (int bit = a->len; bit < 128; bit++)
				a->addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
			a->group = 1 + (uint32_t)rand_r(&seed) % 30;
		}
		struct addr6_table t;
		if (!CHECK(addr6_build(&c, &t) == 0, "addr6 round %d: %d entries build", round,
			   c.naddrs))
			continue;
		if (round == 4) {
			CHECK(!t.usable,
			      "addr6: more than %d prefix lengths: not used (hash and trie)",
			      LX_ADDR6_LENS);
			addr6_free(&t);
			continue;
		}
		if (!CHECK(t.usable, "addr6 round %d: usable with %u lengths", round, t.nlens))
			continue;
		int bad = 0;
		for (int k = 0; k < 50000; k++) {
			uint8_t a[16];
			if (k % 2 && c.naddrs) {
				memcpy(a, addrs[(unsigned)k % (unsigned)c.naddrs].addr, 16);
				a[15] ^= (uint8_t)(rand_r(&seed) % 3);
				a[7] ^= (uint8_t)(k % 5 == 0);
			} else {
				for (int b = 0; b < 16; b++)
					a[b] = (uint8_t)rand_r(&seed);
				if (k % 4 == 0)
					memcpy(a, addrs[0].addr, 6);
			}
			bad += addr6_probe(&t, a) != addr_lpm(&c, 6, a);
		}
		CHECK(!bad,
		      "addr6 round %d: 50000 addresses get the longest prefix's group (%d "
		      "differ), "
		      "%u lengths, %u buckets",
		      round, bad, t.nlens, t.nbuckets);
		addr6_free(&t);
	}
}

/* The JSON writer: separators, nesting, escaping, null strings and line breaks, byte for byte. */
static void test_json_writer(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!CHECK(out != NULL, "json: open_memstream"))
		return;
	struct json_writer w;
	json_begin(&w, out);
	json_kv_str(&w, "s", "a\"b\\c\n\x01");
	json_kv_str(&w, "none", NULL);
	json_key(&w, "list");
	json_array_begin(&w);
	for (int i = 0; i < 2; i++) {
		json_break(&w, "\n  ");
		json_object_begin(&w);
		json_kv_uint(&w, "n", (uint64_t)i);
		json_kv_int(&w, "neg", -i);
		json_kv_bool(&w, "b", i);
		json_object_end(&w);
	}
	json_break(&w, "\n");
	json_array_end(&w);
	json_break(&w, "\n");
	json_key(&w, "empty");
	json_array_begin(&w);
	json_array_end(&w);
	json_kv_fixed(&w, "f", 2, 1.5);
	json_key(&w, "h");
	json_hex64(&w, 0xabcULL);
	json_end(&w);
	fclose(out);
	const char *want = "{\"s\": \"a\\\"b\\\\c\\u000a\\u0001\", \"none\": null, \"list\": [\n"
			   "  {\"n\": 0, \"neg\": 0, \"b\": false},\n"
			   "  {\"n\": 1, \"neg\": -1, \"b\": true}\n],\n"
			   "\"empty\": [], \"f\": 1.50, \"h\": \"0000000000000abc\"}\n";
	int same = buf && !strcmp(buf, want);
	CHECK(same, "json: a document byte for byte%s%s", same ? "" : ", got: ", same ? "" : buf);
	free(buf);
}

struct cli_test_values {
	const char *file;
	int flag, choice;
	double interval;
	unsigned long count;
};

static const struct cli_choice cli_test_choices[] = {
	{ "one", 1 }, { "two", 2 }, { "three", 3 }, { 0 }
};
static const struct cli_opt cli_test_opts[] = {
	CLI_OPT_STRING("file", "FILE", offsetof(struct cli_test_values, file), CLI_REQUIRED,
		       "a file"),
	CLI_OPT_FLAG("flag", offsetof(struct cli_test_values, flag), 1, CLI_OR_NEXT, "on"),
	CLI_OPT_FLAG("no-flag", offsetof(struct cli_test_values, flag), 0, 0, "off"),
	CLI_OPT_CHOICE("pick", "P", offsetof(struct cli_test_values, choice), cli_test_choices,
		       "which one: a long help text that has to wrap over several lines, with an "
		       "option name --flag and --no-flag and --pick that must never start a line "
		       "of its own, so that the man page does not take it for an option -x"),
	CLI_OPT_PARSE("interval", "S", offsetof(struct cli_test_values, interval),
		      cli_parse_interval, 60, "--interval is seconds, 0.1 to %g", "every S"),
	CLI_OPT_PARSE("count", "N", offsetof(struct cli_test_values, count), cli_parse_count, 0,
		      "--count is a positive number", "N times"),
	{ 0 },
};

static int cli_test_run(void *values)
{
	(void)values;
	return 0;
}

static const struct cli_cmd cli_test_cmd = { "test",
					     cli_test_run,
					     "[IFACE]",
					     1,
					     0,
					     1,
					     "at most one interface",
					     "a test",
					     "Tests the option tables.\n",
					     { cli_test_opts } };

/* cli_parse with argv (NULL-terminated): its return code, with stderr kept in err. */
static int cli_try(struct cli_test_values *v, char **argv, int *first, char *err, size_t size)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	if (saved < 0 || !tmp)
		return -99;
	dup2(fileno(tmp), 2);
	int rc = cli_parse(&cli_test_cmd, v, argc, argv, first);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t n = fread(err, 1, size - 1, tmp);
	err[n] = '\0';
	fclose(tmp);
	return rc;
}

/* The option tables: what options set, the usage errors, the help they print. */
static void test_cli_params(void)
{
	struct cli_test_values v = { .flag = -1 };
	char err[512];
	int first = -1;
	char *ok[] = { "test",	     "--file", "f",	  "--pick", "two",	 "eth0",
		       "--interval", "0.5",    "--count", "3",	    "--no-flag", NULL };
	int rc = cli_try(&v, ok, &first, err, sizeof(err));
	CHECK(rc == -1 && v.file && !strcmp(v.file, "f") && v.choice == 2 && v.interval == 0.5 &&
		  v.count == 3 && v.flag == 0 && first >= 1 && ok[first] &&
		  !strcmp(ok[first], "eth0") && !ok[first + 1] && !err[0],
	      "cli: options set their fields, the interface is left as the argument");
	struct {
		char *argv[6];
		const char *want;
	} bad[] = {
		{ { "test", "--pick", "four", NULL },
		  "lyncxdp test: --pick is one, two or three (see `lyncxdp test --help`)\n" },
		{ { "test", "--interval", "0", NULL },
		  "lyncxdp test: --interval is seconds, 0.1 to 60 (see `lyncxdp test --help`)\n" },
		{ { "test", "--count", "0", NULL },
		  "lyncxdp test: --count is a positive number (see `lyncxdp test --help`)\n" },
		{ { "test", "--bogus", NULL },
		  "lyncxdp test: unknown option '--bogus' (see `lyncxdp test --help`)\n" },
		{ { "test", "--file", NULL },
		  "lyncxdp test: option '--file' needs a value (see `lyncxdp test --help`)\n" },
		{ { "test", "--flag=yes", NULL },
		  "lyncxdp test: unknown option '--flag=yes' (see `lyncxdp test --help`)\n" },
		{ { "test", "a", "b", NULL },
		  "lyncxdp test: at most one interface (see `lyncxdp test --help`)\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cli_test_values b = { 0 };
		rc = cli_try(&b, bad[i].argv, &first, err, sizeof(err));
		int same = rc == 2 && !strcmp(err, bad[i].want);
		err[strcspn(err, "\n")] = '\0';
		CHECK(same, "cli: %s %s: exit 2 and '%.*s'%s%s", bad[i].argv[1],
		      bad[i].argv[2] ? bad[i].argv[2] : "", (int)strlen(bad[i].want) - 1,
		      bad[i].want, same ? "" : ", got: ", same ? "" : err);
	}

	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!CHECK(out != NULL, "cli: open_memstream"))
		return;
	cli_print_help(out, &cli_test_cmd);
	fclose(out);
	const char *head = "Usage: lyncxdp test [IFACE] --file FILE [--flag | --no-flag] "
			   "[--pick one|two|three]\n"
			   "                    [--interval S] [--count N]\n\n";
	int same = buf && !strncmp(buf, head, strlen(head));
	CHECK(same, "cli: help starts with the synopsis, wrapped%s%.*s",
	      same ? "" : ", got: ", same || !buf ? 0 : (int)strcspn(buf, "\n"), buf ? buf : "");
	int dash = 0, wrapped = 0, listed = 0;
	for (char *line = buf; line && *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		size_t indent = strspn(line, " ");
		if (indent > 4 && line[indent] == '-')
			dash++;
		if (indent > 4 && line[indent] != '-' && line[indent] != '[')
			wrapped++;
		listed += indent == 2 && line[2] == '-';
	}
	CHECK(listed == 6 && wrapped >= 2 && dash == 0,
	      "cli: help lists the 6 options, wraps long help, no wrapped line starts with '-' "
	      "(%d listed, %d wrapped, %d)",
	      listed, wrapped, dash);
	free(buf);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	goto_repo_top();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lyncxdp-parsers.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}

	struct matrix base;
	test_base_matrix(&base);
	test_matrix_format_variants(&base);
	test_matrix_errors();
	test_shipped_matrices();
	test_site_prefix();
	test_site_errors(&base);
	test_site_semantics(&base);
	test_site_crlf(&base);
	test_too_many_groups();
	test_endpoints();
	test_packets();
	test_site_empty(&base);
	test_matrix_outbound();
	test_matrix_outbound_errors();
	test_site_keywords(&base);
	test_compile_outbound();
	test_assign_ids();
	test_qos_profiles();
	test_client_and_combined();
	test_addr4();
	test_addr6();
	test_site_nat_outbound(&base);
	test_json_writer();
	test_cli_params();
	matrix_free(&base);

	tmp_cleanup();
	return check_done();
}

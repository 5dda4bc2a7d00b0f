// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the user-space parsers and compiler, no kernel needed: matrix_load,
 * site_load, site_parse_prefix, compile_tables, endpoint_parse and packet_build.
 * Run from the repository top (tests/run.sh does); bad inputs are generated into a
 * private temporary directory, good ones live in tests/data/.
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

#include "check.h"
#include "compile.h"
#include "matrix.h"
#include "packet.h"
#include "site.h"

#define BASE_MATRIX "tests/data/base.matrix"
#define BASE_SITE   "tests/data/base.site"
#define SEEDS_DIR   "../shared/seeds"

/* ": message" after a check's name when there is one, nothing otherwise. */
static const char *why(const struct text_error *e)
{
	static char buf[sizeof(e->msg) + 2];
	if (!e->msg[0])
		return "";
	snprintf(buf, sizeof(buf), ": %s", e->msg);
	return buf;
}

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
static void goto_repo_top(void)
{
	if (access("tests/check.h", R_OK) == 0)
		return;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	for (char *slash; (slash = strrchr(exe, '/')) != NULL;) {
		*slash = '\0';
		char probe[PATH_MAX + 32];
		snprintf(probe, sizeof(probe), "%s/tests/check.h", exe);
		if (exe[0] && access(probe, R_OK) == 0) {
			if (chdir(exe) != 0)
				perror("chdir");
			return;
		}
	}
}

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
		if (x->role != y->role || x->service != y->service || x->proto != y->proto ||
		    x->port_lo != y->port_lo || x->port_hi != y->port_hi ||
		    strcmp(x->source, y->source) || x->line != y->line)
			return snprintf(why, len, "rule %d differs", i + 1), 0;
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
	char diff[128] = "";

	/* CRLF line ends parse exactly like LF ones. */
	char *crlf = to_crlf(text);
	const char *path = tmp_text("crlf.matrix", crlf);
	int rc = matrix_load(path, &m, &err);
	CHECK(rc == 0 && same_matrix(base, &m, diff, sizeof(diff)),
	      "matrix with CRLF line ends parses like LF%s%s",
	      rc	? ": "
	      : diff[0] ? ": "
			: "",
	      rc ? err.msg : diff);
	if (rc == 0)
		matrix_free(&m);
	free(crlf);

	/* No newline at the end of the last line. */
	char *chopped = strdup(text);
	size_t n = strlen(chopped);
	while (n && chopped[n - 1] == '\n')
		chopped[--n] = '\0';
	path = tmp_text("no-final-newline.matrix", chopped);
	rc = matrix_load(path, &m, &err);
	CHECK(rc == 0 && same_matrix(base, &m, diff, sizeof(diff)),
	      "matrix without a final newline parses%s%s",
	      rc	? ": "
	      : diff[0] ? ": "
			: "",
	      rc ? err.msg : diff);
	if (rc == 0)
		matrix_free(&m);
	free(chopped);

	/* Tabs, comments after fields, blank lines. */
	path = tmp_text("spacing.matrix", "\n# comment\n\tproduct\ttest \"Test\"   # trailing\n\n"
					  "role fe \"FE\" # comment\n"
					  "service s 0 \"S\"\n"
					  "rule fe s udp 1-65535 derived:001,002#glued\n");
	rc = matrix_load(path, &m, &err);
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
	matrix_bad_line("unknown-keyword.matrix", "port frontend 5061",
			"unknown keyword 'port' (expected product, role, service or rule)");
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
	matrix_bad_line("role-option.matrix", "role pool \"P\" contains=frontend",
			"unknown role option 'contains=frontend' (expected includes=)");
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
			"expected 'rule ROLE SERVICE tcp|udp PORT[-PORT] SOURCE'");

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
	matrix_bad_line("source-no-colon.matrix", "rule frontend stun udp 3478 seed004",
			"source 'seed004': expected seed:NNN, derived:NNN[,NNN] or local:NAME");
	matrix_bad_line("source-empty-id.matrix", "rule frontend stun udp 3478 seed:",
			"source 'seed:': expected seed:NNN, derived:NNN[,NNN] or local:NAME");
	matrix_bad_line("source-kind.matrix", "rule frontend stun udp 3478 vendor:004",
			"source 'vendor:004': kind must be seed, derived or local");
	matrix_bad_line("source-kind-prefix.matrix", "rule frontend stun udp 3478 seeds:004",
			"source 'seeds:004': kind must be seed, derived or local");
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
 * digits, ascending, no repeats (maps/README.md), and each a file SEEDS_DIR/NNN_*.txt.
 */
static void test_shipped_sources(const struct matrix *m, const char *path)
{
	struct stat st;
	int have_seeds = stat(SEEDS_DIR, &st) == 0 && S_ISDIR(st.st_mode);
	if (!have_seeds)
		printf("note: %s is absent: not checking that the seed ids %s cites exist\n",
		       SEEDS_DIR, path);
	int ids = 0, bad_form = 0, missing = 0;
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		const char *colon = strchr(r->source, ':');
		if (!colon || starts_with(r->source, "local:"))
			continue;
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
			if (!have_seeds)
				continue;
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
	if (have_seeds && !missing)
		CHECK(1, "%s: all %d seed/derived ids cited exist in %s", path, ids, SEEDS_DIR);
}

/* For every group, transport and port: a group's port bit is set <=> it has a rule there. */
static void check_tables_consistent(const char *label, const struct compiled *c)
{
	long bad = 0, rules = 0;
	for (uint32_t g = 0; g < LX_MAX_GROUPS; g++)
		for (int proto = 0; proto < LX_PROTO_MAX; proto++)
			for (uint32_t port = 0; port < LX_PORTS; port++) {
				uint16_t rule = compiled_rule_at(c, g, proto, port);
				int bit = !!(c->port_groups[lx_port_index((uint32_t)proto, port)] &
					     (1u << g));
				rules += rule != 0;
				int ok = bit == (rule != 0) && rule <= c->nrules &&
					 (g != 0 || rule == 0) &&
					 ((int)g < c->ngroups || rule == 0);
				if (!ok && bad++ < 5)
					CHECK(
					    0,
					    "%s: group %u %s port %u: port_groups bit %d, rule %u",
					    label, g, matrix_proto_name(proto), port, bit, rule);
			}
	if (!bad)
		CHECK(1,
		      "%s: port_groups bit <=> rule for all %d groups x 2 x 65536 (%ld rules set)",
		      label, LX_MAX_GROUPS, rules);
	else
		CHECK(0, "%s: %ld inconsistent (group, proto, port) entries", label, bad);
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
		check_tables_consistent(path, &c);
		compile_free(&c);
	}
	site_free(&s);
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
	    "all-servers, everything)");
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
	site_bad(m, "protect.site", "frontend 192.0.2.10\nprotect 192.0.2.10\n", 2,
		 "'protect' is not supported by this version of lyncxdp");
	site_bad(m, "dscp.site", "dscp media-audio 46\nfrontend 192.0.2.10\n", 1,
		 "'dscp' is not supported by this version of lyncxdp");
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
	CHECK(c.ngroups == 5, "base site: 4 distinct role sets, groups 1..4 (ngroups %d)",
	      c.ngroups);
	CHECK(c.hosts4 == 3 && c.nets4 == 2 && c.hosts6 == 2 && c.nets6 == 2 &&
		  c.config_flags == (LX_CFG_HOST4 | LX_CFG_NET4 | LX_CFG_HOST6 | LX_CFG_NET6),
	      "base site: host and prefix counts, config flags");
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
	check_tables_consistent("base site", &c);
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
			check_tables_consistent("edge-only site", &c);
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

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t csum_add(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

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
	matrix_free(&base);

	tmp_cleanup();
	return check_done();
}

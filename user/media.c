// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile.h"

static const char *const kind_names[LX_MEDIA_MAX] = {
	[LX_MEDIA_OTHER] = "other", [LX_MEDIA_STUN] = "stun",	    [LX_MEDIA_AUDIO] = "audio",
	[LX_MEDIA_VIDEO] = "video", [LX_MEDIA_SHARING] = "sharing", [LX_MEDIA_RTCP] = "rtcp",
	[LX_MEDIA_DTLS] = "dtls",
};

const char *media_kind_name(int kind)
{
	return kind >= 0 && kind < LX_MEDIA_MAX ? kind_names[kind] : "-";
}

int media_kind_parse(const char *name)
{
	for (int k = 0; k < LX_MEDIA_MAX; k++)
		if (!strcmp(name, kind_names[k]))
			return k;
	return -1;
}

static int rtp_kind(const char *name)
{
	int k = media_kind_parse(name);
	return k == LX_MEDIA_AUDIO || k == LX_MEDIA_VIDEO || k == LX_MEDIA_SHARING ? k : -1;
}

static int parse_number(const char *s, double max, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= 0 && v <= max))
		return -1;
	*out = v;
	return 0;
}

static int parse_line(struct text_file *tf, const struct text_tokens *tk, struct media_table *t,
		      struct text_error *err)
{
	const char *kw = tk->tok[0];
	unsigned long n;
	if (!strcmp(kw, "inspect")) {
		if (tk->n != 2 || !text_is_slug(tk->tok[1], LX_SLUG_LEN))
			return text_fail(tf, err, "expected: inspect SERVICE");
		if (t->ninspect == MEDIA_MAX_INSPECT)
			return text_fail(tf, err, "more than %d inspect lines", MEDIA_MAX_INSPECT);
		for (int i = 0; i < t->ninspect; i++)
			if (!strcmp(t->inspect[i], tk->tok[1]))
				return text_fail(tf, err, "service %s is inspected twice",
						 tk->tok[1]);
		text_copy(t->inspect[t->ninspect++], LX_SLUG_LEN, tk->tok[1]);
		return 0;
	}
	if (!strcmp(kw, "tag")) {
		int k = tk->n == 3 ? rtp_kind(tk->tok[1]) : -1;
		if (k < 0 || !text_is_slug(tk->tok[2], LX_SLUG_LEN))
			return text_fail(tf, err, "expected: tag audio|video|sharing SERVICE");
		if (t->tag[k][0])
			return text_fail(tf, err, "a second tag line for %s", tk->tok[1]);
		text_copy(t->tag[k], LX_SLUG_LEN, tk->tok[2]);
		return 0;
	}
	if (!strcmp(kw, "pt")) {
		int flags = 0;
		if (tk->n == 7 && !strcmp(tk->tok[6], "cn"))
			flags = LX_PT_CN;
		else if (tk->n != 6)
			return text_fail(tf, err,
					 "expected: pt NUMBER audio|video|sharing CLOCK NAME "
					 "SOURCE [cn]");
		if (text_parse_uint(tk->tok[1], 0, LX_PAYLOAD_TYPES - 1, &n) < 0)
			return text_fail(tf, err, "payload type '%s' is not 0..127", tk->tok[1]);
		if (n >= 72 && n <= 95) /* RFC 5761: these collide with RTCP */
			return text_fail(tf, err,
					 "payload type %lu is reserved: RTCP uses 200-223 with "
					 "the marker bit (RFC 5761)",
					 n);
		struct media_pt *pt = &t->pt[n];
		if (pt->kind)
			return text_fail(tf, err, "payload type %lu is already on line %d", n,
					 pt->line);
		int k = rtp_kind(tk->tok[2]);
		if (k < 0)
			return text_fail(tf, err, "media kind '%s' is not audio, video or sharing",
					 tk->tok[2]);
		unsigned long clock;
		if (text_parse_uint(tk->tok[3], 0, 1000000, &clock) < 0)
			return text_fail(tf, err, "clock rate '%s' is not 0..1000000 Hz",
					 tk->tok[3]);
		if (strlen(tk->tok[4]) >= LX_SLUG_LEN)
			return text_fail(tf, err, "payload name '%s' is longer than %d", tk->tok[4],
					 LX_SLUG_LEN - 1);
		pt->kind = k;
		pt->clock_hz = (uint32_t)clock;
		pt->flags = (uint8_t)flags;
		pt->line = tf->line;
		text_copy(pt->name, sizeof(pt->name), tk->tok[4]);
		return 0;
	}
	if (!strcmp(kw, "poor")) {
		int k = tk->n == 5 ? rtp_kind(tk->tok[1]) : -1;
		double v;
		if (k < 0)
			return text_fail(tf, err,
					 "expected: poor audio|video|sharing loss|jitter|rtt VALUE "
					 "SOURCE");
		const char *what = tk->tok[2];
		int loss = !strcmp(what, "loss");
		if ((!loss && strcmp(what, "jitter") && strcmp(what, "rtt")) ||
		    parse_number(tk->tok[3], loss ? 1.0 : 100000.0, &v) < 0)
			return text_fail(tf, err,
					 "expected: poor %s loss FRACTION | jitter MS | "
					 "rtt MS SOURCE",
					 tk->tok[1]);
		if (loss)
			t->poor[k].loss = v;
		else if (!strcmp(what, "jitter"))
			t->poor[k].jitter_ms = v;
		else
			t->poor[k].rtt_ms = v;
		return 0;
	}
	if (!strcmp(kw, "poor-min-packets")) {
		if (tk->n != 3 || text_parse_uint(tk->tok[1], 0, 1000000000UL, &n) < 0)
			return text_fail(tf, err, "expected: poor-min-packets COUNT SOURCE");
		t->poor_min_packets = n;
		return 0;
	}
	return text_fail(tf, err, "unknown keyword '%s' (inspect, tag, pt, poor, poor-min-packets)",
			 kw);
}

int media_load(const char *path, struct media_table *t, struct text_error *err)
{
	struct text_file tf;
	struct text_tokens tk;
	memset(t, 0, sizeof(*t));
	for (int k = 0; k < LX_MEDIA_MAX; k++)
		t->poor[k] = (struct media_poor){ -1, -1, -1 };
	text_copy(t->path, sizeof(t->path), path);
	if (text_open(&tf, path, err) < 0)
		return -1;
	int r, rc = 0;
	while ((r = text_next(&tf, &tk, err)) == 1)
		if (tk.n && (rc = parse_line(&tf, &tk, t, err)) < 0)
			break;
	if (r < 0)
		rc = -1;
	text_close(&tf);
	return rc;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int media_find(const char *matrix_path, char *out, size_t size)
{
	char exe[512] = "", mdir[512] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if (matrix_path) {
		text_copy(mdir, sizeof(mdir), matrix_path);
		char *comma = strchr(mdir, ','); /* several matrices (a hybrid site): the first */
		if (comma)
			*comma = '\0';
		slash = strrchr(mdir, '/');
		if (slash)
			*slash = '\0';
		else
			text_copy(mdir, sizeof(mdir), ".");
	}
	const char *env = getenv("LYNCXDP_MAPS");
	const char *dirs[] = {
		mdir, env, exe, exe, exe, "/usr/local/share/lyncxdp/maps", "/usr/share/lyncxdp/maps"
	};
	const char *fmts[] = { "%s/media",
			       "%s/media",
			       "%s/../maps/media",
			       "%s/../../maps/media",
			       "%s/../share/lyncxdp/maps/media",
			       "%s/media",
			       "%s/media" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !dirs[i][0])
			continue;
		snprintf(out, size, fmts[i], dirs[i]);
		if (is_file(out))
			return 0;
	}
	return -1;
}

static int service_index(const struct matrix *m, const char *slug)
{
	for (int i = 0; i < m->nservices; i++)
		if (!strcmp(m->services[i].slug, slug))
			return i;
	return -1;
}

/* The DSCP the tag mode writes for a service: the site's override, else the matrix's. */
static uint8_t service_dscp(const struct matrix *m, const struct site *s, int svc)
{
	int dscp = m->services[svc].dscp;
	for (int k = 0; k < s->ndscp; k++)
		if (s->dscp[k].service == svc)
			dscp = s->dscp[k].dscp;
	return dscp < 0 ? LX_DSCP_KEEP : (uint8_t)dscp;
}

int compile_media(struct compiled *c, const struct matrix *m, const struct site *s,
		  const struct media_table *t, struct text_error *err)
{
	free(c->media);
	c->media = calloc((size_t)m->nrules + 1, 1);
	if (!c->media) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	for (int i = 0; i < LX_PAYLOAD_TYPES; i++)
		c->payload[i] = (struct lx_payload_type){ .clock_hz = t->pt[i].clock_hz,
							  .kind = (__u8)t->pt[i].kind,
							  .flags = t->pt[i].flags };
	for (int i = 0; i < t->ninspect; i++) {
		int svc = service_index(m, t->inspect[i]);
		for (int r = 0; svc >= 0 && r < m->nrules; r++)
			if (m->rules[r].service == svc)
				c->media[r] = 1;
	}
	for (int k = 0; k < LX_MEDIA_MAX; k++) {
		int svc = t->tag[k][0] ? service_index(m, t->tag[k]) : -1;
		c->media_dscp[k] = svc >= 0 ? service_dscp(m, s, svc) : LX_DSCP_KEEP;
	}
	return compile_rule_records(c, m, err);
}

const char *media_verdict(const struct media_table *t, int kind, uint64_t packets, double loss,
			  double jitter_ms)
{
	if (kind < 0 || kind >= LX_MEDIA_MAX)
		return "unclassified";
	const struct media_poor *p = &t->poor[kind];
	if ((p->loss < 0 && p->jitter_ms < 0) || packets <= t->poor_min_packets)
		return "unclassified";
	if ((p->loss >= 0 && loss > p->loss) || (p->jitter_ms >= 0 && jitter_ms > p->jitter_ms))
		return "poor";
	return "good";
}

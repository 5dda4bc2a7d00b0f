// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reads maps/qos.profiles (format in maps/README.md, "QoS profiles"):
 *   profile NAME "Title" SOURCE       declares a profile (SOURCE: the document it follows)
 *   allow   NAME DSCP [DSCP ...]      the only values the profile may write (optional)
 *   mark    NAME SERVICE DSCP|-       the service's DSCP under the profile
 *   mark    NAME =DEFAULT DSCP|-      every service whose matrix default is DEFAULT and that
 *                                     no `mark NAME SERVICE` line names
 * A profile's lines come after its `profile` line. Services no line names keep the matrix's
 * default.
 */
#include "qos.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void qos_profile_free(struct qos_profile *p)
{
	free(p->dscp);
	free(p->mark_line);
	p->dscp = p->mark_line = NULL;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int qos_profiles_path(const struct matrix *m, char *buf, size_t len)
{
	char dir[LX_PATH_LEN];
	/* beside the (first) matrix file: a combined matrix's path is a ',' list */
	text_copy(dir, sizeof(dir), m->nfiles ? m->files[0] : m->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		text_copy(dir, sizeof(dir), ".");
	const char *dirs[] = { dir, getenv("LYNCXDP_MAPS"), "/usr/local/share/lyncxdp/maps",
			       "/usr/share/lyncxdp/maps" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !dirs[i][0])
			continue;
		snprintf(buf, len, "%s/%s", dirs[i], QOS_FILE);
		if (is_file(buf))
			return 0;
	}
	return -1;
}

void qos_format_allowed(uint64_t allowed, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int v = 63; v >= 0 && used < len; v--)
		if (allowed & (1ULL << v))
			used +=
			    (size_t)snprintf(buf + used, len - used, "%s%d", used ? ", " : "", v);
}

static int parse_value(struct text_file *tf, struct text_error *err, const char *s, int *v)
{
	if (matrix_dscp_value(s, v) < 0)
		return text_fail(tf, err, "'%s' is not a DSCP (0..63) or '-'", s);
	return 0;
}

/* One line of the profile being read; lines of other profiles only need to be well formed. */
static int parse_line(struct text_file *tf, struct text_error *err, const struct matrix *m,
		      const char *want, struct qos_profile *p, int *defaults,
		      const struct text_tokens *t, char seen[QOS_MAX_PROFILES][LX_SLUG_LEN],
		      int *nseen)
{
	const char *kw = t->tok[0];
	if (!strcmp(kw, "profile")) {
		if (t->n != 4 || !t->quoted[2])
			return text_fail(tf, err, "expected 'profile NAME \"Title\" SOURCE'");
		if (!text_is_slug(t->tok[1], LX_SLUG_LEN))
			return text_fail(tf, err, "profile name '%s' is not a slug", t->tok[1]);
		for (int i = 0; i < *nseen; i++)
			if (!strcmp(seen[i], t->tok[1]))
				return text_fail(tf, err, "profile '%s' declared twice", t->tok[1]);
		if (*nseen == QOS_MAX_PROFILES)
			return text_fail(tf, err, "more than %d profiles", QOS_MAX_PROFILES);
		text_copy(seen[(*nseen)++], LX_SLUG_LEN, t->tok[1]);
		if (!strcmp(t->tok[1], want)) {
			text_copy(p->name, sizeof(p->name), t->tok[1]);
			text_copy(p->title, sizeof(p->title), t->tok[2]);
			p->line = tf->line;
		}
		return 0;
	}
	if (strcmp(kw, "allow") && strcmp(kw, "mark"))
		return text_fail(
		    tf, err, "unknown keyword '%s' (profile, allow, mark: see maps/README.md)", kw);
	if (t->n < 2)
		return text_fail(tf, err, "%s: expected a profile name", kw);
	int known = 0;
	for (int i = 0; i < *nseen; i++)
		known |= !strcmp(seen[i], t->tok[1]);
	if (!known)
		return text_fail(tf, err, "%s: profile '%s' is not declared above", kw, t->tok[1]);
	int mine = !strcmp(t->tok[1], want);
	if (!strcmp(kw, "allow")) {
		if (t->n < 3)
			return text_fail(tf, err, "expected 'allow PROFILE DSCP [DSCP ...]'");
		uint64_t set = 0;
		for (int i = 2; i < t->n; i++) {
			int v;
			if (parse_value(tf, err, t->tok[i], &v) < 0)
				return -1;
			if (v < 0)
				return text_fail(tf, err, "allow: '-' is not a DSCP");
			set |= 1ULL << v;
		}
		if (mine) {
			if (p->allow_line)
				return text_fail(tf, err,
						 "allow: profile '%s' already has one (line %d)",
						 want, p->allow_line);
			p->allowed = set;
			p->allow_line = tf->line;
		}
		return 0;
	}
	if (t->n != 4)
		return text_fail(tf, err, "expected 'mark PROFILE SERVICE|=DEFAULT DSCP|-'");
	int v;
	if (parse_value(tf, err, t->tok[3], &v) < 0)
		return -1;
	if (t->tok[2][0] == '=') {
		int d;
		if (parse_value(tf, err, t->tok[2] + 1, &d) < 0)
			return -1;
		if (d < 0)
			return text_fail(tf, err, "mark: '=-' names no default");
		if (mine) {
			if (defaults[d] != QOS_UNSET)
				return text_fail(tf, err, "mark: =%d already given", d);
			defaults[d] = v;
		}
		return 0;
	}
	int svc = matrix_find_service(m, t->tok[2]);
	if (svc < 0 || !mine)
		return 0; /* a service this matrix does not declare */
	if (p->dscp[svc] != QOS_UNSET)
		return text_fail(tf, err, "mark: service '%s' already marked at line %d", t->tok[2],
				 p->mark_line[svc]);
	p->dscp[svc] = v;
	p->mark_line[svc] = tf->line;
	return 0;
}

int qos_profile_load(const struct matrix *m, const char *name, struct qos_profile *p,
		     struct text_error *err)
{
	char path[LX_PATH_LEN + 32];
	memset(p, 0, sizeof(*p));
	if (qos_profiles_path(m, path, sizeof(path)) < 0) {
		snprintf(err->msg, sizeof(err->msg),
			 "no %s beside %s (nor in $LYNCXDP_MAPS or the installed maps)", QOS_FILE,
			 m->path);
		return -1;
	}
	text_copy(p->path, sizeof(p->path), path);
	p->nservices = m->nservices;
	p->dscp = malloc(sizeof(int) * (size_t)(m->nservices + 1));
	p->mark_line = calloc((size_t)m->nservices + 1, sizeof(int));
	if (!p->dscp || !p->mark_line) {
		qos_profile_free(p);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	int defaults[64];
	for (int i = 0; i < 64; i++)
		defaults[i] = QOS_UNSET;
	for (int i = 0; i < m->nservices; i++)
		p->dscp[i] = QOS_UNSET;

	struct text_file tf;
	struct text_tokens t;
	char seen[QOS_MAX_PROFILES][LX_SLUG_LEN];
	int nseen = 0, r;
	if (text_open(&tf, path, err) < 0) {
		qos_profile_free(p);
		return -1;
	}
	while ((r = text_next(&tf, &t, err)) > 0)
		if (t.n && parse_line(&tf, err, m, name, p, defaults, &t, seen, &nseen) < 0) {
			r = -1;
			break;
		}
	text_close(&tf);
	if (r == 0 && !p->line) {
		char names[256] = "";
		size_t used = 0;
		for (int i = 0; i < nseen && used < sizeof(names); i++)
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
						 i ? ", " : "", seen[i]);
		snprintf(err->msg, sizeof(err->msg), "unknown qos profile '%s' (%s has: %s)", name,
			 path, names);
		r = -1;
	}
	if (r < 0) {
		qos_profile_free(p);
		return -1;
	}
	for (int i = 0; i < m->nservices; i++) {
		int d = m->services[i].dscp;
		if (p->dscp[i] == QOS_UNSET && d >= 0 && defaults[d] != QOS_UNSET) {
			p->dscp[i] = defaults[d];
			p->mark_line[i] = 0;
		}
	}
	return 0;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The screen is redrawn in place every interval (and after every key) with ANSI escapes on the
 * alternate screen: no curses, so it works over any SSH session and any terminal of at least
 * 80x24 (smaller ones get fewer rows and columns, never wrapped lines). Rates are the counter
 * differences between two samples; the sparkline shows each row's bits/s (both ways) over the
 * last minute.
 */
#include "stop.h"
#include "top.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define HISTORY	   60 /* samples kept per row: one minute at the default interval */
#define SPARK_W	   12 /* sparkline width in columns */
#define MAX_FILTER 31

/* One (role, service) row: counters summed over its rules, ports and kinds. */
struct top_row {
	char role[LX_SLUG_LEN];
	char service[LX_SLUG_LEN];
	struct lx_count now[LX_DIR_MAX], before[LX_DIR_MAX];
	double pps[LX_DIR_MAX], bps[LX_DIR_MAX]; /* bits per second */
	double hist[HISTORY];			 /* bits/s both ways, oldest first */
	int seen;				 /* samples taken since the row appeared */
};

enum sort_key { SORT_RATE, SORT_IN, SORT_OUT, SORT_PACKETS, SORT_NAME, SORT_MAX };
static const char *const sort_names[SORT_MAX] = { "bit/s", "in bit/s", "out bit/s", "pkt/s",
						  "name" };

struct top {
	const struct top_opts *o;
	struct top_row *rows;
	int nrows, cap;
	struct lx_count drops[LX_DROP_MAX], would[LX_DROP_MAX];
	struct lx_count drops_before[LX_DROP_MAX], would_before[LX_DROP_MAX];
	double drop_rate[LX_DROP_MAX], would_rate[LX_DROP_MAX];
	struct lx_count unmatched, unmatched_before;
	double unmatched_rate;
	int samples;
	enum sort_key sort;
	int show_idle; /* rows with nothing in the last interval too */
	char filter[MAX_FILTER + 1];
	int editing; /* typing a filter */
	char edit[MAX_FILTER + 1];
	int utf8;
	char *frame; /* the screen being built */
	size_t len, size;
};

static volatile sig_atomic_t resized;

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

/* ---- the frame: appended to, then written at once ---- */

static void put(struct top *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct top *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->frame + t->len, t->size - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < t->size - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t size = t->size * 2 + (size_t)n;
		char *grown = realloc(t->frame, size);
		if (!grown)
			return;
		t->frame = grown;
		t->size = size;
	}
}

/* One screen line: text cut to the width (visible columns), then "erase to end of line". */
static void line(struct top *t, int cols, const char *text, const char *style)
{
	int w = 0;
	const char *p = text;
	while (*p && w < cols) {
		/* a UTF-8 sequence is one column: copy it whole */
		int n = (*p & 0x80) == 0      ? 1
			: (*p & 0xe0) == 0xc0 ? 2
			: (*p & 0xf0) == 0xe0 ? 3
					      : 4;
		p += n;
		w++;
	}
	put(t, "%s%.*s\033[0m\033[K\r\n", style ? style : "", (int)(p - text), text);
}

/* ---- sampling ---- */

static struct top_row *row_for(struct top *t, const char *role, const char *service)
{
	for (int i = 0; i < t->nrows; i++)
		if (!strcmp(t->rows[i].role, role) && !strcmp(t->rows[i].service, service))
			return &t->rows[i];
	if (t->nrows == t->cap) {
		int cap = t->cap ? t->cap * 2 : 64;
		struct top_row *grown = realloc(t->rows, sizeof(*grown) * (size_t)cap);
		if (!grown)
			return NULL;
		t->rows = grown;
		t->cap = cap;
	}
	struct top_row *r = &t->rows[t->nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->role, sizeof(r->role), "%s", role);
	snprintf(r->service, sizeof(r->service), "%s", service);
	return r;
}

static double rate(uint64_t now, uint64_t before, double secs)
{
	return now >= before && secs > 0 ? (double)(now - before) / secs : 0;
}

static void sample(struct top *t, const struct stats_report *r, double secs)
{
	for (int i = 0; i < t->nrows; i++) {
		memcpy(t->rows[i].before, t->rows[i].now, sizeof(t->rows[i].now));
		memset(t->rows[i].now, 0, sizeof(t->rows[i].now));
	}
	for (int i = 0; i < r->nrows; i++) {
		const struct stats_row *s = &r->rows[i];
		struct top_row *row = row_for(t, s->info.role, s->info.service);
		if (!row || s->dir >= LX_DIR_MAX)
			continue;
		row->now[s->dir].packets += s->count.packets;
		row->now[s->dir].bytes += s->count.bytes;
	}
	for (int i = 0; i < t->nrows; i++) {
		struct top_row *row = &t->rows[i];
		double both = 0;
		for (int d = 0; d < LX_DIR_MAX; d++) {
			int fresh = row->seen == 0 || t->samples == 0;
			row->pps[d] =
			    fresh ? 0 : rate(row->now[d].packets, row->before[d].packets, secs);
			row->bps[d] =
			    fresh ? 0 : 8 * rate(row->now[d].bytes, row->before[d].bytes, secs);
			both += row->bps[d];
		}
		memmove(row->hist, row->hist + 1, sizeof(row->hist) - sizeof(row->hist[0]));
		row->hist[HISTORY - 1] = both;
		row->seen++;
	}
	memcpy(t->drops_before, t->drops, sizeof(t->drops));
	memcpy(t->would_before, t->would, sizeof(t->would));
	memcpy(t->drops, r->drops, sizeof(t->drops));
	memcpy(t->would, r->would_drop, sizeof(t->would));
	t->unmatched_before = t->unmatched;
	memset(&t->unmatched, 0, sizeof(t->unmatched));
	for (int c = 0; c < LX_CNT_MAX; c++) {
		t->unmatched.packets += r->special[c].packets;
		t->unmatched.bytes += r->special[c].bytes;
	}
	for (int k = 1; k < LX_DROP_MAX; k++) {
		t->drop_rate[k] =
		    t->samples ? rate(t->drops[k].packets, t->drops_before[k].packets, secs) : 0;
		t->would_rate[k] =
		    t->samples ? rate(t->would[k].packets, t->would_before[k].packets, secs) : 0;
	}
	t->unmatched_rate =
	    t->samples ? rate(t->unmatched.packets, t->unmatched_before.packets, secs) : 0;
	t->samples++;
}

/* ---- drawing ---- */

/* "1.2M", "350k", "12" */
static void human(char *buf, size_t len, double v)
{
	static const char units[] = " kMGT";
	int u = 0;
	while (v >= 999.5 && u < 4) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, v < 10 && v > 0 ? "%.1f" : "%.0f", v);
	else
		snprintf(buf, len, "%.*f%c", v < 9.95 ? 1 : 0, v, units[u]);
}

static void sparkline(const struct top *t, const struct top_row *row, char *buf, size_t len)
{
	static const char *const blocks[] = { " ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
	static const char ascii[] = " .:-=+*#%";
	int per = HISTORY / SPARK_W; /* samples per column */
	double max = 0, col[SPARK_W];
	for (int c = 0; c < SPARK_W; c++) {
		col[c] = 0;
		for (int k = 0; k < per; k++)
			col[c] += row->hist[c * per + k] / per;
		if (col[c] > max)
			max = col[c];
	}
	size_t used = 0;
	buf[0] = '\0';
	for (int c = 0; c < SPARK_W && used + 4 < len; c++) {
		int level = max > 0 ? (int)(col[c] / max * 8 + 0.5) : 0;
		if (col[c] > 0 && level == 0)
			level = 1;
		if (t->utf8)
			used += (size_t)snprintf(buf + used, len - used, "%s", blocks[level]);
		else
			buf[used++] = ascii[level], buf[used] = '\0';
	}
}

static double key_of(const struct top_row *r, enum sort_key k)
{
	switch (k) {
	case SORT_IN:
		return r->bps[LX_DIR_IN];
	case SORT_OUT:
		return r->bps[LX_DIR_OUT];
	case SORT_PACKETS:
		return r->pps[LX_DIR_IN] + r->pps[LX_DIR_OUT];
	default:
		return r->bps[LX_DIR_IN] + r->bps[LX_DIR_OUT];
	}
}

static enum sort_key sort_by;
static int cmp_rows(const void *a, const void *b)
{
	const struct top_row *x = *(const struct top_row *const *)a;
	const struct top_row *y = *(const struct top_row *const *)b;
	if (sort_by != SORT_NAME) {
		double kx = key_of(x, sort_by), ky = key_of(y, sort_by);
		if (kx != ky)
			return kx < ky ? 1 : -1;
	}
	int c = strcmp(x->role, y->role);
	return c ? c : strcmp(x->service, y->service);
}

static int row_shown(const struct top *t, const struct top_row *r)
{
	if (t->filter[0] && !strstr(r->role, t->filter) && !strstr(r->service, t->filter))
		return 0;
	if (t->show_idle)
		return 1;
	for (int k = 0; k < HISTORY; k++)
		if (r->hist[k] > 0)
			return 1;
	return 0;
}

static void screen_size(int fd, int *rows, int *cols)
{
	struct winsize ws;
	*rows = 24;
	*cols = 80;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static void draw(struct top *t)
{
	int rows, cols;
	char text[512], a[16], b[16], c[16], d[16], spark[64];
	screen_size(t->o->out_fd, &rows, &cols);
	t->len = 0;
	put(t, "\033[H");

	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char clock[16];
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	snprintf(text, sizeof(text), "lyncxdp top  %s  %s  every %gs", t->o->title, clock,
		 t->o->interval);
	line(t, cols, text, "\033[1m");
	if (t->editing)
		snprintf(text, sizeof(text), "filter: %s_   (Enter apply, Esc cancel)", t->edit);
	else
		snprintf(text, sizeof(text),
			 "sort: %s  filter: %s  %s  keys: s sort / filter a all q quit",
			 sort_names[t->sort], t->filter[0] ? t->filter : "-",
			 t->show_idle ? "all rows" : "active rows");
	line(t, cols, text, NULL);
	snprintf(text, sizeof(text), "%-27s %8s %8s %8s %8s  %-*s", "ROLE/SERVICE", "IN pkt/s",
		 "IN bit/s", "OUT pkt/s", "OUT bit/s", SPARK_W, "last minute");
	line(t, cols, text, "\033[7m");

	/* the policy block takes its lines from the bottom: a header, then a line per reason
	 * that ever counted (or one saying none did) */
	int reasons = 0;
	for (int k = 1; k < LX_DROP_MAX; k++)
		reasons += t->drops[k].packets || t->would[k].packets;
	int room = rows - 3 - 1 - (reasons ? reasons : 1);

	struct top_row **order = calloc((size_t)t->nrows + 1, sizeof(*order));
	int n = 0;
	for (int i = 0; order && i < t->nrows; i++)
		if (row_shown(t, &t->rows[i]))
			order[n++] = &t->rows[i];
	sort_by = t->sort;
	if (order)
		qsort(order, (size_t)n, sizeof(*order), cmp_rows);
	int shown = 0;
	for (int i = 0; i < n && shown < room; i++, shown++) {
		const struct top_row *r = order[i];
		char name[64];
		snprintf(name, sizeof(name), "%s/%s", r->role, r->service);
		human(a, sizeof(a), r->pps[LX_DIR_IN]);
		human(b, sizeof(b), r->bps[LX_DIR_IN]);
		human(c, sizeof(c), r->pps[LX_DIR_OUT]);
		human(d, sizeof(d), r->bps[LX_DIR_OUT]);
		sparkline(t, r, spark, sizeof(spark));
		snprintf(text, sizeof(text), "%-27.27s %8s %8s %8s %8s  %s", name, a, b, c, d,
			 spark);
		line(t, cols, text, NULL);
	}
	if (n > shown)
		snprintf(text, sizeof(text), "(%d more rows: a larger terminal, or / to filter)",
			 n - shown);
	else if (!n)
		snprintf(text, sizeof(text), "(%s)",
			 t->filter[0] ? "no row matches the filter" : "no traffic yet");
	else
		text[0] = '\0';
	if (n > shown || !n) {
		line(t, cols, text, "\033[2m");
		shown++;
	}
	free(order);
	for (; shown < room; shown++)
		line(t, cols, "", NULL);

	human(a, sizeof(a), t->unmatched_rate);
	snprintf(text, sizeof(text), "%-27s %12s %14s   unmatched %s pkt/s", "POLICY REASON",
		 "dropped/s", "would-drop/s", a);
	line(t, cols, text, "\033[7m");
	int any = 0;
	for (int k = 1; k < LX_DROP_MAX; k++) {
		if (!t->drops[k].packets && !t->would[k].packets)
			continue;
		human(a, sizeof(a), t->drop_rate[k]);
		human(b, sizeof(b), t->would_rate[k]);
		snprintf(text, sizeof(text), "%-27s %12s %14s   total %llu / %llu",
			 stats_reason_name((uint32_t)k), a, b,
			 (unsigned long long)t->drops[k].packets,
			 (unsigned long long)t->would[k].packets);
		line(t, cols, text, t->drop_rate[k] > 0 || t->would_rate[k] > 0 ? "\033[1m" : NULL);
		any = 1;
	}
	if (!any)
		line(t, cols, "(nothing dropped or would-dropped)", "\033[2m");
	/* no newline after the last line: it would scroll the screen */
	if (t->len >= 2 && !memcmp(t->frame + t->len - 2, "\r\n", 2))
		t->len -= 2;
	put(t, "\033[J");
	ssize_t off = 0;
	while ((size_t)off < t->len) {
		ssize_t w = write(t->o->out_fd, t->frame + off, t->len - (size_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
}

/* ---- keys ---- */

/* Returns 1 to quit. */
static int key(struct top *t, unsigned char ch)
{
	if (t->editing) {
		size_t n = strlen(t->edit);
		if (ch == '\r' || ch == '\n') {
			memcpy(t->filter, t->edit, sizeof(t->filter));
			t->editing = 0;
		} else if (ch == 27) {
			t->editing = 0;
		} else if ((ch == 127 || ch == 8) && n) {
			t->edit[n - 1] = '\0';
		} else if (ch >= 0x20 && ch < 0x7f && n < MAX_FILTER) {
			t->edit[n] = (char)ch;
			t->edit[n + 1] = '\0';
		}
		return 0;
	}
	switch (ch) {
	case 'q':
	case 'Q':
		return 1;
	case 's':
		t->sort = (t->sort + 1) % SORT_MAX;
		break;
	case 'S':
		t->sort = (t->sort + SORT_MAX - 1) % SORT_MAX;
		break;
	case '/':
	case 'f':
		t->editing = 1;
		memcpy(t->edit, t->filter, sizeof(t->edit));
		break;
	case 'a':
		t->show_idle = !t->show_idle;
		break;
	case 27: /* Esc clears the filter */
		t->filter[0] = '\0';
		break;
	}
	return 0;
}

static double monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int top_run(const struct top_opts *o, top_collect_fn collect, void *ctx, struct text_error *err)
{
	struct termios saved, raw;
	if (tcgetattr(o->in_fd, &saved) < 0) {
		snprintf(err->msg, sizeof(err->msg), "top needs a terminal: %s", strerror(errno));
		return -1;
	}
	struct top t = { .o = o };
	setlocale(LC_CTYPE, "");
	t.utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");

	stop_on_signals();
	struct sigaction sa = { .sa_handler = on_winch }, old_winch;
	sigaction(SIGWINCH, &sa, &old_winch);
	raw = saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	tcsetattr(o->in_fd, TCSANOW, &raw);
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	static const char leave[] = "\033[?25h\033[?1049l";
	if (write(o->out_fd, enter, sizeof(enter) - 1) < 0) {
		/* nothing to restore on the screen; the terminal settings below */
	}

	int rc = 0;
	double last = 0, next = monotonic();
	while (!stop_requested) {
		double now = monotonic();
		if (now >= next) {
			struct stats_report r;
			if (collect(ctx, &r, err) < 0) {
				rc = -1;
				break;
			}
			sample(&t, &r, last ? now - last : o->interval);
			stats_free(&r);
			last = now;
			next = now + o->interval;
			draw(&t);
		}
		struct pollfd pfd = { .fd = o->in_fd, .events = POLLIN };
		int ms = (int)((next - monotonic()) * 1000);
		int ready = poll(&pfd, 1, ms > 0 ? ms : 0);
		if (resized) {
			resized = 0;
			draw(&t);
		}
		if (ready <= 0)
			continue;
		unsigned char buf[64];
		ssize_t n = read(o->in_fd, buf, sizeof(buf));
		if (n == 0) /* the terminal went away */
			break;
		int quit = 0;
		for (ssize_t i = 0; i < n && !quit; i++)
			quit = key(&t, buf[i]);
		if (quit)
			break;
		draw(&t);
	}
	if (write(o->out_fd, leave, sizeof(leave) - 1) < 0) {
		/* the terminal is gone: nothing left to restore on it */
	}
	tcsetattr(o->in_fd, TCSANOW, &saved);
	sigaction(SIGWINCH, &old_winch, NULL);
	free(t.rows);
	free(t.frame);
	return rc;
}

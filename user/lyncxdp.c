// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lyncxdp: the command line. A table of commands, each with its tables of options
 * (cli_params.h: parsing, --help and the main usage come from them) and a function that
 * calls the modules; printing lives with the modules (status.c, explain.c, stats.c, ...).
 */
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "attach.h"
#include "capture.h"
#include "cli_params.h"
#include "compile.h"
#include "conntrack.h"
#include "droplog.h"
#include "explain.h"
#include "exporter.h"
#include "flows.h"
#include "json.h"
#include "matrix.h"
#include "media.h"
#include "metrics.h"
#include "packet.h"
#include "pins.h"
#include "site.h"
#include "stats.h"
#include "status.h"
#include "stop.h"
#include "streams.h"
#include "testrun.h"
#include "top.h"

#ifndef LYNCXDP_VERSION
#define LYNCXDP_VERSION "0.1.0"
#endif
#define DEFAULT_PRODUCT "sfb2015"
/* The products whose matrices maps/ ships (maps/PRODUCT.matrix). */
#define PRODUCTS	"ocs2007r2, lync2010, lync2013, sfb2015, teams"
#define STR(x)		STR_(x)
#define STR_(x)		#x

/* ---- options shared by the commands that read a matrix and a site ---- */

struct inputs {
	const char *product;
	const char *matrix_path;
	const char *site_path;
	char resolved[PATH_MAX];
	struct matrix m;
	struct site s;
	struct compiled c;
	char media_path[PATH_MAX];
	struct media_table media;
};

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Product matrices live in maps/ beside the build, or in the installed share directory. */
static int resolve_one_product(const char *product, char *out, size_t outlen)
{
	char exe[PATH_MAX], candidate[PATH_MAX];
	const char *env = getenv("LYNCXDP_MAPS");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	const char *dirs[] = { env, exe, exe, "/usr/local/share/lyncxdp/maps",
			       "/usr/share/lyncxdp/maps" };
	const char *fmts[] = { "%s/%s.matrix", "%s/../maps/%s.matrix",
			       "%s/../share/lyncxdp/maps/%s.matrix", "%s/%s.matrix",
			       "%s/%s.matrix" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !dirs[i][0] || !text_is_slug(product, LX_SLUG_LEN))
			continue;
		snprintf(candidate, sizeof(candidate), fmts[i], dirs[i], product);
		if (file_exists(candidate)) {
			text_copy(out, outlen, candidate);
			return 0;
		}
	}
	fprintf(stderr,
		"lyncxdp: unknown product '%s' (" PRODUCTS "), "
		"or its matrix is not installed (set LYNCXDP_MAPS to the maps directory)\n",
		product);
	return -1;
}

static void free_inputs(struct inputs *in)
{
	compile_free(&in->c);
	site_free(&in->s);
	matrix_free(&in->m);
}

/* One product, or several joined by ',' (a hybrid site: sfb2015,teams): their matrices'
 * paths joined by ',', which matrix_load reads as one combined matrix. */
static int resolve_product(struct inputs *in)
{
	char list[256], one[PATH_MAX];
	size_t used = 0;
	if (strlen(in->product) >= sizeof(list)) {
		fprintf(stderr, "lyncxdp: --product: too long\n");
		return -1;
	}
	text_copy(list, sizeof(list), in->product);
	in->resolved[0] = '\0';
	for (char *next, *p = list; p; p = next) {
		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		if (resolve_one_product(p, one, sizeof(one)) < 0)
			return -1;
		int w = snprintf(in->resolved + used, sizeof(in->resolved) - used, "%s%s",
				 used ? "," : "", one);
		if (w < 0 || (size_t)w >= sizeof(in->resolved) - used) {
			fprintf(stderr, "lyncxdp: --product: the matrices' paths are too long\n");
			return -1;
		}
		used += (size_t)w;
	}
	return 0;
}

static int load_inputs(struct inputs *in)
{
	struct text_error err;
	if (!in->site_path) {
		fprintf(stderr, "lyncxdp: --site FILE is required\n");
		return -1;
	}
	if (in->product && in->matrix_path) {
		fprintf(stderr, "lyncxdp: give --product or --matrix, not both\n");
		return -1;
	}
	if (!in->matrix_path) {
		if (!in->product)
			in->product = DEFAULT_PRODUCT;
		if (resolve_product(in) < 0)
			return -1;
		in->matrix_path = in->resolved;
	}
	if (matrix_load(in->matrix_path, &in->m, &err) < 0) {
		fprintf(stderr, "lyncxdp: %s\n", err.msg);
		return -1;
	}
	if (site_load(in->site_path, &in->m, &in->s, &err) < 0 ||
	    site_add_outbound_rules(&in->m, &in->s, &err) < 0 ||
	    compile_tables(&in->m, &in->s, &in->c, &err) < 0) {
		fprintf(stderr, "lyncxdp: %s\n", err.msg);
		site_free(&in->s);
		matrix_free(&in->m);
		return -1;
	}
	/* Without the media data (a matrix copied elsewhere, no LYNCXDP_MAPS) nothing is
	 * inspected: the classifier works as it would without media services. */
	if (media_find(in->matrix_path, in->media_path, sizeof(in->media_path)) < 0)
		return 0;
	if (media_load(in->media_path, &in->media, &err) < 0 ||
	    compile_media(&in->c, &in->m, &in->s, &in->media, &err) < 0) {
		fprintf(stderr, "lyncxdp: %s\n", err.msg);
		free_inputs(in);
		return -1;
	}
	return 0;
}

/* ---- the options: what they set (one struct for every command), their tables ---- */

struct args {
	struct inputs in; /* --product, --matrix, --site */
	int json, all, prometheus, flows, streams;
	int policy, tag, side, mode; /* -1: not given */
	double interval, seconds;
	unsigned long count, tos;
	const char *listen;
	char **args; /* the arguments after the options, NULL-terminated */
};

#define FIELD(f) offsetof(struct args, f)

static const struct cli_choice policies[] = { { "monitor", LX_POLICY_MONITOR },
					      { "enforce", LX_POLICY_ENFORCE },
					      { 0 } };
static const struct cli_choice sides[] = { { "route", LX_SIDE_ROUTE },
					   { "protected", LX_SIDE_PROTECTED },
					   { "unprotected", LX_SIDE_UNPROTECTED },
					   { 0 } };
/* The sides a test run can model: frames arrive on no interface, so nothing to route by. */
static const struct cli_choice test_sides[] = { { "protected", LX_SIDE_PROTECTED },
						{ "unprotected", LX_SIDE_UNPROTECTED },
						{ 0 } };
static const struct cli_choice modes[] = { { "native", ATTACH_MODE_NATIVE },
					   { "generic", ATTACH_MODE_GENERIC },
					   { 0 } };

static const struct cli_opt site_opts[] = {
	CLI_OPT_STRING("site", "FILE", FIELD(in.site_path), CLI_REQUIRED,
		       "which prefixes hold which role (see maps/site.example)"),
	{ 0 },
};

static const struct cli_opt input_opts[] = {
	CLI_OPT_STRING("product", "P", FIELD(in.product), CLI_OR_NEXT,
		       "one of " PRODUCTS " (default " DEFAULT_PRODUCT "); several joined by ',' "
		       "combine their matrices (a hybrid site: sfb2015,teams)"),
	CLI_OPT_STRING("matrix", "FILE", FIELD(in.matrix_path), 0,
		       "a matrix file of your own instead of a product"),
	{ 0 },
};

static const struct cli_opt json_opt[] = {
	CLI_OPT_FLAG("json", FIELD(json), 1, 0, "JSON output (see README, \"Commands\")"),
	{ 0 },
};

/* stats and streams print again every --interval; top redraws (at most hourly). */
static const struct cli_opt interval_opt[] = {
	CLI_OPT_PARSE("interval", "SECONDS", FIELD(interval), cli_parse_interval, 86400,
		      "--interval is seconds, 0.1 to %g", "print again every SECONDS"),
	{ 0 },
};

static const struct cli_opt top_interval_opt[] = {
	CLI_OPT_PARSE("interval", "SECONDS", FIELD(interval), cli_parse_interval, 3600,
		      "--interval is seconds, 0.1 to %g", "redraw every SECONDS (default 1)"),
	{ 0 },
};

static const struct cli_opt count_opt[] = {
	CLI_OPT_PARSE("count", "N", FIELD(count), cli_parse_count, 0,
		      "--count is a positive number",
		      "stop after N reports (with --interval; top: when not on a terminal)"),
	{ 0 },
};

/* explain and replay: a private instance of the program, set up as attach would. */
static const struct cli_opt testrun_opts[] = {
	CLI_OPT_CHOICE("policy", "P", FIELD(policy), policies,
		       "monitor (default) or enforce, as attach"),
	CLI_OPT_FLAG("tag", FIELD(tag), 1, 0, "DSCP tagging on, as attach --tag"),
	CLI_OPT_CHOICE("side", "S", FIELD(side), test_sides,
		       "where the frames arrive, as attach --side: protected (default: on the "
		       "side of the protected hosts) or unprotected (the outside leg)"),
	CLI_OPT_FLAG("json", FIELD(json), 1, 0, "JSON output (see README, \"Commands\")"),
	{ 0 },
};

static const struct cli_opt attach_opts[] = {
	CLI_OPT_CHOICE("mode", "M", FIELD(mode), modes,
		       "native (driver) or generic (skb); default: native where supported"),
	CLI_OPT_CHOICE("policy", "P", FIELD(policy), policies,
		       "monitor (default): count what enforce would drop, pass everything; "
		       "enforce: drop what the site's `protect` roles do not allow"),
	CLI_OPT_FLAG("tag", FIELD(tag), 1, 0,
		     "rewrite DSCP of classified packets (matrix defaults, site overrides)"),
	CLI_OPT_CHOICE("side", "S", FIELD(side), sides,
		       "where the protected hosts are, seen from IFACE. A packet from a protected "
		       "address that would open or refresh a flow must come from there, else it "
		       "is dropped as spoofed (counted in monitor). route (default): the kernel's "
		       "route back to the source must leave through IFACE (a routed gateway, IP "
		       "forwarding on); on a bridge declare it: protected (they are behind IFACE) "
		       "or unprotected (none is)"),
	{ 0 },
};

static const struct cli_opt detach_opts[] = {
	CLI_OPT_FLAG("all", FIELD(all), 1, CLI_NO_SYNOPSIS, "every interface (and so every pin)"),
	{ 0 },
};

static const struct cli_opt reload_opts[] = {
	CLI_OPT_STRING("site", "FILE", FIELD(in.site_path), 0,
		       "the site file (default: the attached one, read again)"),
	{ 0 },
};

static const struct cli_opt set_opts[] = {
	CLI_OPT_CHOICE("policy", "P", FIELD(policy), policies,
		       "monitor or enforce, as attach --policy"),
	CLI_OPT_FLAG("tag", FIELD(tag), 1, CLI_OR_NEXT, "DSCP tagging on"),
	CLI_OPT_FLAG("no-tag", FIELD(tag), 0, 0, "DSCP tagging off"),
	CLI_OPT_CHOICE("side", "S", FIELD(side), sides,
		       "route, protected or unprotected, as attach --side"),
	{ 0 },
};

static const struct cli_opt stats_format_opts[] = {
	CLI_OPT_FLAG("json", FIELD(json), 1, CLI_OR_NEXT, "JSON output (see README, \"Commands\")"),
	CLI_OPT_FLAG("prometheus", FIELD(prometheus), 1, 0,
		     "Prometheus text format, every interface (node_exporter textfile)"),
	{ 0 },
};

static const struct cli_opt all_opt[] = {
	CLI_OPT_FLAG("all", FIELD(all), 1, 0,
		     "table: list rules that counted nothing too (JSON always does)"),
	{ 0 },
};

static const struct cli_opt explain_opts[] = {
	CLI_OPT_PARSE("tos", "N", FIELD(tos), cli_parse_byte, 0,
		      "--tos is 0..255, decimal or hex (0xb8)",
		      "the packet's TOS / traffic class byte before the program: 0..255, decimal "
		      "or hex (0xb8 = DSCP 46, ECN 0; default 0)"),
	{ 0 },
};

static const struct cli_opt replay_opts[] = {
	CLI_OPT_FLAG("flows", FIELD(flows), 1, 0,
		     "also list every TCP/UDP flow (5-tuple): packets and bytes in each "
		     "direction, the service and direction each direction was counted under, and "
		     "the verdicts and drop reasons of its packets (JSON: \"flows\")"),
	CLI_OPT_FLAG("streams", FIELD(streams), 1, 0,
		     "print the RTP streams of media services instead, as `lyncxdp streams`, "
		     "with the capture's timestamps as arrival times"),
	{ 0 },
};

static const struct cli_opt drops_opts[] = {
	CLI_OPT_FLAG("json", FIELD(json), 1, 0,
		     "one JSON object per line (per record, and per suppressed count)"),
	CLI_OPT_PARSE("seconds", "S", FIELD(seconds), cli_parse_positive, 0,
		      "--seconds is a positive number", "stop after S seconds"),
	CLI_OPT_PARSE("count", "N", FIELD(count), cli_parse_count, 0,
		      "--count is a positive number", "stop after N records"),
	{ 0 },
};

static const struct cli_opt exporter_opts[] = {
	CLI_OPT_STRING("listen", "ADDR:PORT", FIELD(listen), CLI_REQUIRED,
		       "where to serve /metrics; IPv6 as [ADDR]:PORT"),
	{ 0 },
};

static int fail(struct text_error *err)
{
	fprintf(stderr, "lyncxdp: %s\n", err->msg);
	return 1;
}

static int kernel_ready(void)
{
	struct text_error err;
	if (attach_check_privileges(&err) < 0 || attach_check_bpffs(&err) < 0)
		return fail(&err);
	return 0;
}

/* Privileges and bpffs, then the pinned state: 0 with *attached as pins_state_read says, or the
 * exit code after saying why not. */
static int read_state(struct lx_state *st, int *attached)
{
	struct text_error err;
	int rc = kernel_ready();
	if (rc)
		return rc;
	*attached = pins_state_read(st, &err);
	return *attached < 0 ? fail(&err) : 0;
}

/* ---- attach / detach ---- */

static int cmd_attach(void *v)
{
	struct args *a = v;
	struct attach_opts ao = {
		.mode = (enum attach_mode)a->mode,
		.policy = a->policy < 0 ? LX_POLICY_MONITOR : (uint32_t)a->policy,
		.tag = a->tag > 0,
		.side = a->side < 0 ? LX_SIDE_ROUTE : (uint32_t)a->side,
	};
	const char *ifname = a->args[0];
	if (load_inputs(&a->in) < 0)
		return 1;
	int rc = kernel_ready();
	struct text_error err;
	const struct inputs *in = &a->in;
	if (rc == 0 && attach_iface(ifname, &ao, &in->m, &in->s, &a->in.c, &err) < 0)
		rc = fail(&err);
	if (rc == 0)
		printf("lyncxdp: attached to %s: %s, %d of %d rules active, %u IPv4 and %u IPv6 "
		       "prefixes, policy %s%s, side %s\n",
		       ifname, in->m.product, in->c.nactive, in->m.nrules,
		       in->c.hosts4 + in->c.nets4, in->c.hosts6 + in->c.nets6,
		       pins_policy_name(ao.policy), ao.tag ? ", DSCP tagging" : "",
		       pins_side_name(ao.side));
	free_inputs(&a->in);
	return rc;
}

static int cmd_detach(void *v)
{
	struct args *a = v;
	if (a->all ? a->args[0] != NULL : a->args[0] == NULL)
		return cli_usage_error("detach", "expected one interface, or --all");
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct text_error err;
	if ((a->all ? detach_all(&err) : detach_iface(a->args[0], &err)) < 0)
		return fail(&err);
	printf("lyncxdp: detached from %s\n", a->all ? "every interface" : a->args[0]);
	return 0;
}

/* ---- reload ---- */

static int cmd_reload(void *v)
{
	struct args *a = v;
	struct inputs *in = &a->in;
	struct lx_state st;
	struct text_error err;
	int attached, rc = read_state(&st, &attached);
	if (rc)
		return rc;
	if (!attached) {
		fprintf(stderr, "lyncxdp: not attached: nothing to reload (use attach)\n");
		return 1;
	}
	if (!in->product && !in->matrix_path)
		in->matrix_path = st.matrix;
	if (!in->site_path)
		in->site_path = st.site;
	if (load_inputs(in) < 0)
		return 1;
	if (attach_reload(&in->m, &in->s, &in->c, &err) < 0)
		rc = fail(&err);
	else
		printf("lyncxdp: reloaded %s and %s: %d of %d rules active\n", in->m.path,
		       in->s.path, in->c.nactive, in->m.nrules);
	free_inputs(in);
	return rc;
}

/* ---- set ---- */

static int cmd_set(void *v)
{
	struct args *a = v;
	const char *ifname = a->args[0];
	if (a->policy < 0 && a->tag < 0 && a->side < 0)
		return cli_usage_error("set",
				       "nothing to set: give --policy, --tag, --no-tag or --side");
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct text_error err;
	if (attach_set(ifname, a->policy, a->tag, a->side, &err) < 0)
		return fail(&err);
	printf("lyncxdp: %s:%s%s%s%s%s\n", ifname, a->policy >= 0 ? " policy " : "",
	       a->policy >= 0 ? pins_policy_name((uint32_t)a->policy) : "",
	       a->tag < 0 ? ""
	       : a->tag	  ? " tagging on"
			  : " tagging off",
	       a->side >= 0 ? " side " : "", a->side >= 0 ? pins_side_name((uint32_t)a->side) : "");
	return 0;
}

/* ---- status ---- */

static int cmd_status(void *v)
{
	struct args *a = v;
	struct pins_flow_usage fu = { 0 };
	struct lx_state st;
	struct text_error err;
	int attached, rc = read_state(&st, &attached);
	if (rc)
		return rc;
	if (attached > 0 && pins_flow_usage(&fu, &err) < 0)
		return fail(&err);
	status_print(stdout, &st, attached, &fu, a->json);
	return 0;
}

/* ---- stats ---- */

static uint32_t slot_mask_for(const struct lx_state *st, const char *ifname)
{
	uint32_t mask = 0;
	uint64_t netns = pins_current_netns();
	for (int i = 0; i < LX_MAX_IFACES; i++)
		if (st->ifaces[i].ifindex && (!ifname || (!strcmp(st->ifaces[i].name, ifname) &&
							  st->ifaces[i].netns == netns)))
			mask |= 1u << i;
	return mask;
}

/* Privileges, the attached state and the slots of IFACE (every interface when NULL): 0, or the exit
 * code after saying why not. */
static int read_attached(const char *ifname, struct lx_state *st, uint32_t *mask)
{
	int attached, rc = read_state(st, &attached);
	if (rc)
		return rc;
	if (!attached) {
		fprintf(stderr, "lyncxdp: not attached to any interface\n");
		return 1;
	}
	*mask = slot_mask_for(st, ifname);
	if (!*mask) {
		fprintf(stderr, "lyncxdp: %s: lyncxdp is not attached there\n", ifname);
		return 1;
	}
	return 0;
}

static void sleep_seconds(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

static int cmd_stats(void *v)
{
	struct args *a = v;
	struct stats_print_opts po = { .json = a->json, .all = a->all, .interval = a->interval };
	const char *ifname = a->args[0];
	if (a->prometheus && (po.json || po.interval || ifname))
		return cli_usage_error("stats",
				       "--prometheus takes no IFACE, --json or --interval");
	struct lx_state st;
	struct text_error err;
	uint32_t mask;
	int rc = a->prometheus ? kernel_ready() : read_attached(ifname, &st, &mask);
	if (rc)
		return rc;
	if (a->prometheus)
		return metrics_write(stdout, &err) < 0 ? fail(&err) : 0;
	struct lx_map_fds fds;
	if (pins_open(&fds, &err) < 0)
		return fail(&err);
	stop_on_signals();
	struct stats_report now = { 0 }, prev = { 0 };
	for (unsigned long n = 0; !stop_requested; n++) {
		if (stats_collect(&fds, st.rule_cap, st.max_rule_id, mask, &now, &err) < 0) {
			rc = fail(&err);
			break;
		}
		po.prev = n ? &prev : NULL;
		if (!po.interval || n) /* with --interval, the first print has rates */
			stats_print(stdout, &now, &po);
		stats_free(&prev);
		prev = now;
		memset(&now, 0, sizeof(now));
		if (!po.interval || (a->count && n >= a->count))
			break;
		sleep_seconds(po.interval);
	}
	stats_free(&prev);
	stats_free(&now);
	pins_close(&fds);
	return rc;
}

/* ---- streams ---- */

/* The program's clock is CLOCK_MONOTONIC: this makes its times wall-clock times. */
static int64_t monotonic_to_epoch(uint64_t *now_mono)
{
	struct timespec rt, mono;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	*now_mono = (uint64_t)mono.tv_sec * 1000000000ULL + (uint64_t)mono.tv_nsec;
	return ((int64_t)rt.tv_sec - (int64_t)mono.tv_sec) * 1000000000LL +
	       ((int64_t)rt.tv_nsec - (int64_t)mono.tv_nsec);
}

/* ---- conntrack ---- */

static int cmd_conntrack(void *v)
{
	struct args *a = v;
	struct lx_state st;
	uint32_t mask;
	int rc = read_attached(NULL, &st, &mask);
	if (rc)
		return rc;
	struct text_error err;
	int fd = pins_map_fd(LX_PIN_FLOWS, &err);
	if (fd < 0)
		return fail(&err);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* the program's clock */
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	rc = conntrack_print(stdout, fd, now, a->json, &err) < 0 ? fail(&err) : 0;
	close(fd);
	return rc;
}

static int cmd_streams(void *v)
{
	struct args *a = v;
	struct streams_print_opts so = { .json = a->json };
	const char *ifname = a->args[0];
	struct lx_state st;
	uint32_t mask;
	int rc = read_attached(ifname, &st, &mask);
	if (rc)
		return rc;
	struct text_error err;
	/* Codec names and thresholds: the media data beside the attached matrix. */
	static struct media_table media;
	char media_path[PATH_MAX];
	if (media_find(st.matrix, media_path, sizeof(media_path)) == 0 &&
	    media_load(media_path, &media, &err) == 0)
		so.t = &media;
	struct lx_map_fds fds;
	if (pins_open(&fds, &err) < 0)
		return fail(&err);
	stop_on_signals();
	for (unsigned long n = 0; !stop_requested; n++) {
		struct streams_report r;
		if (streams_collect(fds.streams, fds.rule_info, so.t, mask, &r, &err) < 0) {
			rc = fail(&err);
			break;
		}
		so.epoch_offset_ns = monotonic_to_epoch(&so.now_ns);
		if (n && !so.json)
			fputc('\n', stdout);
		streams_print(stdout, &r, &so);
		streams_free(&r);
		if (!a->interval || (a->count && n + 1 >= a->count))
			break;
		sleep_seconds(a->interval);
	}
	pins_close(&fds);
	return rc;
}

/* ---- top ---- */

struct top_source {
	struct lx_map_fds fds;
	const char *ifname;
};

/* Reads the state each time: a reload may have added rule ids. */
static int top_collect(void *ctx, struct stats_report *r, struct text_error *err)
{
	struct top_source *src = ctx;
	struct lx_state st;
	int attached = pins_state_read(&st, err);
	if (attached < 0)
		return -1;
	uint32_t mask = attached ? slot_mask_for(&st, src->ifname) : 0;
	if (!mask) {
		snprintf(err->msg, sizeof(err->msg), "%s%s", src->ifname ? src->ifname : "",
			 src->ifname ? ": lyncxdp is no longer attached there"
				     : "not attached to any interface any more");
		return -1;
	}
	return stats_collect(&src->fds, st.rule_cap, st.max_rule_id, mask, r, err);
}

static int cmd_top(void *v)
{
	struct args *a = v;
	const char *ifname = a->args[0];
	struct text_error err;
	if (!a->interval)
		a->interval = 1;
	/* Not a terminal (a pipe, a log, cron): the same numbers as stats --interval. */
	if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))
		return cmd_stats(a);

	struct lx_state st;
	uint32_t mask;
	int rc = read_attached(ifname, &st, &mask);
	if (rc)
		return rc;
	struct top_source src = { .ifname = ifname };
	if (pins_open(&src.fds, &err) < 0)
		return fail(&err);
	char title[160];
	size_t used = (size_t)snprintf(title, sizeof(title), "%s on", st.product);
	for (int i = 0; i < LX_MAX_IFACES && used < sizeof(title); i++)
		if (mask & (1u << i))
			used += (size_t)snprintf(title + used, sizeof(title) - used, " %s",
						 st.ifaces[i].name);
	struct top_opts o = { .interval = a->interval,
			      .title = title,
			      .in_fd = STDIN_FILENO,
			      .out_fd = STDOUT_FILENO };
	rc = top_run(&o, top_collect, &src, &err) < 0 ? fail(&err) : 0;
	pins_close(&src.fds);
	return rc;
}

/* ---- explain ---- */

/* The matrix and site loaded, privileges checked and a private instance of the program set up
 * with the options' policy, tagging and side: 0, or the exit code after saying why not (and
 * then nothing is left open). */
static int start_testrun(struct args *a, struct testrun *t)
{
	uint32_t policy = a->policy < 0 ? LX_POLICY_MONITOR : (uint32_t)a->policy;
	uint32_t side = a->side < 0 ? LX_SIDE_PROTECTED : (uint32_t)a->side;
	struct inputs *in = &a->in;
	struct text_error err;
	if (load_inputs(in) < 0)
		return 1;
	int rc = kernel_ready();
	if (rc == 0 && (testrun_open(t, &in->m, &in->s, &in->c, policy, a->tag > 0, &err) < 0 ||
			testrun_set_side(t, side, &err) < 0))
		rc = fail(&err);
	if (rc) {
		testrun_close(t);
		free_inputs(in);
	}
	return rc;
}

static int cmd_explain(void *v)
{
	struct args *a = v;
	const char *proto = a->args[0], *src = a->args[1], *dst = a->args[2];
	struct packet_spec spec = { .tos = (uint8_t)a->tos };
	char why[256];
	if (!strcmp(proto, "tcp"))
		spec.ipproto = IPPROTO_TCP;
	else if (!strcmp(proto, "udp"))
		spec.ipproto = IPPROTO_UDP;
	else
		return cli_usage_error("explain", "PROTO is tcp or udp");
	if (endpoint_parse(src, &spec.src, why, sizeof(why)) < 0 ||
	    endpoint_parse(dst, &spec.dst, why, sizeof(why)) < 0)
		return cli_usage_error("explain", why);
	if (spec.src.family != spec.dst.family)
		return cli_usage_error("explain",
				       "source and destination are of different families");

	struct testrun t = { 0 };
	int rc = start_testrun(a, &t);
	if (rc)
		return rc;
	struct testrun_result res;
	struct text_error err;
	uint8_t frame[256];
	size_t len = packet_build(&spec, frame, sizeof(frame));
	if (testrun_frame(&t, frame, len, &res, &err) != 0)
		rc = fail(&err);
	if (rc == 0)
		explain_print(stdout, &a->in.m, &a->in.s, &res, proto, src, dst, a->json);
	testrun_close(&t);
	free_inputs(&a->in);
	return rc;
}

/* ---- replay ---- */

struct replay_ctx {
	struct testrun *t;
	struct text_error *err;
	struct flows_table *flows; /* NULL unless --flows */
	int failed;
};

static int replay_frame(const uint8_t *frame, size_t len, uint64_t ts_ns, void *arg)
{
	struct replay_ctx *ctx = arg;
	static struct testrun_result res;
	testrun_set_time(ctx->t, ts_ns); /* media streams: the capture's arrival times */
	int r = testrun_frame(ctx->t, frame, len, &res, ctx->err);
	if (r < 0) {
		ctx->failed = 1;
		return 1;
	}
	if (r == 0 && ctx->flows &&
	    flows_add(ctx->flows, frame, len, res.last.rule, res.last.dir, res.last.counter,
		      res.retval, res.last.reason) < 0) {
		snprintf(ctx->err->msg, sizeof(ctx->err->msg), "out of memory listing flows");
		ctx->failed = 1;
		return 1;
	}
	return 0;
}

/* The report of a replay: what the capture held, then the counters as stats prints them. */
static void print_replay(const char *path, const struct capture_counts *counts, uint64_t not_run,
			 const struct stats_report *report, const struct stats_print_opts *po,
			 const struct flows_table *flows, const struct matrix *m)
{
	if (!po->json) {
		printf("%s: %llu frames (%llu captured short of their length, of them %llu "
		       "padded to it; %llu not run)\n\n",
		       path, (unsigned long long)counts->frames,
		       (unsigned long long)counts->truncated, (unsigned long long)counts->padded,
		       (unsigned long long)not_run);
		stats_print(stdout, report, po);
		if (flows)
			flows_print(stdout, flows, m);
		return;
	}
	struct json_writer w;
	json_begin(&w, stdout);
	json_key(&w, "capture");
	json_object_begin(&w);
	json_kv_uint(&w, "frames", counts->frames);
	json_kv_uint(&w, "truncated", counts->truncated);
	json_kv_uint(&w, "padded", counts->padded);
	json_kv_uint(&w, "not_run", not_run);
	json_object_end(&w);
	if (flows) {
		json_break(&w, "\n");
		flows_print_json(&w, flows, m);
	}
	json_break(&w, "\n");
	stats_print_json_members(&w, report, po);
	json_end(&w);
	fflush(stdout);
}

static int cmd_replay(void *v)
{
	struct args *a = v;
	struct stats_print_opts po = { .json = a->json, .all = a->all };
	struct flows_table flows = { 0 };
	struct testrun t = { 0 };
	struct text_error err;
	struct replay_ctx ctx = { .t = &t, .err = &err, .flows = a->flows ? &flows : NULL };
	struct capture_counts counts;
	struct stats_report report = { 0 };
	const char *path = a->args[0];
	int rc = start_testrun(a, &t);
	if (rc)
		return rc;
	if (capture_foreach_timed(path, replay_frame, &ctx, &counts, &err) < 0 || ctx.failed)
		rc = fail(&err);
	if (rc == 0 && a->streams) {
		struct streams_report sr;
		struct streams_print_opts so = { .json = a->json, .t = &a->in.media };
		if (streams_collect(t.fds.streams, t.fds.rule_info, &a->in.media, 1u, &sr, &err) <
		    0)
			rc = fail(&err);
		else {
			streams_print(stdout, &sr, &so);
			streams_free(&sr);
		}
	} else if (rc == 0 && testrun_report(&t, &report, &err) < 0) {
		rc = fail(&err);
	} else if (rc == 0) {
		print_replay(path, &counts, counts.skipped + t.too_short + t.too_long, &report, &po,
			     ctx.flows, &a->in.m);
	}
	flows_free(&flows);
	stats_free(&report);
	testrun_close(&t);
	free_inputs(&a->in);
	return rc;
}

/* ---- drops ---- */

static int cmd_drops(void *v)
{
	struct args *a = v;
	struct droplog_opts o = { .json = a->json, .seconds = a->seconds, .count = a->count };
	int rc = kernel_ready();
	if (rc)
		return rc;
	stop_on_signals();
	struct text_error err;
	if (droplog_stream(&o, &err) < 0)
		return fail(&err);
	return 0;
}

/* ---- exporter ---- */

static int cmd_exporter(void *v)
{
	struct args *a = v;
	if (!a->listen)
		return cli_usage_error("exporter", "expected --listen ADDR:PORT");
	int rc = kernel_ready();
	if (rc)
		return rc;
	stop_on_signals();
	struct text_error err;
	return exporter_run(a->listen, &err) < 0 ? fail(&err) : 0;
}

/* ---- check ---- */

static int cmd_check(void *v)
{
	struct inputs *in = &((struct args *)v)->in;
	if (load_inputs(in) < 0)
		return 1;
	printf("%s: %s, %d roles, %d services, %d rules (%d active with this site)\n", in->m.path,
	       in->m.product, in->m.nroles, in->m.nservices, in->m.nrules, in->c.nactive);
	printf("%s: %u IPv4 and %u IPv6 prefixes in %d role groups%s\n", in->s.path,
	       in->c.hosts4 + in->c.nets4, in->c.hosts6 + in->c.nets6, in->c.role_groups,
	       in->s.nwarnings ? " (see warnings above)" : "");
	free_inputs(in);
	return 0;
}

/* ---- the commands, in the order the main usage lists them ---- */

static const struct cli_cmd commands[] = {
	{ "attach",
	  cmd_attach,
	  "IFACE",
	  1,
	  1,
	  1,
	  "expected one interface",
	  "load the classifier on IFACE (state pinned in /sys/fs/bpf/lyncxdp)",
	  "Loads the classifier on IFACE, pins its link and maps under /sys/fs/bpf/lyncxdp so it\n"
	  "keeps running after this command exits. Further interfaces share the same tables and\n"
	  "must name the same files. The matrix and site are fully checked first: on any error\n"
	  "nothing is attached.\n",
	  { site_opts, input_opts, attach_opts } },
	{ "reload",
	  cmd_reload,
	  NULL,
	  0,
	  0,
	  0,
	  "takes no arguments",
	  "apply a changed matrix or site to every attached interface at once",
	  "Applies a changed matrix or site while attached, without detaching. The new files are\n"
	  "checked and compiled first (an error changes nothing); then each interface's program\n"
	  "is swapped atomically for one reading the new tables, so every packet sees either the\n"
	  "old tables or the new ones, never a mix. Counters of rules present in both keep their\n"
	  "values; flows and drop counters are kept. Without options, the attached files are read\n"
	  "again.\n",
	  { input_opts, reload_opts } },
	{ "set",
	  cmd_set,
	  "IFACE",
	  1,
	  1,
	  1,
	  "expected one interface",
	  "change policy, tagging or side live, without detaching",
	  "Changes an attached interface's policy or DSCP tagging at once, without detaching:\n"
	  "counters and tracked flows are kept, so established flows of protected hosts go on.\n",
	  { set_opts } },
	{ "detach",
	  cmd_detach,
	  "IFACE | --all",
	  1,
	  0,
	  1,
	  "expected one interface, or --all",
	  "remove it from IFACE (the last one removes every pin)",
	  "Removes the classifier from IFACE. With the last interface (or --all) every pin\n"
	  "under /sys/fs/bpf/lyncxdp goes too, counters included.\n",
	  { detach_opts } },
	{ "status",
	  cmd_status,
	  NULL,
	  0,
	  0,
	  0,
	  "takes no arguments",
	  "attached interfaces, product, site, rule and prefix counts",
	  "Attached interfaces (mode, program and link ids), the product, matrix and site\n"
	  "they run, rule and prefix counts.\n",
	  { json_opt } },
	{ "conntrack",
	  cmd_conntrack,
	  NULL,
	  0,
	  0,
	  0,
	  "takes no arguments",
	  "connections protected hosts opened, as the flow table holds them",
	  "The flow table of protected hosts (what enforce admits replies on), like `conntrack\n"
	  "-L`: per flow the transport, the protected host's address and port, the remote's,\n"
	  "the state the host's own packets show (syn-sent, established, closing, open; expired\n"
	  "until a new flow takes its slot) and how long ago the host last sent. Most recent\n"
	  "first.\n",
	  { json_opt } },
	{ "stats",
	  cmd_stats,
	  "[IFACE]",
	  1,
	  0,
	  1,
	  "at most one interface",
	  "per-service packet and byte counters, drops by reason",
	  "Packets and bytes per rule (role, service, transport, ports) and direction, summed\n"
	  "over every attached interface or only IFACE; then unclassified, non-IP, fragment,\n"
	  "ICMP, other-L4 and malformed counters. With --interval, rates too.\n",
	  { stats_format_opts, interval_opt, count_opt, all_opt } },
	{ "top",
	  cmd_top,
	  "[IFACE]",
	  1,
	  0,
	  1,
	  "at most one interface",
	  "live view: rates per role and service, sparklines, drops",
	  "A live view of the counters, redrawn every interval (default 1 s): per role and\n"
	  "service, packets/s and bits/s in and out with a sparkline of the last minute, then\n"
	  "drops and would-drops per reason; sorted by rate. Keys: s / S next / previous sort\n"
	  "(bit/s, in, out, pkt/s, name), / filter by role or service (Enter applies, Esc\n"
	  "clears), a rows without traffic too, q quit. Needs 80x24 or more.\n"
	  "When stdin or stdout is not a terminal, prints `stats --interval` reports instead.\n",
	  { top_interval_opt, count_opt } },
	{ "exporter",
	  cmd_exporter,
	  NULL,
	  0,
	  0,
	  0,
	  "expected --listen ADDR:PORT",
	  "serve the counters to Prometheus at http://ADDR:PORT/metrics",
	  "Serves the counters of every attached interface at http://ADDR:PORT/metrics in the\n"
	  "Prometheus text format (as `stats --prometheus`), read fresh at every scrape. Runs in\n"
	  "the foreground until interrupted.\n",
	  { exporter_opts } },
	{ "streams",
	  cmd_streams,
	  "[IFACE]",
	  1,
	  0,
	  1,
	  "at most one interface",
	  "RTP streams of media services: loss, jitter, poor-stream verdict",
	  "RTP streams the attached program tracks in media services (maps/media): per stream\n"
	  "(5-tuple and SSRC) the role, service, direction, media type, codec, packets, loss,\n"
	  "interarrival jitter (RFC 3550) and a verdict against Microsoft's Call Quality\n"
	  "Dashboard thresholds for a poor stream (see README, \"Media and call quality\").\n",
	  { json_opt, interval_opt, count_opt } },
	{ "drops",
	  cmd_drops,
	  NULL,
	  0,
	  0,
	  0,
	  "takes no arguments",
	  "stream the log of dropped (or would-drop) packets",
	  "Streams the drop log: each packet the policy dropped (enforce) or would drop "
	  "(monitor),\n"
	  "with time, interface, 5-tuple, reason and the destination's roles. The program sends\n"
	  "at most " STR(LX_DROPLOG_PER_SEC) " records per CPU per second; the rest are "
					     "counted and reported here as\nsuppressed. Runs "
					     "until interrupted, S seconds, or N "
					     "records.\n",
	  { drops_opts } },
	{ "explain",
	  cmd_explain,
	  "PROTO SRC:PORT DST:PORT",
	  0,
	  3,
	  3,
	  "expected PROTO SRC:PORT DST:PORT",
	  "run one packet through the real program and say what it decides",
	  "Builds that packet (PROTO tcp or udp; IPv6 as [ADDR]:PORT) and runs it through the\n"
	  "real XDP program with BPF_PROG_TEST_RUN (nothing is attached): prints the role,\n"
	  "service, rule, direction, verdict, the policy's reason and the DSCP it leaves with.\n",
	  { site_opts, input_opts, testrun_opts, explain_opts } },
	{ "replay",
	  cmd_replay,
	  "FILE",
	  0,
	  1,
	  1,
	  "expected one capture file",
	  "run every frame of a capture through the real program",
	  "Runs every frame of a pcap or pcapng capture FILE through the real XDP program with\n"
	  "BPF_PROG_TEST_RUN (nothing is attached) and prints the same report as `stats`,\n"
	  "including what the policy dropped (enforce) or would drop (monitor). A frame the\n"
	  "capture cut short (snap length) runs padded with zeros to its wire length, and its\n"
	  "bytes count at wire length; the report says how many were padded.\n",
	  { site_opts, input_opts, testrun_opts, all_opt, replay_opts } },
	{ "check",
	  cmd_check,
	  NULL,
	  0,
	  0,
	  0,
	  "takes no arguments",
	  "validate a matrix and site without loading anything",
	  "Reads and compiles the matrix and site exactly as attach would, without root and\n"
	  "without touching the kernel. Exits non-zero with file:line on the first error.\n",
	  { site_opts, input_opts } },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *out)
{
	cli_print_usage(out,
			"Usage: lyncxdp COMMAND [OPTIONS]\n"
			"\n"
			"Classify Lync / Skype for Business traffic by service and direction with "
			"XDP.\n"
			"\n"
			"Commands:\n",
			commands, NCOMMANDS,
			"\n"
			"Products: " PRODUCTS " (default " DEFAULT_PRODUCT ", also SfB 2019;\n"
			"a hybrid site combines several: --product sfb2015,teams).\n"
			"`lyncxdp COMMAND --help` describes one command.\n");
}

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's own warnings are noise for users; LYNCXDP_DEBUG=1 shows them. */
	if (level == LIBBPF_DEBUG || !getenv("LYNCXDP_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
	libbpf_set_print(quiet_libbpf);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		print_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lyncxdp %s\n", LYNCXDP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		struct args a = { .policy = -1, .tag = -1, .side = -1, .mode = ATTACH_MODE_AUTO };
		int first, rc = cli_parse(&commands[i], &a, argc - 1, argv + 1, &first);
		if (rc >= 0)
			return rc;
		a.args = argv + 1 + first;
		return commands[i].run(&a);
	}
	fprintf(stderr, "lyncxdp: unknown command '%s' (see `lyncxdp --help`)\n", argv[1]);
	return 2;
}

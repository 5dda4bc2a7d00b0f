// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* lyncxdp: the command line. Each command parses its options and calls the modules. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include "attach.h"
#include "capture.h"
#include "flows.h"
#include "compile.h"
#include "droplog.h"
#include "exporter.h"
#include "metrics.h"
#include "json.h"
#include "matrix.h"
#include "media.h"
#include "packet.h"
#include "site.h"
#include "stats.h"
#include "streams.h"
#include "testrun.h"
#include "top.h"

#ifndef LYNCXDP_VERSION
#define LYNCXDP_VERSION "0.1.0"
#endif
#define DEFAULT_PRODUCT "sfb2015"

static const char usage_main[] =
    "Usage: lyncxdp COMMAND [OPTIONS]\n"
    "\n"
    "Classify Lync / Skype for Business traffic by service and direction with XDP.\n"
    "\n"
    "Commands:\n"
    "  attach IFACE --site FILE [--product P | --matrix FILE] [--mode native|generic]\n"
    "               [--policy monitor|enforce] [--tag] [--side route|protected|unprotected]\n"
    "                     load the classifier on IFACE (state pinned in /sys/fs/bpf/lyncxdp)\n"
    "  reload [--product P | --matrix FILE] [--site FILE]\n"
    "                     apply a changed matrix or site to every attached interface at once\n"
    "  set IFACE [--policy monitor|enforce] [--tag | --no-tag] [--side S]\n"
    "                     change policy, tagging or side live, without detaching\n"
    "  detach IFACE | --all   remove it from IFACE (the last one removes every pin)\n"
    "  status [--json]    attached interfaces, product, site, rule and prefix counts\n"
    "  stats [IFACE] [--json | --prometheus] [--interval SECONDS [--count N]] [--all]\n"
    "                     per-service packet and byte counters, drops by reason\n"
    "  top [IFACE] [--interval SECONDS]\n"
    "                     live view: rates per role and service, sparklines, drops\n"
    "  exporter --listen ADDR:PORT\n"
    "                     serve the counters to Prometheus at http://ADDR:PORT/metrics\n"
    "  streams [IFACE] [--json] [--interval S [--count N]]\n"
    "                     RTP streams of media services: loss, jitter, poor-stream verdict\n"
    "  drops [--json] [--seconds S] [--count N]\n"
    "                     stream the log of dropped (or would-drop) packets\n"
    "  explain --site FILE [--product P | --matrix FILE] [--policy P] [--tag] [--json]\n"
    "          [--side protected|unprotected] PROTO SRC:PORT DST:PORT\n"
    "                     run one packet through the real program and say what it decides\n"
    "  replay --site FILE [--product P | --matrix FILE] [--policy P] [--tag] FILE.pcap\n"
    "         [--json] [--all] [--side protected|unprotected] [--streams]\n"
    "                     run every frame of a capture through the real program\n"
    "  check --site FILE [--product P | --matrix FILE]\n"
    "                     validate a matrix and site without loading anything\n"
    "\n"
    "Products: ocs2007r2, lync2010, lync2013, sfb2015, teams (default sfb2015, also SfB 2019;\n"
    "a hybrid site combines several: --product sfb2015,teams).\n"
    "`lyncxdp COMMAND --help` describes one command.\n";

struct cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

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
		"lyncxdp: unknown product '%s' (ocs2007r2, lync2010, lync2013, sfb2015, teams), "
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

enum { OPT_PRODUCT = 'p', OPT_MATRIX = 'm', OPT_SITE = 's', OPT_JSON = 'j', OPT_HELP = 'h' };

#define INPUT_OPTIONS                                                                              \
	{ "product", required_argument, NULL, OPT_PRODUCT },                                       \
	    { "matrix", required_argument, NULL, OPT_MATRIX },                                     \
	{                                                                                          \
		"site", required_argument, NULL, OPT_SITE                                          \
	}

static int take_input_option(struct inputs *in, int opt)
{
	switch (opt) {
	case OPT_PRODUCT:
		in->product = optarg;
		return 1;
	case OPT_MATRIX:
		in->matrix_path = optarg;
		return 1;
	case OPT_SITE:
		in->site_path = optarg;
		return 1;
	}
	return 0;
}

/* getopt's '?' (unknown option) and ':' (missing value), said once and precisely. */
static int option_error(const char *cmd, int opt, char **argv)
{
	char what[160];
	const char *arg = argv[optind - 1];
	if (opt == ':')
		snprintf(what, sizeof(what), "option '%s' needs a value", arg);
	else
		snprintf(what, sizeof(what), "unknown option '%s'", arg);
	fprintf(stderr, "lyncxdp %s: %s (see `lyncxdp %s --help`)\n", cmd, what, cmd);
	return 2;
}

static int usage_error(const char *cmd, const char *what)
{
	fprintf(stderr, "lyncxdp %s: %s (see `lyncxdp %s --help`)\n", cmd, what, cmd);
	return 2;
}

/* --interval SECONDS (0.1 to MAX) and --count N of the commands that repeat. */
static int interval_opt(const char *cmd, const char *arg, double max, double *out)
{
	char *end, what[64];
	double v = strtod(arg, &end);
	if (*end || !(v >= 0.1 && v <= max)) {
		snprintf(what, sizeof(what), "--interval is seconds, 0.1 to %g", max);
		return usage_error(cmd, what);
	}
	*out = v;
	return 0;
}

static int count_opt(const char *cmd, const char *arg, unsigned long *out)
{
	if (text_parse_uint(arg, 1, 1000000000UL, out) < 0)
		return usage_error(cmd, "--count is a positive number");
	return 0;
}

static int parse_policy(const char *s)
{
	if (!strcmp(s, "monitor"))
		return LX_POLICY_MONITOR;
	if (!strcmp(s, "enforce"))
		return LX_POLICY_ENFORCE;
	return -1;
}

/*
 * Options of the commands that take only --product, --matrix and --site. Returns -1 to go on,
 * or the exit code (help printed, or a usage error).
 */
static int parse_input_options(const char *cmd, const char *help, int argc, char **argv,
			       struct inputs *in)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(in, opt))
			continue;
		if (opt == OPT_HELP)
			return fputs(help, stdout), 0;
		return option_error(cmd, opt, argv);
	}
	if (argc != optind)
		return usage_error(cmd, "takes no arguments");
	return -1;
}

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

/* ---- attach / detach ---- */

static const char help_attach[] =
    "Usage: lyncxdp attach IFACE --site FILE [--product P | --matrix FILE]\n"
    "                      [--mode native|generic] [--policy monitor|enforce] [--tag]\n"
    "                      [--side route|protected|unprotected]\n"
    "\n"
    "Loads the classifier on IFACE, pins its link and maps under /sys/fs/bpf/lyncxdp so it\n"
    "keeps running after this command exits. Further interfaces share the same tables and\n"
    "must name the same files. The matrix and site are fully checked first: on any error\n"
    "nothing is attached.\n"
    "  --product P   ocs2007r2, lync2010, lync2013, sfb2015 (default) or teams; several\n"
    "                joined by ',' combine their matrices (sfb2015,teams)\n"
    "  --matrix F    a matrix file of your own instead of a product\n"
    "  --site F      which prefixes hold which role (see maps/site.example)\n"
    "  --mode M      native (driver) or generic (skb); default: native where supported\n"
    "  --policy P    monitor (default): count what enforce would drop, pass everything;\n"
    "                enforce: drop what the site's `protect` roles do not allow\n"
    "  --tag         rewrite DSCP of classified packets (matrix defaults, site overrides)\n"
    "  --side S      where the protected hosts are, seen from IFACE. A packet from a\n"
    "                protected address that would open or refresh a flow must come from\n"
    "                there, else it is dropped as spoofed (counted in monitor).\n"
    "                route (default): the kernel's route back to the source must leave\n"
    "                through IFACE (a routed gateway, IP forwarding on); on a bridge declare\n"
    "                it: protected (they are behind IFACE) or unprotected (none is)\n";

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "mode", required_argument, NULL, 'M' },
					      { "policy", required_argument, NULL, 'P' },
					      { "tag", no_argument, NULL, 'T' },
					      { "side", required_argument, NULL, 'D' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	struct attach_opts ao = { .mode = ATTACH_MODE_AUTO,
				  .policy = LX_POLICY_MONITOR,
				  .side = LX_SIDE_ROUTE };
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == 'M' && !strcmp(optarg, "native"))
			ao.mode = ATTACH_MODE_NATIVE;
		else if (opt == 'M' && !strcmp(optarg, "generic"))
			ao.mode = ATTACH_MODE_GENERIC;
		else if (opt == 'P' && parse_policy(optarg) >= 0)
			ao.policy = (uint32_t)parse_policy(optarg);
		else if (opt == 'P')
			return usage_error("attach", "--policy is monitor or enforce");
		else if (opt == 'T')
			ao.tag = 1;
		else if (opt == 'D' && pins_parse_side(optarg) >= 0)
			ao.side = (uint32_t)pins_parse_side(optarg);
		else if (opt == 'D')
			return usage_error("attach", "--side is route, protected or unprotected");
		else if (opt == 'M')
			return usage_error("attach", "--mode is native or generic");
		else if (opt == OPT_HELP)
			return fputs(help_attach, stdout), 0;
		else
			return option_error("attach", opt, argv);
	}
	if (argc - optind != 1)
		return usage_error("attach", "expected one interface");
	const char *ifname = argv[optind];
	if (load_inputs(&in) < 0)
		return 1;
	int rc = kernel_ready();
	struct text_error err;
	if (rc == 0 && attach_iface(ifname, &ao, &in.m, &in.s, &in.c, &err) < 0)
		rc = fail(&err);
	if (rc == 0)
		printf("lyncxdp: attached to %s: %s, %d of %d rules active, %u IPv4 and %u IPv6 "
		       "prefixes, policy %s%s, side %s\n",
		       ifname, in.m.product, in.c.nactive, in.m.nrules, in.c.hosts4 + in.c.nets4,
		       in.c.hosts6 + in.c.nets6, pins_policy_name(ao.policy),
		       ao.tag ? ", DSCP tagging" : "", pins_side_name(ao.side));
	free_inputs(&in);
	return rc;
}

static const char help_detach[] = "Usage: lyncxdp detach IFACE | --all\n"
				  "\n"
				  "Removes the classifier from IFACE. With the last interface (or "
				  "--all) every pin\nunder /sys/fs/bpf/lyncxdp goes too, counters "
				  "included.\n";

static int cmd_detach(int argc, char **argv)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	int all = 0, opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt == 'a')
			all = 1;
		else if (opt == OPT_HELP)
			return fputs(help_detach, stdout), 0;
		else
			return option_error("detach", opt, argv);
	}
	if (all ? argc != optind : argc - optind != 1)
		return usage_error("detach", "expected one interface, or --all");
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct text_error err;
	if ((all ? detach_all(&err) : detach_iface(argv[optind], &err)) < 0)
		return fail(&err);
	printf("lyncxdp: detached from %s\n", all ? "every interface" : argv[optind]);
	return 0;
}

/* ---- reload ---- */

static const char help_reload[] =
    "Usage: lyncxdp reload [--product P | --matrix FILE] [--site FILE]\n"
    "\n"
    "Applies a changed matrix or site while attached, without detaching. The new files are\n"
    "checked and compiled first (an error changes nothing); then each interface's program\n"
    "is swapped atomically for one reading the new tables, so every packet sees either the\n"
    "old tables or the new ones, never a mix. Counters of rules present in both keep their\n"
    "values; flows and drop counters are kept. Without options, the attached files are read\n"
    "again.\n";

static int cmd_reload(int argc, char **argv)
{
	struct inputs in = { 0 };
	int done = parse_input_options("reload", help_reload, argc, argv, &in);
	if (done >= 0)
		return done;
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct lx_state st;
	struct text_error err;
	int attached = pins_state_read(&st, &err);
	if (attached < 0)
		return fail(&err);
	if (!attached) {
		fprintf(stderr, "lyncxdp: not attached: nothing to reload (use attach)\n");
		return 1;
	}
	if (!in.product && !in.matrix_path)
		in.matrix_path = st.matrix;
	if (!in.site_path)
		in.site_path = st.site;
	if (load_inputs(&in) < 0)
		return 1;
	if (attach_reload(&in.m, &in.s, &in.c, &err) < 0)
		rc = fail(&err);
	else
		printf("lyncxdp: reloaded %s and %s: %d of %d rules active\n", in.m.path, in.s.path,
		       in.c.nactive, in.m.nrules);
	free_inputs(&in);
	return rc;
}

/* ---- set ---- */

static const char help_set[] =
    "Usage: lyncxdp set IFACE [--policy monitor|enforce] [--tag | --no-tag]\n"
    "                         [--side route|protected|unprotected]\n"
    "\n"
    "Changes an attached interface's policy or DSCP tagging at once, without detaching:\n"
    "counters and tracked flows are kept, so established flows of protected hosts go on.\n";

static int cmd_set(int argc, char **argv)
{
	static const struct option opts[] = { { "policy", required_argument, NULL, 'P' },
					      { "tag", no_argument, NULL, 'T' },
					      { "no-tag", no_argument, NULL, 'N' },
					      { "side", required_argument, NULL, 'D' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	int policy = -1, tag = -1, side = -1, opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt == 'P' && (policy = parse_policy(optarg)) < 0)
			return usage_error("set", "--policy is monitor or enforce");
		else if (opt == 'T')
			tag = 1;
		else if (opt == 'N')
			tag = 0;
		else if (opt == 'D' && (side = pins_parse_side(optarg)) < 0)
			return usage_error("set", "--side is route, protected or unprotected");
		else if (opt == OPT_HELP)
			return fputs(help_set, stdout), 0;
		else if (opt != 'P' && opt != 'D')
			return option_error("set", opt, argv);
	}
	if (argc - optind != 1)
		return usage_error("set", "expected one interface");
	if (policy < 0 && tag < 0 && side < 0)
		return usage_error("set",
				   "nothing to set: give --policy, --tag, --no-tag or --side");
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct text_error err;
	if (attach_set(argv[optind], policy, tag, side, &err) < 0)
		return fail(&err);
	printf("lyncxdp: %s:%s%s%s%s%s\n", argv[optind], policy >= 0 ? " policy " : "",
	       policy >= 0 ? pins_policy_name((uint32_t)policy) : "",
	       tag < 0 ? ""
	       : tag   ? " tagging on"
		       : " tagging off",
	       side >= 0 ? " side " : "", side >= 0 ? pins_side_name((uint32_t)side) : "");
	return 0;
}

/* ---- status ---- */

static const char help_status[] = "Usage: lyncxdp status [--json]\n"
				  "\n"
				  "Attached interfaces (mode, program and link ids), the product, "
				  "matrix and site\nthey run, rule and prefix counts.\n";

static void format_time(uint64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_status_json(const struct lx_state *st, int attached,
			      const struct pins_flow_usage *fu)
{
	char when[32];
	printf("{\"attached\": %s", attached ? "true" : "false");
	if (attached) {
		format_time(st->loaded_at, when, sizeof(when));
		printf(", \"product\": ");
		json_string(stdout, st->product);
		printf(", \"matrix\": ");
		json_string(stdout, st->matrix);
		printf(", \"site\": ");
		json_string(stdout, st->site);
		printf(", \"matrix_hash\": \"%016llx\", \"site_hash\": \"%016llx\"",
		       (unsigned long long)st->matrix_hash, (unsigned long long)st->site_hash);
		printf(", \"rules\": %u, \"rules_active\": %u, \"prefixes_ipv4\": %u, "
		       "\"prefixes_ipv6\": %u, \"role_groups\": %u, \"loaded_at\": \"%s\"",
		       st->rules_total, st->rules_active, st->prefixes4, st->prefixes6, st->groups,
		       when);
		format_time(st->reloaded_at, when, sizeof(when));
		printf(", \"reloads\": %u, \"reloaded_at\": ", st->reloads);
		st->reloads ? printf("\"%s\"", when) : printf("null");
		printf(", \"flows\": {\"max\": %u, \"entries\": %llu, \"live\": %llu, \"opened\": "
		       "%llu, \"evicted\": %llu}",
		       fu->max, (unsigned long long)fu->entries, (unsigned long long)fu->live,
		       (unsigned long long)fu->opened, (unsigned long long)fu->evicted);
	}
	printf(", \"interfaces\": [");
	int first = 1;
	for (int i = 0; attached && i < LX_MAX_IFACES; i++) {
		const struct lx_iface_state *ifs = &st->ifaces[i];
		if (!ifs->ifindex)
			continue;
		format_time(ifs->attached_at, when, sizeof(when));
		printf("%s{\"name\": ", first ? "" : ", ");
		json_string(stdout, ifs->name);
		printf(
		    ", \"ifindex\": %u, \"mode\": \"%s\", \"policy\": \"%s\", \"tag\": %s, "
		    "\"side\": \"%s\", \"prog_id\": %u, \"link_id\": %u, \"attached_at\": \"%s\", "
		    "\"alive\": %s}",
		    ifs->ifindex, pins_mode_name(ifs->mode), pins_policy_name(ifs->policy),
		    ifs->tag ? "true" : "false", pins_side_name(ifs->side), ifs->prog_id,
		    ifs->link_id, when, pins_link_alive(ifs) ? "true" : "false");
		first = 0;
	}
	printf("]}\n");
}

static void print_status_text(const struct lx_state *st, int attached,
			      const struct pins_flow_usage *fu)
{
	char when[32];
	if (!attached) {
		printf("lyncxdp: not attached\n");
		return;
	}
	format_time(st->loaded_at, when, sizeof(when));
	printf("product   %s\nmatrix    %s (%016llx)\nsite      %s (%016llx)\n", st->product,
	       st->matrix, (unsigned long long)st->matrix_hash, st->site,
	       (unsigned long long)st->site_hash);
	printf("rules     %u (%u active)\nprefixes  %u IPv4, %u IPv6 (%u role groups)\n"
	       "loaded    %s\n",
	       st->rules_total, st->rules_active, st->prefixes4, st->prefixes6, st->groups, when);
	format_time(st->reloaded_at, when, sizeof(when));
	printf("reloaded  %s\n", st->reloads ? when : "never");
	printf("flows     %llu of %u entries (%llu live), %llu opened, %llu evicted\n\n",
	       (unsigned long long)fu->entries, fu->max, (unsigned long long)fu->live,
	       (unsigned long long)fu->opened, (unsigned long long)fu->evicted);
	printf("%-16s %7s %-8s %-8s %-4s %-11s %7s %7s %-21s %s\n", "IFACE", "IFINDEX", "MODE",
	       "POLICY", "TAG", "SIDE", "PROG", "LINK", "ATTACHED", "STATE");
	for (int i = 0; i < LX_MAX_IFACES; i++) {
		const struct lx_iface_state *ifs = &st->ifaces[i];
		if (!ifs->ifindex)
			continue;
		format_time(ifs->attached_at, when, sizeof(when));
		printf("%-16s %7u %-8s %-8s %-4s %-11s %7u %7u %-21s %s\n", ifs->name, ifs->ifindex,
		       pins_mode_name(ifs->mode), pins_policy_name(ifs->policy),
		       ifs->tag ? "on" : "off", pins_side_name(ifs->side), ifs->prog_id,
		       ifs->link_id, when,
		       pins_link_alive(ifs) ? "running" : "gone (interface removed?)");
	}
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, OPT_JSON },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	int json = 0, opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt == OPT_JSON)
			json = 1;
		else if (opt == OPT_HELP)
			return fputs(help_status, stdout), 0;
		else
			return option_error("status", opt, argv);
	}
	if (argc != optind)
		return usage_error("status", "takes no arguments");
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct lx_state st;
	struct text_error err;
	int attached = pins_state_read(&st, &err);
	if (attached < 0)
		return fail(&err);
	struct pins_flow_usage fu = { 0 };
	if (attached > 0 && pins_flow_usage(&fu, &err) < 0)
		return fail(&err);
	json ? print_status_json(&st, attached, &fu) : print_status_text(&st, attached, &fu);
	return 0;
}

/* ---- stats ---- */

static const char help_stats[] =
    "Usage: lyncxdp stats [IFACE] [--json | --prometheus] [--interval SECONDS [--count N]]\n"
    "                     [--all]\n"
    "\n"
    "Packets and bytes per rule (role, service, transport, ports) and direction, summed\n"
    "over every attached interface or only IFACE; then unclassified, non-IP, fragment,\n"
    "ICMP, other-L4 and malformed counters.\n"
    "  --prometheus  Prometheus text format, every interface (node_exporter textfile)\n"
    "  --interval S  print again every S seconds, with rates; --count N stops after N\n"
    "  --all         table: list rules that counted nothing too (JSON always does)\n";

static volatile int stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

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

/* The attached state and the slots of IFACE (every interface when NULL): 0, or the exit code
 * after saying why not. */
static int read_attached(const char *ifname, struct lx_state *st, uint32_t *mask)
{
	struct text_error err;
	int attached = pins_state_read(st, &err);
	if (attached < 0)
		return fail(&err);
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

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, OPT_JSON },
					      { "prometheus", no_argument, NULL, 'R' },
					      { "interval", required_argument, NULL, 'i' },
					      { "count", required_argument, NULL, 'c' },
					      { "all", no_argument, NULL, 'a' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct stats_print_opts po = { 0 };
	unsigned long count = 0;
	int opt, prometheus = 0;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		int rc;
		if (opt == OPT_JSON)
			po.json = 1;
		else if (opt == 'R')
			prometheus = 1;
		else if (opt == 'a')
			po.all = 1;
		else if (opt == 'i') {
			if ((rc = interval_opt("stats", optarg, 86400, &po.interval)))
				return rc;
		} else if (opt == 'c') {
			if ((rc = count_opt("stats", optarg, &count)))
				return rc;
		} else if (opt == OPT_HELP)
			return fputs(help_stats, stdout), 0;
		else
			return option_error("stats", opt, argv);
	}
	if (argc - optind > 1)
		return usage_error("stats", "at most one interface");
	const char *ifname = argc > optind ? argv[optind] : NULL;
	if (prometheus && (po.json || po.interval || ifname))
		return usage_error("stats", "--prometheus takes no IFACE, --json or --interval");
	int rc = kernel_ready();
	if (rc)
		return rc;

	struct lx_state st;
	struct text_error err;
	if (prometheus)
		return metrics_write(stdout, &err) < 0 ? fail(&err) : 0;
	uint32_t mask;
	if ((rc = read_attached(ifname, &st, &mask)))
		return rc;
	struct lx_map_fds fds;
	if (pins_open(&fds, &err) < 0)
		return fail(&err);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
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
		if (!po.interval || (count && n >= count))
			break;
		struct timespec ts = { (time_t)po.interval,
				       (long)((po.interval - (double)(time_t)po.interval) * 1e9) };
		nanosleep(&ts, NULL);
	}
	stats_free(&prev);
	stats_free(&now);
	pins_close(&fds);
	return rc;
}

/* ---- streams ---- */

static const char help_streams[] =
    "Usage: lyncxdp streams [IFACE] [--json] [--interval SECONDS [--count N]]\n"
    "\n"
    "RTP streams the attached program tracks in media services (maps/media): per stream\n"
    "(5-tuple and SSRC) the role, service, direction, media type, codec, packets, loss,\n"
    "interarrival jitter (RFC 3550) and a verdict against Microsoft's Call Quality\n"
    "Dashboard thresholds for a poor stream (see README, \"Media and call quality\").\n"
    "  --interval S  print again every S seconds; --count N stops after N\n";

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

static int cmd_streams(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, OPT_JSON },
					      { "interval", required_argument, NULL, 'i' },
					      { "count", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct streams_print_opts so = { 0 };
	double interval = 0;
	unsigned long count = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		int rc;
		if (opt == OPT_JSON)
			so.json = 1;
		else if (opt == 'i') {
			if ((rc = interval_opt("streams", optarg, 86400, &interval)))
				return rc;
		} else if (opt == 'c') {
			if ((rc = count_opt("streams", optarg, &count)))
				return rc;
		} else if (opt == OPT_HELP)
			return fputs(help_streams, stdout), 0;
		else
			return option_error("streams", opt, argv);
	}
	if (argc - optind > 1)
		return usage_error("streams", "at most one interface");
	const char *ifname = argc > optind ? argv[optind] : NULL;
	int rc = kernel_ready();
	if (rc)
		return rc;
	struct lx_state st;
	struct text_error err;
	uint32_t mask;
	if ((rc = read_attached(ifname, &st, &mask)))
		return rc;
	/* Codec names and thresholds: the media data beside the attached matrix. */
	static struct media_table media;
	char media_path[PATH_MAX];
	if (media_find(st.matrix, media_path, sizeof(media_path)) == 0 &&
	    media_load(media_path, &media, &err) == 0)
		so.t = &media;
	struct lx_map_fds fds;
	if (pins_open(&fds, &err) < 0)
		return fail(&err);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
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
		if (!interval || (count && n + 1 >= count))
			break;
		struct timespec ts = { (time_t)interval,
				       (long)((interval - (double)(time_t)interval) * 1e9) };
		nanosleep(&ts, NULL);
	}
	pins_close(&fds);
	return rc;
}

/* ---- top ---- */

static const char help_top[] =
    "Usage: lyncxdp top [IFACE] [--interval SECONDS] [--count N]\n"
    "\n"
    "A live view of the counters, redrawn every interval (default 1 s): per role and\n"
    "service, packets/s and bits/s in and out with a sparkline of the last minute, then\n"
    "drops and would-drops per reason; sorted by rate. Keys: s / S next / previous sort\n"
    "(bit/s, in, out, pkt/s, name), / filter by role or service (Enter applies, Esc\n"
    "clears), a rows without traffic too, q quit. Needs 80x24 or more.\n"
    "When stdin or stdout is not a terminal, prints `stats --interval` reports instead.\n"
    "  --count N  (not a terminal) stop after N reports\n";

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

static int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = { { "interval", required_argument, NULL, 'i' },
					      { "count", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	double interval = 1;
	const char *interval_arg = "1", *count_arg = NULL;
	unsigned long count = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		int rc;
		if (opt == 'i') {
			if ((rc = interval_opt("top", optarg, 3600, &interval)))
				return rc;
			interval_arg = optarg;
		} else if (opt == 'c') {
			if ((rc = count_opt("top", optarg, &count)))
				return rc;
			count_arg = optarg;
		} else if (opt == OPT_HELP)
			return fputs(help_top, stdout), 0;
		else
			return option_error("top", opt, argv);
	}
	if (argc - optind > 1)
		return usage_error("top", "at most one interface");
	const char *ifname = argc > optind ? argv[optind] : NULL;

	if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
		/* Not a terminal (a pipe, a log, cron): the same numbers as stats --interval. */
		char *args[8];
		int n = 0;
		args[n++] = "stats";
		if (ifname)
			args[n++] = (char *)ifname;
		args[n++] = "--interval";
		args[n++] = (char *)interval_arg;
		if (count_arg) {
			args[n++] = "--count";
			args[n++] = (char *)count_arg;
		}
		args[n] = NULL;
		optind = 0; /* getopt starts over for the other command */
		return cmd_stats(n, args);
	}

	int rc = kernel_ready();
	if (rc)
		return rc;
	struct lx_state st;
	struct text_error err;
	uint32_t mask;
	if ((rc = read_attached(ifname, &st, &mask)))
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
	struct top_opts o = {
		.interval = interval, .title = title, .in_fd = STDIN_FILENO, .out_fd = STDOUT_FILENO
	};
	rc = top_run(&o, top_collect, &src, &err) < 0 ? fail(&err) : 0;
	pins_close(&src.fds);
	return rc;
}

/* ---- explain ---- */

/* The sides a test run can model: frames arrive on no interface, so nothing to route by. */
static int test_side(const char *text)
{
	int side = pins_parse_side(text);
	return side == LX_SIDE_PROTECTED || side == LX_SIDE_UNPROTECTED ? side : -1;
}

static const char help_explain[] =
    "Usage: lyncxdp explain --site FILE [--product P | --matrix FILE] [--policy P] [--tag]\n"
    "                       [--json] PROTO SRC:PORT DST:PORT\n"
    "\n"
    "Builds that packet (PROTO tcp or udp; IPv6 as [ADDR]:PORT) and runs it through the\n"
    "real XDP program with BPF_PROG_TEST_RUN (nothing is attached): prints the role,\n"
    "service, rule, direction, verdict, the policy's reason and the DSCP it leaves with.\n"
    "  --policy P  monitor (default) or enforce, as attach\n"
    "  --tag       DSCP tagging on, as attach --tag\n"
    "  --tos N     the packet's TOS / traffic class byte before the program: 0..255, decimal\n"
    "              or hex (0xb8 = DSCP 46, ECN 0; default 0)\n"
    "  --side S    where the packet arrives, as attach --side: protected (default: on the\n"
    "              side of the protected hosts) or unprotected (a capture of the outside leg)\n";

static void print_explain(const struct inputs *in, const struct testrun_result *res,
			  const char *proto, const char *src, const char *dst, int json)
{
	const char *reason = res->last.reason ? stats_reason_name(res->last.reason) : NULL;
	const struct matrix_rule *r = res->last.rule ? &in->m.rules[res->last.rule - 1] : NULL;
	const char *role = r ? in->m.roles[r->role].slug : NULL;
	const struct matrix_service *svc = r ? &in->m.services[r->service] : NULL;
	const char *dir = r ? stats_dir_name(res->last.dir) : NULL;
	const char *verdict = res->retval == XDP_DROP ? "drop" : "pass";
	char ports[16] = "";
	if (r)
		snprintf(ports, sizeof(ports), r->port_lo == r->port_hi ? "%u" : "%u-%u",
			 r->port_lo, r->port_hi);
	if (json) {
		printf("{\"proto\": \"%s\", \"src\": ", proto);
		json_string(stdout, src);
		printf(", \"dst\": ");
		json_string(stdout, dst);
		printf(", \"role\": ");
		role ? json_string(stdout, role) : (void)printf("null");
		printf(", \"service\": ");
		svc ? json_string(stdout, svc->slug) : (void)printf("null");
		printf(", \"service_name\": ");
		svc ? json_string(stdout, svc->name) : (void)printf("null");
		if (r)
			printf(", \"rule\": %u, \"ports\": \"%s\", \"line\": %d", res->last.rule,
			       ports, r->line);
		else
			printf(", \"rule\": null, \"counter\": \"%s\"",
			       stats_counter_name((int)res->last.counter));
		printf(", \"direction\": %s%s%s, \"verdict\": \"%s\"", dir ? "\"" : "",
		       dir ? dir : "null", dir ? "\"" : "", verdict);
		printf(", \"reason\": %s%s%s, \"dscp\": %u, \"qos\": ", reason ? "\"" : "",
		       reason ? reason : "null", reason ? "\"" : "", res->last.dscp);
		in->s.qos_line ? json_string(stdout, in->s.qos.name) : (void)printf("null");
		printf("}\n");
		return;
	}
	printf("packet     %s %s -> %s\n", proto, src, dst);
	if (r) {
		printf("role       %s\nservice    %s (%s)\n", role, svc->slug, svc->name);
		char where[2 * LX_PATH_LEN];
		matrix_rule_where(&in->m, r, where, sizeof(where));
		printf("rule       #%u: %s %s %s, %s\n", res->last.rule, role,
		       matrix_proto_name(r->proto), ports, where);
		printf("direction  %s\n", dir);
	} else {
		printf("role       -\nservice    -\ncounter    %s\n",
		       stats_counter_name((int)res->last.counter));
	}
	printf("verdict    %s%s%s%s\n", verdict, reason ? " (" : "", reason ? reason : "",
	       reason ? (res->retval == XDP_DROP ? ")" : ": enforce would drop it)") : "");
	printf("dscp       %u", res->last.dscp);
	if (in->s.qos_line)
		printf(" (site selects qos profile %s)", in->s.qos.name);
	putchar('\n');
}

/* 0..255, decimal or hex with 0x (a TOS byte is usually written 0xb8). */
static int parse_byte(const char *s, unsigned long *out)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		const char *h = s + 2;
		if (!*h || strlen(h) > 2 || strspn(h, "0123456789abcdefABCDEF") != strlen(h))
			return -1;
		*out = strtoul(h, NULL, 16);
		return 0;
	}
	return text_parse_uint(s, 0, 255, out);
}

static int cmd_explain(int argc, char **argv)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "json", no_argument, NULL, OPT_JSON },
					      { "policy", required_argument, NULL, 'P' },
					      { "tag", no_argument, NULL, 'T' },
					      { "tos", required_argument, NULL, 'S' },
					      { "side", required_argument, NULL, 'D' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	int json = 0, opt, policy = LX_POLICY_MONITOR, tag = 0, side = LX_SIDE_PROTECTED;
	unsigned long tos = 0;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == OPT_JSON)
			json = 1;
		else if (opt == 'P' && (policy = parse_policy(optarg)) < 0)
			return usage_error("explain", "--policy is monitor or enforce");
		else if (opt == 'T')
			tag = 1;
		else if (opt == 'S' && parse_byte(optarg, &tos) < 0)
			return usage_error("explain", "--tos is 0..255, decimal or hex (0xb8)");
		else if (opt == 'D' && (side = test_side(optarg)) < 0)
			return usage_error("explain", "--side is protected or unprotected");
		else if (opt == 'P' || opt == 'S' || opt == 'D')
			continue;
		else if (opt == OPT_HELP)
			return fputs(help_explain, stdout), 0;
		else
			return option_error("explain", opt, argv);
	}
	if (argc - optind != 3)
		return usage_error("explain", "expected PROTO SRC:PORT DST:PORT");
	const char *proto = argv[optind], *src = argv[optind + 1], *dst = argv[optind + 2];
	struct packet_spec spec = { .tos = (uint8_t)tos };
	char why[256];
	if (!strcmp(proto, "tcp"))
		spec.ipproto = IPPROTO_TCP;
	else if (!strcmp(proto, "udp"))
		spec.ipproto = IPPROTO_UDP;
	else
		return usage_error("explain", "PROTO is tcp or udp");
	if (endpoint_parse(src, &spec.src, why, sizeof(why)) < 0 ||
	    endpoint_parse(dst, &spec.dst, why, sizeof(why)) < 0)
		return usage_error("explain", why);
	if (spec.src.family != spec.dst.family)
		return usage_error("explain", "source and destination are of different families");

	if (load_inputs(&in) < 0)
		return 1;
	int rc = kernel_ready();
	struct testrun t = { 0 };
	struct testrun_result res;
	struct text_error err;
	uint8_t frame[256];
	size_t len = packet_build(&spec, frame, sizeof(frame));
	if (rc == 0 &&
	    (testrun_open(&t, &in.m, &in.s, &in.c, (uint32_t)policy, (uint32_t)tag, &err) < 0 ||
	     testrun_set_side(&t, (uint32_t)side, &err) < 0 ||
	     testrun_frame(&t, frame, len, &res, &err) != 0))
		rc = fail(&err);
	if (rc == 0)
		print_explain(&in, &res, proto, src, dst, json);
	testrun_close(&t);
	free_inputs(&in);
	return rc;
}

/* ---- replay ---- */

static const char help_replay[] =
    "Usage: lyncxdp replay --site FILE [--product P | --matrix FILE] [--policy P] [--tag]\n"
    "                      FILE [--json] [--all] [--flows] [--streams]\n"
    "\n"
    "Runs every frame of a pcap or pcapng capture through the real XDP program with\n"
    "BPF_PROG_TEST_RUN (nothing is attached) and prints the same report as `stats`,\n"
    "including what the policy dropped (enforce) or would drop (monitor). A frame the\n"
    "capture cut short (snap length) runs padded with zeros to its wire length, and its\n"
    "bytes count at wire length; the report says how many were padded.\n"
    "  --flows   also list every TCP/UDP flow (5-tuple): packets and bytes in each\n"
    "            direction, the service and direction each direction was counted under,\n"
    "            and the verdicts and drop reasons of its packets\n"
    "  --side S  where the frames arrive, as attach --side: protected (default) or\n"
    "            unprotected (a capture taken on the outside leg)\n"
    "  --streams print the RTP streams of media services instead, as `lyncxdp streams`,\n"
    "            with the capture's timestamps as arrival times\n";

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

static int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "json", no_argument, NULL, OPT_JSON },
					      { "all", no_argument, NULL, 'a' },
					      { "flows", no_argument, NULL, 'F' },
					      { "policy", required_argument, NULL, 'P' },
					      { "tag", no_argument, NULL, 'T' },
					      { "streams", no_argument, NULL, 'M' },
					      { "side", required_argument, NULL, 'D' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	struct stats_print_opts po = { 0 };
	struct flows_table flows = { 0 };
	int opt, policy = LX_POLICY_MONITOR, tag = 0, want_flows = 0, streams = 0,
		 side = LX_SIDE_PROTECTED;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == 'P' && (policy = parse_policy(optarg)) < 0)
			return usage_error("replay", "--policy is monitor or enforce");
		else if (opt == 'P')
			continue;
		else if (opt == 'D' && (side = test_side(optarg)) < 0)
			return usage_error("replay", "--side is protected or unprotected");
		else if (opt == 'D')
			continue;
		else if (opt == 'T')
			tag = 1;
		else if (opt == 'M')
			streams = 1;
		else if (opt == OPT_JSON)
			po.json = 1;
		else if (opt == 'a')
			po.all = 1;
		else if (opt == 'F')
			want_flows = 1;
		else if (opt == OPT_HELP)
			return fputs(help_replay, stdout), 0;
		else
			return option_error("replay", opt, argv);
	}
	if (argc - optind != 1)
		return usage_error("replay", "expected one capture file");
	const char *path = argv[optind];
	if (load_inputs(&in) < 0)
		return 1;
	int rc = kernel_ready();
	struct testrun t = { 0 };
	struct text_error err;
	struct capture_counts counts;
	struct replay_ctx ctx = { .t = &t, .err = &err, .flows = want_flows ? &flows : NULL };
	struct stats_report report = { 0 };
	if (rc == 0 &&
	    (testrun_open(&t, &in.m, &in.s, &in.c, (uint32_t)policy, (uint32_t)tag, &err) < 0 ||
	     testrun_set_side(&t, (uint32_t)side, &err) < 0))
		rc = fail(&err);
	if (rc == 0 &&
	    (capture_foreach_timed(path, replay_frame, &ctx, &counts, &err) < 0 || ctx.failed))
		rc = fail(&err);
	if (rc == 0 && streams) {
		struct streams_report sr;
		struct streams_print_opts so = { .json = po.json, .t = &in.media };
		if (streams_collect(t.fds.streams, t.fds.rule_info, &in.media, 1u, &sr, &err) < 0) {
			rc = fail(&err);
		} else {
			streams_print(stdout, &sr, &so);
			streams_free(&sr);
		}
		flows_free(&flows);
		testrun_close(&t);
		free_inputs(&in);
		return rc;
	}
	if (rc == 0 && testrun_report(&t, &report, &err) < 0)
		rc = fail(&err);
	if (rc == 0) {
		uint64_t not_run = counts.skipped + t.too_short + t.too_long;
		char *extra = NULL;
		size_t extra_len = 0;
		FILE *x = open_memstream(&extra, &extra_len);
		if (!x) {
			perror("lyncxdp: replay");
			exit(1);
		}
		fprintf(x,
			"\"capture\": {\"frames\": %llu, \"truncated\": %llu, \"padded\": %llu, "
			"\"not_run\": %llu},\n",
			(unsigned long long)counts.frames, (unsigned long long)counts.truncated,
			(unsigned long long)counts.padded, (unsigned long long)not_run);
		if (want_flows)
			flows_print_json(x, &flows, &in.m);
		fclose(x);
		po.json_extra = extra;
		if (!po.json)
			printf("%s: %llu frames (%llu captured short of their length, of them %llu "
			       "padded to it; %llu not run)\n\n",
			       path, (unsigned long long)counts.frames,
			       (unsigned long long)counts.truncated,
			       (unsigned long long)counts.padded, (unsigned long long)not_run);
		stats_print(stdout, &report, &po);
		if (want_flows && !po.json)
			flows_print(stdout, &flows, &in.m);
		free(extra);
	}
	flows_free(&flows);
	stats_free(&report);
	testrun_close(&t);
	free_inputs(&in);
	return rc;
}

/* ---- drops ---- */

static const char help_drops[] =
    "Usage: lyncxdp drops [--json] [--seconds S] [--count N]\n"
    "\n"
    "Streams the drop log: each packet the policy dropped (enforce) or would drop (monitor),\n"
    "with time, interface, 5-tuple, reason and the destination's roles. The program sends\n"
    "at most 100 records per CPU per second; the rest are counted and reported here as\n"
    "suppressed. Runs until interrupted, S seconds, or N records.\n";

static int cmd_drops(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, OPT_JSON },
					      { "seconds", required_argument, NULL, 's' },
					      { "count", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct droplog_opts o = { .stop = (const volatile int *)&stop_requested };
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		char *end;
		int rc;
		if (opt == OPT_JSON)
			o.json = 1;
		else if (opt == 's') {
			o.seconds = strtod(optarg, &end);
			if (*end || !(o.seconds > 0))
				return usage_error("drops", "--seconds is a positive number");
		} else if (opt == 'c') {
			if ((rc = count_opt("drops", optarg, &o.count)))
				return rc;
		} else if (opt == OPT_HELP)
			return fputs(help_drops, stdout), 0;
		else
			return option_error("drops", opt, argv);
	}
	if (argc != optind)
		return usage_error("drops", "takes no arguments");
	int rc = kernel_ready();
	if (rc)
		return rc;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	struct text_error err;
	if (droplog_stream(&o, &err) < 0)
		return fail(&err);
	return 0;
}

/* ---- exporter ---- */

static const char help_exporter[] =
    "Usage: lyncxdp exporter --listen ADDR:PORT\n"
    "\n"
    "Serves the counters of every attached interface at http://ADDR:PORT/metrics in the\n"
    "Prometheus text format (as `stats --prometheus`), read fresh at every scrape. Runs in\n"
    "the foreground until interrupted; IPv6 as [ADDR]:PORT.\n";

static int cmd_exporter(int argc, char **argv)
{
	static const struct option opts[] = { { "listen", required_argument, NULL, 'l' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	const char *listen = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt == 'l')
			listen = optarg;
		else if (opt == OPT_HELP)
			return fputs(help_exporter, stdout), 0;
		else
			return option_error("exporter", opt, argv);
	}
	if (!listen || argc != optind)
		return usage_error("exporter", "expected --listen ADDR:PORT");
	int rc = kernel_ready();
	if (rc)
		return rc;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	struct text_error err;
	return exporter_run(listen, &stop_requested, &err) < 0 ? fail(&err) : 0;
}

/* ---- check ---- */

static const char help_check[] =
    "Usage: lyncxdp check --site FILE [--product P | --matrix FILE]\n"
    "\n"
    "Reads and compiles the matrix and site exactly as attach would, without root and\n"
    "without touching the kernel. Exits non-zero with file:line on the first error.\n";

static int cmd_check(int argc, char **argv)
{
	struct inputs in = { 0 };
	int done = parse_input_options("check", help_check, argc, argv, &in);
	if (done >= 0)
		return done;
	if (load_inputs(&in) < 0)
		return 1;
	printf("%s: %s, %d roles, %d services, %d rules (%d active with this site)\n", in.m.path,
	       in.m.product, in.m.nroles, in.m.nservices, in.m.nrules, in.c.nactive);
	printf("%s: %u IPv4 and %u IPv6 prefixes in %d role groups%s\n", in.s.path,
	       in.c.hosts4 + in.c.nets4, in.c.hosts6 + in.c.nets6, in.c.role_groups,
	       in.s.nwarnings ? " (see warnings above)" : "");
	free_inputs(&in);
	return 0;
}

static const struct cmd commands[] = {
	{ "attach", cmd_attach, help_attach },	     { "detach", cmd_detach, help_detach },
	{ "status", cmd_status, help_status },	     { "stats", cmd_stats, help_stats },
	{ "explain", cmd_explain, help_explain },    { "replay", cmd_replay, help_replay },
	{ "check", cmd_check, help_check },	     { "set", cmd_set, help_set },
	{ "reload", cmd_reload, help_reload },	     { "drops", cmd_drops, help_drops },
	{ "exporter", cmd_exporter, help_exporter }, { "top", cmd_top, help_top },
	{ "streams", cmd_streams, help_streams },
};

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
	opterr = 0; /* each command reports bad options itself, in one line */
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_main, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lyncxdp %s\n", LYNCXDP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "lyncxdp: unknown command '%s' (see `lyncxdp --help`)\n", argv[1]);
	return 2;
}

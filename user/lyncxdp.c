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
#include "compile.h"
#include "json.h"
#include "matrix.h"
#include "packet.h"
#include "site.h"
#include "stats.h"
#include "testrun.h"

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
    "                     load the classifier on IFACE (state pinned in /sys/fs/bpf/lyncxdp)\n"
    "  detach IFACE | --all   remove it from IFACE (the last one removes every pin)\n"
    "  status [--json]    attached interfaces, product, site, rule and prefix counts\n"
    "  stats [IFACE] [--json] [--interval SECONDS [--count N]] [--all]\n"
    "                     per-service packet and byte counters\n"
    "  explain --site FILE [--product P | --matrix FILE] PROTO SRC:PORT DST:PORT [--json]\n"
    "                     run one packet through the real program and say what it decides\n"
    "  replay --site FILE [--product P | --matrix FILE] FILE.pcap [--json] [--all]\n"
    "                     run every frame of a capture through the real program\n"
    "  check --site FILE [--product P | --matrix FILE]\n"
    "                     validate a matrix and site without loading anything\n"
    "\n"
    "Products: ocs2007r2, lync2010, lync2013, sfb2015 (default; also SfB 2019).\n"
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
};

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Product matrices live in maps/ beside the build, or in the installed share directory. */
static int resolve_product(struct inputs *in)
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
		if (!dirs[i] || !dirs[i][0])
			continue;
		snprintf(candidate, sizeof(candidate), fmts[i], dirs[i], in->product);
		if (file_exists(candidate)) {
			text_copy(in->resolved, sizeof(in->resolved), candidate);
			return 0;
		}
	}
	fprintf(stderr,
		"lyncxdp: unknown product '%s' (ocs2007r2, lync2010, lync2013, sfb2015), or its "
		"matrix is not installed (set LYNCXDP_MAPS to the maps directory)\n",
		in->product);
	return -1;
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
	return 0;
}

static void free_inputs(struct inputs *in)
{
	compile_free(&in->c);
	site_free(&in->s);
	matrix_free(&in->m);
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
    "                      [--mode native|generic]\n"
    "\n"
    "Loads the classifier on IFACE in monitor mode (every packet passes and is counted),\n"
    "pins its link and maps under /sys/fs/bpf/lyncxdp so it keeps running after this\n"
    "command exits. Further interfaces share the same tables and must name the same files.\n"
    "The matrix and site are fully checked first: on any error nothing is attached.\n"
    "  --product P   ocs2007r2, lync2010, lync2013 or sfb2015 (default)\n"
    "  --matrix F    a matrix file of your own instead of a product\n"
    "  --site F      which prefixes hold which role (see maps/site.example)\n"
    "  --mode M      native (driver) or generic (skb); default: native where supported\n";

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "mode", required_argument, NULL, 'M' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	enum attach_mode mode = ATTACH_MODE_AUTO;
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == 'M' && !strcmp(optarg, "native"))
			mode = ATTACH_MODE_NATIVE;
		else if (opt == 'M' && !strcmp(optarg, "generic"))
			mode = ATTACH_MODE_GENERIC;
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
	if (rc == 0 && attach_iface(ifname, mode, &in.m, &in.s, &in.c, &err) < 0)
		rc = fail(&err);
	if (rc == 0)
		printf("lyncxdp: attached to %s: %s, %d of %d rules active, %u IPv4 and %u IPv6 "
		       "prefixes\n",
		       ifname, in.m.product, in.c.nactive, in.m.nrules, in.c.hosts4 + in.c.nets4,
		       in.c.hosts6 + in.c.nets6);
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

static void print_status_json(const struct lx_state *st, int attached)
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
		printf(", \"rules\": %u, \"rules_active\": %u, \"prefixes_ipv4\": %u, "
		       "\"prefixes_ipv6\": %u, \"role_groups\": %u, \"loaded_at\": \"%s\"",
		       st->rules_total, st->rules_active, st->prefixes4, st->prefixes6, st->groups,
		       when);
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
		printf(", \"ifindex\": %u, \"mode\": \"%s\", \"prog_id\": %u, \"link_id\": %u, "
		       "\"attached_at\": \"%s\", \"alive\": %s}",
		       ifs->ifindex, attach_mode_name(ifs->mode), ifs->prog_id, ifs->link_id, when,
		       attach_link_alive(ifs) ? "true" : "false");
		first = 0;
	}
	printf("]}\n");
}

static void print_status_text(const struct lx_state *st, int attached)
{
	char when[32];
	if (!attached) {
		printf("lyncxdp: not attached\n");
		return;
	}
	format_time(st->loaded_at, when, sizeof(when));
	printf("product   %s\nmatrix    %s\nsite      %s\n", st->product, st->matrix, st->site);
	printf("rules     %u (%u active)\nprefixes  %u IPv4, %u IPv6 (%u role groups)\n"
	       "loaded    %s\n\n",
	       st->rules_total, st->rules_active, st->prefixes4, st->prefixes6, st->groups, when);
	printf("%-16s %7s %-8s %7s %7s %-21s %s\n", "IFACE", "IFINDEX", "MODE", "PROG", "LINK",
	       "ATTACHED", "STATE");
	for (int i = 0; i < LX_MAX_IFACES; i++) {
		const struct lx_iface_state *ifs = &st->ifaces[i];
		if (!ifs->ifindex)
			continue;
		format_time(ifs->attached_at, when, sizeof(when));
		printf("%-16s %7u %-8s %7u %7u %-21s %s\n", ifs->name, ifs->ifindex,
		       attach_mode_name(ifs->mode), ifs->prog_id, ifs->link_id, when,
		       attach_link_alive(ifs) ? "running" : "gone (interface removed?)");
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
	int attached = state_read(&st, &err);
	if (attached < 0)
		return fail(&err);
	json ? print_status_json(&st, attached) : print_status_text(&st, attached);
	return 0;
}

/* ---- stats ---- */

static const char help_stats[] =
    "Usage: lyncxdp stats [IFACE] [--json] [--interval SECONDS [--count N]] [--all]\n"
    "\n"
    "Packets and bytes per rule (role, service, transport, ports) and direction, summed\n"
    "over every attached interface or only IFACE; then unclassified, non-IP, fragment,\n"
    "ICMP, other-L4 and malformed counters.\n"
    "  --interval S  print again every S seconds, with rates; --count N stops after N\n"
    "  --all         table: list rules that counted nothing too (JSON always does)\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int open_pinned(struct lx_map_fds *fds, struct text_error *err)
{
	fds->counters = pinned_map_fd("lx_counters", err);
	fds->special = fds->counters < 0 ? -1 : pinned_map_fd("lx_special", err);
	fds->rule_info = fds->special < 0 ? -1 : pinned_map_fd("lx_rule_info", err);
	fds->state = -1;
	fds->last = -1;
	return fds->rule_info < 0 ? -1 : 0;
}

static void close_pinned(struct lx_map_fds *fds)
{
	int all[] = { fds->counters, fds->special, fds->rule_info };
	for (size_t i = 0; i < 3; i++)
		if (all[i] >= 0)
			close(all[i]);
}

static uint32_t slot_mask_for(const struct lx_state *st, const char *ifname)
{
	uint32_t mask = 0;
	uint64_t netns = attach_current_netns();
	for (int i = 0; i < LX_MAX_IFACES; i++)
		if (st->ifaces[i].ifindex && (!ifname || (!strcmp(st->ifaces[i].name, ifname) &&
							  st->ifaces[i].netns == netns)))
			mask |= 1u << i;
	return mask;
}

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, OPT_JSON },
					      { "interval", required_argument, NULL, 'i' },
					      { "count", required_argument, NULL, 'c' },
					      { "all", no_argument, NULL, 'a' },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct stats_print_opts po = { 0 };
	unsigned long count = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		char *end;
		if (opt == OPT_JSON)
			po.json = 1;
		else if (opt == 'a')
			po.all = 1;
		else if (opt == 'i') {
			po.interval = strtod(optarg, &end);
			if (*end || !(po.interval >= 0.1 && po.interval <= 86400))
				return usage_error("stats", "--interval is seconds, 0.1 to 86400");
		} else if (opt == 'c') {
			if (text_parse_uint(optarg, 1, 1000000000UL, &count) < 0)
				return usage_error("stats", "--count is a positive number");
		} else if (opt == OPT_HELP)
			return fputs(help_stats, stdout), 0;
		else
			return option_error("stats", opt, argv);
	}
	if (argc - optind > 1)
		return usage_error("stats", "at most one interface");
	const char *ifname = argc > optind ? argv[optind] : NULL;
	int rc = kernel_ready();
	if (rc)
		return rc;

	struct lx_state st;
	struct text_error err;
	int attached = state_read(&st, &err);
	if (attached < 0)
		return fail(&err);
	if (!attached) {
		fprintf(stderr, "lyncxdp: not attached to any interface\n");
		return 1;
	}
	uint32_t mask = slot_mask_for(&st, ifname);
	if (!mask) {
		fprintf(stderr, "lyncxdp: %s: lyncxdp is not attached there\n", ifname);
		return 1;
	}
	struct lx_map_fds fds;
	if (open_pinned(&fds, &err) < 0) {
		close_pinned(&fds);
		return fail(&err);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	struct stats_report now = { 0 }, prev = { 0 };
	for (unsigned long n = 0; !stop_requested; n++) {
		if (stats_collect(&fds, st.rule_cap, st.rules_total, mask, &now, &err) < 0) {
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
	close_pinned(&fds);
	return rc;
}

/* ---- explain ---- */

static const char help_explain[] =
    "Usage: lyncxdp explain --site FILE [--product P | --matrix FILE] PROTO SRC:PORT DST:PORT\n"
    "                       [--json]\n"
    "\n"
    "Builds that packet (PROTO tcp or udp; IPv6 as [ADDR]:PORT) and runs it through the\n"
    "real XDP program with BPF_PROG_TEST_RUN (nothing is attached): prints the role,\n"
    "service, rule, direction and verdict.\n";

static void print_explain(const struct inputs *in, const struct testrun_result *res,
			  const char *proto, const char *src, const char *dst, int json)
{
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
		printf(", \"direction\": %s%s%s, \"verdict\": \"%s\"}\n", dir ? "\"" : "",
		       dir ? dir : "null", dir ? "\"" : "", verdict);
		return;
	}
	printf("packet     %s %s -> %s\n", proto, src, dst);
	if (r) {
		printf("role       %s\nservice    %s (%s)\n", role, svc->slug, svc->name);
		printf("rule       #%u: %s %s %s, %s:%d\n", res->last.rule, role,
		       matrix_proto_name(r->proto), ports, in->m.path, r->line);
		printf("direction  %s\n", dir);
	} else {
		printf("role       -\nservice    -\ncounter    %s\n",
		       stats_counter_name((int)res->last.counter));
	}
	printf("verdict    %s\n", verdict);
}

static int cmd_explain(int argc, char **argv)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "json", no_argument, NULL, OPT_JSON },
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	int json = 0, opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == OPT_JSON)
			json = 1;
		else if (opt == OPT_HELP)
			return fputs(help_explain, stdout), 0;
		else
			return option_error("explain", opt, argv);
	}
	if (argc - optind != 3)
		return usage_error("explain", "expected PROTO SRC:PORT DST:PORT");
	const char *proto = argv[optind], *src = argv[optind + 1], *dst = argv[optind + 2];
	struct packet_spec spec = { 0 };
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
	if (rc == 0 && (testrun_open(&t, &in.m, &in.c, &err) < 0 ||
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
    "Usage: lyncxdp replay --site FILE [--product P | --matrix FILE] FILE [--json] [--all]\n"
    "\n"
    "Runs every frame of a pcap or pcapng capture through the real XDP program with\n"
    "BPF_PROG_TEST_RUN (nothing is attached) and prints the same report as `stats`.\n";

struct replay_ctx {
	struct testrun *t;
	struct text_error *err;
	int failed;
};

static int replay_frame(const uint8_t *frame, size_t len, void *arg)
{
	struct replay_ctx *ctx = arg;
	static struct testrun_result res;
	if (testrun_frame(ctx->t, frame, len, &res, ctx->err) < 0) {
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
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	struct stats_print_opts po = { 0 };
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == OPT_JSON)
			po.json = 1;
		else if (opt == 'a')
			po.all = 1;
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
	struct replay_ctx ctx = { .t = &t, .err = &err };
	struct stats_report report = { 0 };
	if (rc == 0 && testrun_open(&t, &in.m, &in.c, &err) < 0)
		rc = fail(&err);
	if (rc == 0 && (capture_foreach(path, replay_frame, &ctx, &counts, &err) < 0 || ctx.failed))
		rc = fail(&err);
	if (rc == 0 && testrun_report(&t, &report, &err) < 0)
		rc = fail(&err);
	if (rc == 0) {
		uint64_t not_run = counts.skipped + t.too_short + t.too_long;
		char extra[256];
		snprintf(
		    extra, sizeof(extra),
		    "\"capture\": {\"frames\": %llu, \"truncated\": %llu, \"not_run\": %llu},\n",
		    (unsigned long long)counts.frames, (unsigned long long)counts.truncated,
		    (unsigned long long)not_run);
		po.json_extra = extra;
		if (!po.json)
			printf("%s: %llu frames (%llu captured short of their length, %llu not "
			       "run)\n\n",
			       path, (unsigned long long)counts.frames,
			       (unsigned long long)counts.truncated, (unsigned long long)not_run);
		stats_print(stdout, &report, &po);
	}
	stats_free(&report);
	testrun_close(&t);
	free_inputs(&in);
	return rc;
}

/* ---- check ---- */

static const char help_check[] =
    "Usage: lyncxdp check --site FILE [--product P | --matrix FILE]\n"
    "\n"
    "Reads and compiles the matrix and site exactly as attach would, without root and\n"
    "without touching the kernel. Exits non-zero with file:line on the first error.\n";

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = { INPUT_OPTIONS,
					      { "help", no_argument, NULL, OPT_HELP },
					      { 0 } };
	struct inputs in = { 0 };
	int opt;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (take_input_option(&in, opt))
			continue;
		if (opt == OPT_HELP)
			return fputs(help_check, stdout), 0;
		return option_error("check", opt, argv);
	}
	if (argc != optind)
		return usage_error("check", "takes no arguments");
	if (load_inputs(&in) < 0)
		return 1;
	printf("%s: %s, %d roles, %d services, %d rules (%d active with this site)\n", in.m.path,
	       in.m.product, in.m.nroles, in.m.nservices, in.m.nrules, in.c.nactive);
	printf("%s: %u IPv4 and %u IPv6 prefixes in %d role groups%s\n", in.s.path,
	       in.c.hosts4 + in.c.nets4, in.c.hosts6 + in.c.nets6, in.c.ngroups - 1,
	       in.s.nwarnings ? " (see warnings above)" : "");
	free_inputs(&in);
	return 0;
}

static const struct cmd commands[] = {
	{ "attach", cmd_attach, help_attach },	  { "detach", cmd_detach, help_detach },
	{ "status", cmd_status, help_status },	  { "stats", cmd_stats, help_stats },
	{ "explain", cmd_explain, help_explain }, { "replay", cmd_replay, help_replay },
	{ "check", cmd_check, help_check },
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

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The driver of `make bench` (scripts/bench.sh runs it; nothing here is part of `make test`).
 *
 *   bench cost [--repeat N] [--runs R] --row LABEL=SPEC ...
 *       Per-packet cost with BPF_PROG_TEST_RUN over a fixed mix of Lync-shaped frames. SPEC:
 *       obj:FILE (first program of a BPF object), floor:FILE (the floor program, its hash
 *       maps filled with the destinations of the mix), lx:monitor|enforce:TAG:MATRIX:SITE (a
 *       private lyncxdp instance), id:PROG_ID (a loaded program, e.g. xdp-filter's) or
 *       na:REASON. Rows are interleaved inside every run, so drift hits them alike.
 *   bench tput --mode drop|lyncxdp|xdpfilter|pass --rx-if IF --tx-ns NS --tx-if IF ...
 *       Run inside the receiving namespace: attaches the receiver's program (not for
 *       xdpfilter, already attached by xdp-filter), forks a generator that enters the
 *       sending namespace and transmits with BPF_F_TEST_XDP_LIVE_FRAMES, and samples the
 *       receiver's counter.
 *   bench ctl --matrix M --site S --ifname IF [--runs R]
 *       Time to attach (parse, load, fill, attach) and to reload; memlock of the maps.
 *   bench nft --matrix M --site S --style list|set --ifname IF
 *       An nftables netdev ingress ruleset enforcing the matrix for the site's protected roles.
 *   bench xf-ports --matrix M --map PIN
 *       Fills xdp-filter's port map over every port range of the matrix, copying the value
 *       `xdp-filter port` wrote for each range's first port.
 *   bench gen-matrix BASE N / bench gen-site [--inside] N
 *       Matrices and sites of N rules / N prefixes for the scaling rows (to stdout); with
 *       --inside the padding surrounds the mix's own addresses.
 *
 * Results go to stdout as records "R<TAB>section<TAB>row<TAB>metric<TAB>value"; progress
 * and errors go to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "compile.h"
#include "loader.h"
#include "matrix.h"
#include "packet.h"
#include "site.h"

#define MAX_ROWS 32
#define MAX_RUNS 64
#define MAX_CPUS 256

/* ---- small helpers ---- */

/* Set by SIGINT/SIGTERM/SIGHUP: stop measuring, detach what we attached, exit. */
static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rec(const char *section, const char *row, const char *metric, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rec(const char *section, const char *row, const char *metric, const char *fmt, ...)
{
	va_list ap;
	printf("R\t%s\t%s\t%s\t", section, row, metric);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS * 4];
	if (n <= 0)
		return 0;
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int ncpus(void)
{
	int n = libbpf_num_possible_cpus();
	return n > 0 && n <= MAX_CPUS ? n : -1;
}

/* Sum of a per-CPU u64 (or the first u64 of a wider value) at key. */
static int percpu_sum(int fd, uint32_t key, size_t value_size, uint64_t *sum)
{
	static uint8_t buf[MAX_CPUS * 64];
	int n = ncpus();
	if (n < 0 || value_size > 64 || bpf_map_lookup_elem(fd, &key, buf))
		return -1;
	*sum = 0;
	for (int i = 0; i < n; i++) {
		uint64_t v;
		memcpy(&v, buf + (size_t)i * ((value_size + 7) & ~(size_t)7), sizeof(v));
		*sum += v;
	}
	return 0;
}

static long long fd_memlock(int fd)
{
	char path[64], line[256];
	long long v = -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Map fd of a program's map called name (prefix match on the kernel's 15-char name). */
static int prog_map_by_name(int prog_fd, const char *name)
{
	uint32_t ids[64];
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);
	info.nr_map_ids = 64;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -1;
	for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++) {
		int fd = bpf_map_get_fd_by_id(ids[i]);
		if (fd < 0)
			continue;
		struct bpf_map_info mi = { 0 };
		uint32_t ml = sizeof(mi);
		if (!bpf_obj_get_info_by_fd(fd, &mi, &ml) &&
		    !strncmp(mi.name, name, sizeof(mi.name) - 1))
			return fd;
		close(fd);
	}
	return -1;
}

/* The first program of a BPF object file, loaded. */
static int load_obj(const char *path, struct bpf_object **objp, char *why, size_t whylen)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj || libbpf_get_error(obj)) {
		snprintf(why, whylen, "cannot open %s", path);
		return -1;
	}
	int r = bpf_object__load(obj);
	if (r) {
		snprintf(why, whylen, "cannot load %s: %s", path, strerror(-r));
		bpf_object__close(obj);
		return -1;
	}
	struct bpf_program *prog = bpf_object__next_program(obj, NULL);
	if (!prog) {
		snprintf(why, whylen, "%s has no program", path);
		bpf_object__close(obj);
		return -1;
	}
	*objp = obj;
	return bpf_program__fd(prog);
}

/* ---- a private lyncxdp instance (never pinned, never attached by the CLI) ---- */

struct lx_inst {
	struct matrix *m;
	struct site *s;
	struct compiled *c;
	struct lyncxdp_bpf *skel;
	int prog_fd;
	struct lx_map_fds fds;
	double t_parse, t_load, t_fill;
};

static void lx_close(struct lx_inst *x)
{
	if (x->skel)
		loader_destroy(x->skel);
	if (x->c)
		compile_free(x->c);
	if (x->s)
		site_free(x->s);
	if (x->m)
		matrix_free(x->m);
	free(x->c);
	free(x->s);
	free(x->m);
	memset(x, 0, sizeof(*x));
}

static int lx_open(struct lx_inst *x, const char *matrix, const char *site, uint32_t policy,
		   uint32_t tag, struct text_error *err)
{
	memset(x, 0, sizeof(*x));
	x->m = calloc(1, sizeof(*x->m));
	x->s = calloc(1, sizeof(*x->s));
	x->c = calloc(1, sizeof(*x->c));
	if (!x->m || !x->s || !x->c) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		lx_close(x);
		return -1;
	}
	double t0 = now_s();
	if (matrix_load(matrix, x->m, err) < 0 || site_load(site, x->m, x->s, err) < 0 ||
	    compile_tables(x->m, x->s, x->c, err) < 0) {
		lx_close(x);
		return -1;
	}
	double t1 = now_s();
	struct loader_opts lo = { .iface_slot = 0,
				  .rule_cap = loader_rule_cap(x->m->nrules),
				  .size_for = x->c }; /* as attach sizes its tables */
	x->skel = loader_load(&lo, err);
	if (!x->skel) {
		lx_close(x);
		return -1;
	}
	double t2 = now_s();
	if (loader_write_tables(x->skel, x->c, err) < 0 ||
	    loader_set_iface(loader_iface_config_fd(x->skel), 0, (int)policy, (int)tag, -1, err) <
		0) {
		lx_close(x);
		return -1;
	}
	double t3 = now_s();
	x->prog_fd = loader_prog_fd(x->skel);
	loader_map_fds(x->skel, &x->fds);
	x->t_parse = t1 - t0;
	x->t_load = t2 - t1;
	x->t_fill = t3 - t2;
	return 0;
}

/* ---- the packet mix ---- */

struct mix_pkt {
	const char *name;
	int ipproto;
	const char *src, *dst;
	int nvlans;
	uint16_t tpid0, vid0, vid1;
};

/*
 * Lync-shaped traffic through a gateway in front of the example site. Every address is in
 * the ten-prefix base of the scaling sites too (see gen_site), so all rows run the same
 * frames. Ephemeral ports are 40000-48999: outside the padding rules of gen_matrix.
 */
static struct mix_pkt mix[] = {
	{ "sip-tls client->frontend", IPPROTO_TCP, "192.0.2.150:40100", "192.0.2.11:5061", 0, 0, 0,
	  0 },
	{ "sip-tls frontend->client", IPPROTO_TCP, "192.0.2.11:5061", "192.0.2.150:40100", 0, 0, 0,
	  0 },
	{ "sip-tls frontend->edge-int", IPPROTO_TCP, "192.0.2.11:40101", "198.51.100.10:5061", 0, 0,
	  0, 0 },
	{ "sip-tls federation->edge-ext", IPPROTO_TCP, "203.0.113.99:40102", "203.0.113.10:5061", 0,
	  0, 0, 0 },
	{ "stun peer->edge-ext", IPPROTO_UDP, "203.0.113.99:40103", "203.0.113.12:3478", 0, 0, 0,
	  0 },
	{ "stun edge-ext->peer", IPPROTO_UDP, "203.0.113.12:3478", "203.0.113.99:40103", 0, 0, 0,
	  0 },
	{ "audio client->frontend 49152-57500", IPPROTO_UDP, "192.0.2.150:50020",
	  "192.0.2.11:49200", 0, 0, 0, 0 },
	{ "video frontend->client 57501-65535", IPPROTO_UDP, "192.0.2.11:58000",
	  "192.0.2.150:50040", 0, 0, 0, 0 },
	{ "relay edge-ext->peer 50000-59999", IPPROTO_UDP, "203.0.113.12:50100",
	  "203.0.113.99:40105", 0, 0, 0, 0 },
	{ "relay peer->edge-ext (reply)", IPPROTO_UDP, "203.0.113.99:40105", "203.0.113.12:50100",
	  0, 0, 0, 0 },
	{ "ipv6 sip-tls client->frontend", IPPROTO_TCP, "[2001:db8:20::50]:40106",
	  "[2001:db8:10::11]:5061", 0, 0, 0, 0 },
	{ "ipv6 stun peer->edge-ext", IPPROTO_UDP, "[2001:db8:aaaa::5]:40107",
	  "[2001:db8:ff::12]:3478", 0, 0, 0, 0 },
	{ "vlan audio phone->frontend", IPPROTO_UDP, "192.0.2.70:50300", "192.0.2.11:50000", 1,
	  0x8100, 20, 0 },
	{ "qinq sip-tls phone->frontend", IPPROTO_TCP, "192.0.2.70:40108", "192.0.2.11:5061", 2,
	  0x88a8, 100, 20 },
	{ "unclassified web dmz->internet", IPPROTO_TCP, "198.51.100.50:40109", "203.0.113.99:80",
	  0, 0, 0, 0 },
	{ "unclassified dns internet", IPPROTO_UDP, "203.0.113.98:40110", "203.0.113.97:53", 0, 0,
	  0, 0 },
};
#define MIX_ALL ((int)(sizeof(mix) / sizeof(mix[0])))
static int NMIX = MIX_ALL; /* --frame replaces the mix with one frame */

struct frame {
	uint8_t data[256];
	uint32_t len;
};

static int build(int ipproto, const char *src, const char *dst, int nvlans, uint16_t tpid0,
		 uint16_t vid0, uint16_t vid1, size_t payload, struct frame *f)
{
	struct packet_spec sp = { 0 };
	char why[128];
	sp.ipproto = (uint8_t)ipproto;
	sp.payload_len = payload;
	sp.nvlans = nvlans;
	sp.vlan_tpid[0] = tpid0;
	sp.vlan_id[0] = vid0;
	sp.vlan_id[1] = vid1;
	if (endpoint_parse(src, &sp.src, why, sizeof(why)) < 0 ||
	    endpoint_parse(dst, &sp.dst, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench: %s\n", why);
		return -1;
	}
	f->len = (uint32_t)packet_build(&sp, f->data, sizeof(f->data));
	return f->len ? 0 : -1;
}

/* ---- cost ---- */

struct row {
	char label[64];
	char na[256];
	int prog_fd;
	struct bpf_object *obj;
	struct lx_inst lx;
	unsigned parked; /* ifindex the program is attached to, to keep it in the XDP dispatcher */
	double mix_ns[MAX_RUNS], mix_kns[MAX_RUNS];
	double pkt_ns[MIX_ALL + 1][MAX_RUNS], pkt_kns[MIX_ALL + 1][MAX_RUNS]; /* + the extra */
	uint32_t retval[MIX_ALL + 1];
};

/* The floor program's hash maps: every destination address of the mix, so lookups hit. */
static int floor_fill(struct bpf_object *obj, char *why, size_t whylen)
{
	struct bpf_map *m4 = bpf_object__find_map_by_name(obj, "floor_host4");
	struct bpf_map *m6 = bpf_object__find_map_by_name(obj, "floor_host6");
	if (!m4 || !m6) {
		snprintf(why, whylen, "floor program without floor_host4/floor_host6");
		return -1;
	}
	for (int i = 0; i < MIX_ALL; i++) {
		struct endpoint ep;
		char buf[128];
		uint32_t value = 1 + 2 * (uint32_t)i; /* counter index, +1 for odd ports */
		if (endpoint_parse(mix[i].dst, &ep, buf, sizeof(buf)) < 0 ||
		    bpf_map_update_elem(bpf_map__fd(ep.family == 4 ? m4 : m6), ep.addr, &value,
					BPF_ANY)) {
			snprintf(why, whylen, "filling the floor's maps: %s", mix[i].dst);
			return -1;
		}
	}
	return 0;
}

static void row_open(struct row *r, const char *spec)
{
	const char *eq = strchr(spec, '=');
	r->prog_fd = -1;
	if (!eq) {
		snprintf(r->label, sizeof(r->label), "%s", spec);
		snprintf(r->na, sizeof(r->na), "bad row spec");
		return;
	}
	snprintf(r->label, sizeof(r->label), "%.*s", (int)(eq - spec), spec);
	const char *s = eq + 1;
	if (!strncmp(s, "na:", 3)) {
		snprintf(r->na, sizeof(r->na), "%s", s + 3);
	} else if (!strncmp(s, "obj:", 4)) {
		r->prog_fd = load_obj(s + 4, &r->obj, r->na, sizeof(r->na));
	} else if (!strncmp(s, "floor:", 6)) {
		r->prog_fd = load_obj(s + 6, &r->obj, r->na, sizeof(r->na));
		if (r->prog_fd >= 0 && floor_fill(r->obj, r->na, sizeof(r->na)) < 0)
			r->prog_fd = -1;
	} else if (!strncmp(s, "id:", 3)) {
		r->prog_fd = bpf_prog_get_fd_by_id((uint32_t)atoi(s + 3));
		if (r->prog_fd < 0)
			snprintf(r->na, sizeof(r->na), "program id %s: %s", s + 3, strerror(errno));
	} else if (!strncmp(s, "lx:", 3)) {
		char buf[1024], *save = NULL;
		snprintf(buf, sizeof(buf), "%s", s + 3);
		char *policy = strtok_r(buf, ":", &save), *tag = strtok_r(NULL, ":", &save);
		char *matrix = strtok_r(NULL, ":", &save), *site = strtok_r(NULL, ":", &save);
		struct text_error err = { { 0 } };
		if (!policy || !tag || !matrix || !site) {
			snprintf(r->na, sizeof(r->na), "bad lx spec");
		} else if (lx_open(&r->lx, matrix, site,
				   !strcmp(policy, "enforce") ? LX_POLICY_ENFORCE
							      : LX_POLICY_MONITOR,
				   (uint32_t)atoi(tag), &err) < 0) {
			snprintf(r->na, sizeof(r->na), "%s", err.msg);
		} else {
			r->prog_fd = r->lx.prog_fd;
		}
	} else {
		snprintf(r->na, sizeof(r->na), "unknown row kind");
	}
	if (r->prog_fd < 0 && !r->na[0])
		snprintf(r->na, sizeof(r->na), "no program");
}

/*
 * ns per packet: wall time of one BPF_PROG_TEST_RUN call over its repeat count, and the
 * kernel's own figure (whole ns, rounded down). The wall time is only meaningful when the
 * program is attached somewhere (parked): otherwise every call adds it to the XDP
 * dispatcher and removes it again, two synchronize_rcu() of several ms each.
 */
static int run_frame(int prog_fd, const struct frame *f, uint32_t repeat, double *ns,
		     double *kernel_ns, uint32_t *retval)
{
	uint8_t out[512];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->data, .data_size_in = f->len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = repeat);
	double t0 = now_s();
	if (bpf_prog_test_run_opts(prog_fd, &o))
		return -1;
	*ns = (now_s() - t0) * 1e9 / repeat;
	if (kernel_ns)
		*kernel_ns = o.duration;
	if (retval)
		*retval = o.retval;
	return 0;
}

static int cmd_cost(int argc, char **argv)
{
	static struct row rows[MAX_ROWS];
	int nrows = 0, runs = 5;
	uint32_t repeat = 10000000;
	const char *park = NULL;
	static const struct option opts[] = { { "repeat", required_argument, 0, 'n' },
					      { "runs", required_argument, 0, 'r' },
					      { "row", required_argument, 0, 'w' },
					      { "park", required_argument, 0, 'p' },
					      { "frame", required_argument, 0, 'f' },
					      { "extra", required_argument, 0, 'e' },
					      { 0, 0, 0, 0 } };
	static char fbuf[256], ebuf[256];
	struct mix_pkt extra = { 0 };
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			repeat = (uint32_t)strtoul(optarg, NULL, 10);
		else if (ch == 'r')
			runs = atoi(optarg);
		else if (ch == 'w' && nrows < MAX_ROWS)
			row_open(&rows[nrows++], optarg);
		else if (ch == 'p')
			park = optarg;
		else if (ch == 'f') { /* "tcp|udp SRC DST": that frame alone */
			char *save = NULL;
			snprintf(fbuf, sizeof(fbuf), "%s", optarg);
			char *proto = strtok_r(fbuf, " ", &save), *src = strtok_r(NULL, " ", &save);
			char *dst = strtok_r(NULL, " ", &save);
			if (!proto || !src || !dst)
				return 2;
			mix[0] = (struct mix_pkt){
				optarg, strcmp(proto, "udp") ? IPPROTO_TCP : IPPROTO_UDP,
				src,	dst,
				0,	0,
				0,	0
			};
			NMIX = 1;
		} else if (ch == 'e') { /* "tcp|udp SRC DST": measured too, reported apart */
			char *save = NULL;
			snprintf(ebuf, sizeof(ebuf), "%s", optarg);
			char *proto = strtok_r(ebuf, " ", &save), *src = strtok_r(NULL, " ", &save);
			char *dst = strtok_r(NULL, " ", &save);
			if (!proto || !src || !dst)
				return 2;
			extra = (struct mix_pkt){
				optarg, strcmp(proto, "udp") ? IPPROTO_TCP : IPPROTO_UDP,
				src,	dst,
				0,	0,
				0,	0
			};
		} else
			return 2;
	}
	if (runs < 1 || runs > MAX_RUNS || repeat < 1)
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	/* Park every program we loaded on an interface of its own (PARK0, PARK1, ...). */
	for (int k = 0, slot = 0; park && k < nrows; k++) {
		struct row *r = &rows[k];
		char ifname[IF_NAMESIZE + 8];
		if (r->na[0] || (!r->obj && !r->lx.skel)) /* id: rows are attached by their owner */
			continue;
		snprintf(ifname, sizeof(ifname), "%s%d", park, slot++);
		unsigned ifindex = if_nametoindex(ifname);
		if (ifindex && !bpf_xdp_attach((int)ifindex, r->prog_fd, XDP_FLAGS_DRV_MODE, NULL))
			r->parked = ifindex;
		else
			fprintf(stderr, "bench: cannot park %s on %s: kernel figures only\n",
				r->label, ifname);
	}

	struct frame frames[MIX_ALL + 1];
	for (int i = 0; i < NMIX; i++)
		if (build(mix[i].ipproto, mix[i].src, mix[i].dst, mix[i].nvlans, mix[i].tpid0,
			  mix[i].vid0, mix[i].vid1, 10, &frames[i]) < 0)
			return 1;
	int nframes = NMIX; /* frames[NMIX] is the extra frame, when there is one */
	if (extra.name) {
		if (build(extra.ipproto, extra.src, extra.dst, 0, 0, 0, 0, 10, &frames[NMIX]) < 0)
			return 1;
		nframes++;
	}

	/* Warm up: every frame once, in order (this opens the relay flow the reply needs). */
	for (int k = 0; k < nrows; k++) {
		struct row *r = &rows[k];
		for (int i = 0; i < nframes && !r->na[0]; i++) {
			double ns;
			if (run_frame(r->prog_fd, &frames[i], 1000, &ns, NULL, &r->retval[i]) < 0)
				snprintf(r->na, sizeof(r->na), "BPF_PROG_TEST_RUN: %s",
					 strerror(errno));
		}
	}
	int done = 0;
	for (int run = 0; run < runs && !stop_flag; run++, done++) {
		fprintf(stderr, "bench: cost run %d/%d\n", run + 1, runs);
		for (int k = 0; k < nrows && !stop_flag; k++) {
			struct row *r = &rows[k];
			double sum = 0, ksum = 0;
			for (int i = 0; i < nframes && !r->na[0]; i++) {
				if (run_frame(r->prog_fd, &frames[i], repeat, &r->pkt_ns[i][run],
					      &r->pkt_kns[i][run], NULL) < 0)
					snprintf(r->na, sizeof(r->na), "BPF_PROG_TEST_RUN: %s",
						 strerror(errno));
				if (!r->parked) /* wall time is the dispatcher's update: useless */
					r->pkt_ns[i][run] = r->pkt_kns[i][run];
				if (i < NMIX) {
					sum += r->pkt_ns[i][run];
					ksum += r->pkt_kns[i][run];
				}
			}
			r->mix_ns[run] = sum / NMIX;
			r->mix_kns[run] = ksum / NMIX;
		}
	}
	if (done < runs) {
		for (int k = 0; k < nrows; k++)
			if (!rows[k].na[0])
				snprintf(rows[k].na, sizeof(rows[k].na), "interrupted");
	}
	for (int k = 0; k < nrows; k++) {
		struct row *r = &rows[k];
		if (r->na[0]) {
			rec("cost", r->label, "na", "%s", r->na);
			continue;
		}
		double lo = r->mix_ns[0], hi = r->mix_ns[0];
		for (int run = 1; run < runs; run++) {
			lo = r->mix_ns[run] < lo ? r->mix_ns[run] : lo;
			hi = r->mix_ns[run] > hi ? r->mix_ns[run] : hi;
		}
		rec("cost", r->label, "ns", "%.2f", median(r->mix_ns, runs));
		rec("cost", r->label, "min", "%.2f", lo);
		rec("cost", r->label, "max", "%.2f", hi);
		rec("cost", r->label, "kernel_ns", "%.2f", median(r->mix_kns, runs));
		rec("cost", r->label, "timing", "%s",
		    r->parked ? "wall (parked)" : "kernel (whole ns, rounded down)");
		for (int i = 0; i < NMIX; i++) {
			char m[96];
			snprintf(m, sizeof(m), "pkt:%s", mix[i].name);
			rec("cost", r->label, m, "%.2f %s", median(r->pkt_ns[i], runs),
			    r->retval[i] == XDP_PASS   ? "pass"
			    : r->retval[i] == XDP_DROP ? "drop"
						       : "other");
		}
		if (extra.name) {
			rec("cost", r->label, "extra_frame_ns", "%.2f",
			    median(r->pkt_ns[NMIX], runs));
			rec("cost", r->label, "extra_frame_verdict", "%s",
			    r->retval[NMIX] == XDP_DROP	  ? "drop"
			    : r->retval[NMIX] == XDP_PASS ? "pass"
							  : "other");
		}
	}
	for (int k = 0; k < nrows; k++) {
		if (rows[k].parked) {
			LIBBPF_OPTS(bpf_xdp_attach_opts, d, .old_prog_fd = rows[k].prog_fd);
			bpf_xdp_detach((int)rows[k].parked, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE,
				       &d);
		}
		if (rows[k].obj)
			bpf_object__close(rows[k].obj);
		if (rows[k].lx.skel)
			lx_close(&rows[k].lx);
	}
	return 0;
}

/* ---- throughput ---- */

struct shared {
	volatile uint64_t sent;
	volatile int ready;
	volatile int stop;
	volatile int failed;
	char why[256];
};

/* The generator: enters the sending namespace, transmits until told to stop. */
static void generator(struct shared *sh, const char *tx_ns, const char *tx_if, int cpu,
		      const char *obj_path, const struct frame *f, double rate)
{
	char path[256];
	snprintf(path, sizeof(path), "/run/netns/%s", tx_ns);
	int nsfd = open(path, O_RDONLY);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
		snprintf(sh->why, sizeof(sh->why), "entering %s: %s", tx_ns, strerror(errno));
		sh->failed = 1;
		return;
	}
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	unsigned ifindex = if_nametoindex(tx_if);
	struct bpf_object *obj;
	int fd = load_obj(obj_path, &obj, sh->why, sizeof(sh->why));
	if (!ifindex || fd < 0) {
		if (!ifindex)
			snprintf(sh->why, sizeof(sh->why), "no interface %s in %s", tx_if, tx_ns);
		sh->failed = 1;
		return;
	}
	/* Parked on the sending veth itself (it receives nothing): in the XDP dispatcher for
	 * good, so test runs do not update the dispatcher (synchronize_rcu) on every call. */
	if (bpf_xdp_attach((int)ifindex, fd, XDP_FLAGS_DRV_MODE, NULL))
		fprintf(stderr, "bench: cannot park the generator on %s\n", tx_if);
	struct xdp_md ctx = { .data_end = f->len, .ingress_ifindex = ifindex };
	/* Unpaced: big calls. Paced (rate frames/s): calls of 8192 frames, then wait for the
	 * schedule. Each call sets up a page pool, so calls are kept long. */
	const uint32_t repeat = rate > 0 ? 8192 : 1u << 20;
	double start = now_s();
	sh->ready = 1;
	while (!sh->stop) {
		if (rate > 0) {
			double due = start + (double)sh->sent / rate;
			while (!sh->stop && now_s() < due)
				;
		}
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->data, .data_size_in = f->len,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = repeat,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
		if (bpf_prog_test_run_opts(fd, &o)) {
			if (errno == EINTR)
				continue;
			snprintf(sh->why, sizeof(sh->why), "live-frames BPF_PROG_TEST_RUN: %s",
				 strerror(errno));
			sh->failed = 1;
			break;
		}
		__atomic_add_fetch(&sh->sent, repeat, __ATOMIC_RELAXED);
	}
	LIBBPF_OPTS(bpf_xdp_attach_opts, d, .old_prog_fd = fd);
	bpf_xdp_detach((int)ifindex, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &d);
	bpf_object__close(obj);
}

struct cpu_times {
	unsigned long long busy[MAX_CPUS], total[MAX_CPUS], softirq[MAX_CPUS];
	unsigned long long net_rx[MAX_CPUS]; /* NET_RX softirqs raised, from /proc/softirqs */
	int n;
};

static void read_cpu_times(struct cpu_times *t)
{
	char line[512];
	FILE *f = fopen("/proc/stat", "r");
	t->n = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		int cpu;
		unsigned long long v[8] = { 0 };
		if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 8 ||
		    cpu < 0 || cpu >= MAX_CPUS)
			continue;
		unsigned long long total = 0;
		for (int i = 0; i < 8; i++)
			total += v[i];
		t->total[cpu] = total;
		t->busy[cpu] = total - v[3] - v[4];
		t->softirq[cpu] = v[6];
		if (cpu + 1 > t->n)
			t->n = cpu + 1;
	}
	fclose(f);
	f = fopen("/proc/softirqs", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "NET_RX:");
		if (!p)
			continue;
		p += 7;
		for (int c = 0; c < t->n; c++)
			t->net_rx[c] = strtoull(p, &p, 10);
	}
	if (f)
		fclose(f);
}

/* The NAPI kthread of an interface ("napi/IF-ID", comm cut at 15 characters). */
static int napi_thread(const char *ifname, int *psr)
{
	char want[32], path[64], buf[1024];
	snprintf(want, sizeof(want), "napi/%s-", ifname);
	size_t wl = strlen(want) > 15 ? 15 : strlen(want);
	DIR *d = opendir("/proc");
	struct dirent *e;
	int found = -1;
	while (d && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && !strncmp(buf, want, wl))
			found = pid;
		fclose(f);
		if (found > 0)
			break;
	}
	if (d)
		closedir(d);
	if (found > 0 && psr) {
		snprintf(path, sizeof(path), "/proc/%d/stat", found);
		FILE *f = fopen(path, "r");
		*psr = -1;
		if (f && fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')');
			int field = 2;
			for (; p && *p; p++)
				if (*p == ' ' && ++field == 39) {
					*psr = atoi(p + 1);
					break;
				}
		}
		if (f)
			fclose(f);
	}
	return found;
}

static int write_file(const char *path, const char *value)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int r = fputs(value, f) < 0 ? -1 : 0;
	if (fclose(f))
		r = -1;
	return r;
}

static unsigned long long read_ull(const char *path)
{
	unsigned long long v = 0;
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

/* A receiver configuration of the throughput section. */
struct rx_row {
	char label[64];
	char na[256];
	int prog_fd;
	struct bpf_object *obj;
	struct lx_inst lx;
	int cnt_fd;			    /* per-CPU counter map, or -1 for nft */
	uint32_t cnt_keys[2 * LX_DROP_MAX]; /* summed */
	int cnt_nkeys;
	size_t cnt_value_size;
	const char *nft_file; /* nft rows: the ruleset loaded while the row runs */
	double pps[MAX_RUNS], offered[MAX_RUNS], if_rx[MAX_RUNS], busy[MAX_RUNS][2],
	    net_rx[MAX_RUNS][2];
	int done;
};

static int nft_counter(uint64_t *v)
{
	char line[256];
	unsigned long long x;
	int ok = 0;
	FILE *p = popen("nft list counter netdev lxbench dropped 2>/dev/null", "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char *q = strstr(line, "packets ");
		if (q && sscanf(q, "packets %llu", &x) == 1) {
			*v = x;
			ok = 1;
		}
	}
	pclose(p);
	return ok ? 0 : -1;
}

static int rx_count(const struct rx_row *r, uint64_t *v)
{
	*v = 0;
	if (r->nft_file)
		return nft_counter(v);
	for (int i = 0; i < r->cnt_nkeys; i++) {
		uint64_t s;
		if (percpu_sum(r->cnt_fd, r->cnt_keys[i], r->cnt_value_size, &s) < 0)
			return -1;
		*v += s;
	}
	return 0;
}

/*
 * SPEC: drop | lyncxdp:MATRIX:SITE (enforce) | xdpfilter:PROG_ID | nft:RULESET_FILE (with a
 * bare XDP_PASS program so that veth delivers frames through NAPI) | na:REASON.
 */
static void rx_row_open(struct rx_row *r, const char *arg, const char *objdir)
{
	char path[512], buf[1024];
	const char *eq = strchr(arg, '=');
	memset(r, 0, sizeof(*r));
	r->prog_fd = -1;
	r->cnt_fd = -1;
	r->cnt_value_size = 8;
	snprintf(r->label, sizeof(r->label), "%.*s", eq ? (int)(eq - arg) : 0, arg);
	const char *s = eq ? eq + 1 : "";
	if (!eq) {
		snprintf(r->na, sizeof(r->na), "bad row spec");
	} else if (!strncmp(s, "na:", 3)) {
		snprintf(r->na, sizeof(r->na), "%s", s + 3);
	} else if (!strcmp(s, "drop")) {
		snprintf(path, sizeof(path), "%s/bench_drop.bpf.o", objdir);
		r->prog_fd = load_obj(path, &r->obj, r->na, sizeof(r->na));
		struct bpf_map *m =
		    r->obj ? bpf_object__find_map_by_name(r->obj, "bench_dropped") : NULL;
		r->cnt_fd = m ? bpf_map__fd(m) : -1;
		r->cnt_nkeys = 1;
	} else if (!strncmp(s, "lyncxdp:", 8)) {
		char *save = NULL;
		snprintf(buf, sizeof(buf), "%s", s + 8);
		char *matrix = strtok_r(buf, ":", &save), *site = strtok_r(NULL, ":", &save);
		struct text_error err = { { 0 } };
		if (!matrix || !site ||
		    lx_open(&r->lx, matrix, site, LX_POLICY_ENFORCE, 0, &err) < 0) {
			snprintf(r->na, sizeof(r->na), "lyncxdp: %s", err.msg);
		} else {
			r->prog_fd = r->lx.prog_fd;
			r->cnt_fd = r->lx.fds.drops;
			r->cnt_value_size = sizeof(struct lx_drop_count); /* packets first */
			/* Enforced drops of every reason, of a rule or unclassified (the
			 * throughput frame is unclassified). */
			for (uint32_t k = 1; k < LX_DROP_MAX; k++) {
				r->cnt_keys[r->cnt_nkeys++] =
				    lx_drop_counter_index(0, k, 1, LX_DROP_CLASS_RULE);
				r->cnt_keys[r->cnt_nkeys++] =
				    lx_drop_counter_index(0, k, 1, LX_CNT_UNCLASSIFIED);
			}
		}
	} else if (!strncmp(s, "xdpfilter:", 10)) {
		r->prog_fd = bpf_prog_get_fd_by_id((uint32_t)atoi(s + 10));
		r->cnt_fd = r->prog_fd < 0 ? -1 : prog_map_by_name(r->prog_fd, "xdp_stats_map");
		if (r->prog_fd < 0)
			snprintf(r->na, sizeof(r->na), "xdp-filter program id %s: %s", s + 10,
				 strerror(errno));
		else if (r->cnt_fd < 0)
			snprintf(r->na, sizeof(r->na), "xdp-filter's xdp_stats_map not found");
		r->cnt_value_size = 16; /* struct datarec { rx_packets, rx_bytes } */
		r->cnt_keys[r->cnt_nkeys++] = XDP_DROP;
	} else if (!strncmp(s, "nft:", 4)) {
		snprintf(path, sizeof(path), "%s/bench_pass.bpf.o", objdir);
		r->prog_fd = load_obj(path, &r->obj, r->na, sizeof(r->na));
		r->nft_file = s + 4;
		snprintf(buf, sizeof(buf), "nft -c -f '%s' >/dev/null 2>&1", r->nft_file);
		if (!r->na[0] && system(buf) != 0)
			snprintf(r->na, sizeof(r->na), "nft -c -f %s refuses the ruleset",
				 r->nft_file);
	} else {
		snprintf(r->na, sizeof(r->na), "unknown row kind");
	}
	if (!r->na[0] && (r->prog_fd < 0 || (r->cnt_fd < 0 && !r->nft_file)))
		snprintf(r->na, sizeof(r->na), "no program or no counter");
}

static void rx_row_close(struct rx_row *r)
{
	if (r->obj)
		bpf_object__close(r->obj);
	if (r->lx.skel)
		lx_close(&r->lx);
	else if (r->prog_fd >= 0)
		close(r->prog_fd);
	if (r->cnt_fd >= 0 && !r->obj && !r->lx.skel)
		close(r->cnt_fd);
}

/* Measures one window of one row; the generator keeps running between rows. */
static void rx_window(struct rx_row *r, int run, unsigned ifindex, const char *rx_if,
		      struct shared *sh, double seconds, double settle)
{
	char path[256];
	if (r->nft_file) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "nft -f '%s' 2>&1", r->nft_file);
		if (system(cmd) != 0) {
			snprintf(r->na, sizeof(r->na), "nft -f %s failed", r->nft_file);
			return;
		}
	}
	int e = bpf_xdp_attach((int)ifindex, r->prog_fd, XDP_FLAGS_DRV_MODE, NULL);
	if (e) {
		snprintf(r->na, sizeof(r->na), "native XDP attach on %s: %s", rx_if, strerror(-e));
		goto out;
	}
	usleep((useconds_t)(settle * 1e6));

	uint64_t c0, c1, s0, s1;
	struct cpu_times ct0, ct1;
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/rx_packets", rx_if);
	unsigned long long rx0 = read_ull(path);
	read_cpu_times(&ct0);
	s0 = sh->sent;
	double t0 = now_s();
	if (rx_count(r, &c0) < 0) {
		snprintf(r->na, sizeof(r->na), "cannot read the receiver's counter");
		goto out;
	}
	double end = t0 + seconds;
	while (!stop_flag && !sh->failed && now_s() < end)
		usleep(20000);
	if (rx_count(r, &c1) < 0) {
		snprintf(r->na, sizeof(r->na), "cannot read the receiver's counter");
		goto out;
	}
	double t1 = now_s();
	s1 = sh->sent;
	read_cpu_times(&ct1);
	unsigned long long rx1 = read_ull(path);
	if (stop_flag || sh->failed)
		goto out;
	r->pps[r->done] = (double)(c1 - c0) / (t1 - t0);
	r->offered[r->done] = (double)(s1 - s0) / (t1 - t0);
	r->if_rx[r->done] = (double)(rx1 - rx0) / (t1 - t0);
	for (int c = 0; c < 2 && c < ct1.n; c++) {
		double tot = (double)(ct1.total[c] - ct0.total[c]);
		r->busy[r->done][c] =
		    tot > 0 ? 100.0 * (double)(ct1.busy[c] - ct0.busy[c]) / tot : 0;
		r->net_rx[r->done][c] = (double)(ct1.net_rx[c] - ct0.net_rx[c]) / (t1 - t0);
	}
	char m[32];
	snprintf(m, sizeof(m), "run%d_pps", run + 1);
	rec("tput", r->label, m, "%.0f", r->pps[r->done]);
	snprintf(m, sizeof(m), "run%d_offered_pps", run + 1);
	rec("tput", r->label, m, "%.0f", r->offered[r->done]);
	r->done++;
out:
	if (r->nft_file && system("nft delete table netdev lxbench >/dev/null 2>&1") != 0)
		fprintf(stderr, "bench: could not delete table netdev lxbench\n");
}

static int cmd_tput(int argc, char **argv)
{
	const char *rx_if = NULL, *tx_ns = NULL, *tx_if = NULL, *objdir = "build";
	const char *pkt_src = "203.0.113.99:40000", *pkt_dst = "203.0.113.10:22";
	double seconds = 10, settle = 1;
	int runs = 3, gen_cpu = 0, rx_cpu = 1, nrows = 0;
	double rate = 0;
	int threaded = 0; /* --napi threaded: its own kthread, pinned to --rx-cpu */
	static struct rx_row rows[MAX_ROWS];
	static char row_args[MAX_ROWS][1024];
	static const struct option opts[] = { { "rx-if", required_argument, 0, 'i' },
					      { "tx-ns", required_argument, 0, 'n' },
					      { "tx-if", required_argument, 0, 't' },
					      { "objdir", required_argument, 0, 'o' },
					      { "seconds", required_argument, 0, 's' },
					      { "runs", required_argument, 0, 'r' },
					      { "gen-cpu", required_argument, 0, 'g' },
					      { "rx-cpu", required_argument, 0, 'x' },
					      { "src", required_argument, 0, 'a' },
					      { "dst", required_argument, 0, 'b' },
					      { "settle", required_argument, 0, 'w' },
					      { "row", required_argument, 0, 'R' },
					      { "rate", required_argument, 0, 'p' },
					      { "napi", required_argument, 0, 'N' },
					      { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			rx_if = optarg;
			break;
		case 'n':
			tx_ns = optarg;
			break;
		case 't':
			tx_if = optarg;
			break;
		case 'o':
			objdir = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'g':
			gen_cpu = atoi(optarg);
			break;
		case 'x':
			rx_cpu = atoi(optarg);
			break;
		case 'a':
			pkt_src = optarg;
			break;
		case 'b':
			pkt_dst = optarg;
			break;
		case 'w':
			settle = atof(optarg);
			break;
		case 'p':
			rate = atof(optarg);
			break;
		case 'N':
			threaded = !strcmp(optarg, "threaded");
			break;
		case 'R':
			if (nrows < MAX_ROWS)
				snprintf(row_args[nrows++], sizeof(row_args[0]), "%s", optarg);
			break;
		default:
			return 2;
		}
	}
	if (!rx_if || !tx_ns || !tx_if || runs < 1 || runs > MAX_RUNS || !nrows)
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	char why[512] = "", path[512];
	unsigned ifindex = if_nametoindex(rx_if);
	pid_t child = -1;
	int attached = 0, napi_pid = -1, napi_cpu = -1;
	struct shared *sh =
	    mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	memset(sh, 0, sizeof(*sh));
	for (int k = 0; k < nrows; k++) {
		rx_row_open(&rows[k], row_args[k], objdir);
		rec("tput", rows[k].label, "row", "%d",
		    k + 1); /* keeps the rows' order in reports */
	}

	struct frame f;
	if (build(IPPROTO_TCP, pkt_src, pkt_dst, 0, 0, 0, 0, 10, &f) < 0) {
		snprintf(why, sizeof(why), "cannot build the frame");
		goto out;
	}
	if (!ifindex) {
		snprintf(why, sizeof(why), "no interface %s here", rx_if);
		goto out;
	}
	/* The receiver needs an XDP program before the generator starts (veth drops frames
	 * sent to a peer without NAPI). The first usable row's program does. */
	for (int k = 0; k < nrows && !attached; k++)
		if (!rows[k].na[0] &&
		    !bpf_xdp_attach((int)ifindex, rows[k].prog_fd, XDP_FLAGS_DRV_MODE, NULL))
			attached = 1;
	if (!attached) {
		snprintf(why, sizeof(why), "no receiver program could be attached to %s", rx_if);
		goto out;
	}
	/* Threaded NAPI, its thread pinned to rx_cpu: the generator (gen_cpu) shares nothing. */
	snprintf(path, sizeof(path), "/sys/class/net/%s/threaded", rx_if);
	if (write_file(path, threaded ? "1" : "0") < 0)
		fprintf(stderr, "bench: threaded NAPI on %s: %s\n", rx_if, strerror(errno));
	usleep(100000);
	napi_pid = threaded ? napi_thread(rx_if, NULL) : -1;
	if (napi_pid > 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(rx_cpu, &set);
		if (sched_setaffinity(napi_pid, sizeof(set), &set))
			fprintf(stderr, "bench: pinning napi thread %d: %s\n", napi_pid,
				strerror(errno));
	}

	child = fork();
	if (child == 0) {
		signal(SIGINT, SIG_IGN); /* the parent stops us through sh->stop */
		signal(SIGTERM, SIG_DFL);
		snprintf(path, sizeof(path), "%s/bench_txgen.bpf.o", objdir);
		generator(sh, tx_ns, tx_if, gen_cpu, path, &f, rate);
		_exit(sh->failed ? 1 : 0);
	}
	if (child < 0) {
		snprintf(why, sizeof(why), "fork: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < 500 && !sh->ready && !sh->failed && !stop_flag; i++)
		usleep(10000);
	if (!sh->ready || sh->failed) {
		snprintf(why, sizeof(why), "generator: %s", sh->failed ? sh->why : "did not start");
		goto out;
	}
	/* Rounds: every row once per round, so drift hits every row alike. */
	for (int run = 0; run < runs && !stop_flag && !sh->failed; run++) {
		fprintf(stderr, "bench: throughput round %d/%d\n", run + 1, runs);
		for (int k = 0; k < nrows && !stop_flag && !sh->failed; k++)
			if (!rows[k].na[0])
				rx_window(&rows[k], run, ifindex, rx_if, sh, seconds, settle);
	}
	if (sh->failed)
		snprintf(why, sizeof(why), "generator: %s", sh->why);
	else if (stop_flag)
		snprintf(why, sizeof(why), "interrupted");
	napi_pid = threaded ? napi_thread(rx_if, &napi_cpu) : -1;
	for (int k = 0; k < nrows; k++) {
		struct rx_row *r = &rows[k];
		if (!r->na[0] && r->done < runs)
			snprintf(r->na, sizeof(r->na), "%s", why[0] ? why : "incomplete");
		if (r->na[0]) {
			rec("tput", r->label, "na", "%s", r->na);
			continue;
		}
		double b0[MAX_RUNS], b1[MAX_RUNS], n0[MAX_RUNS], n1[MAX_RUNS];
		for (int i = 0; i < r->done; i++) {
			b0[i] = r->busy[i][0];
			b1[i] = r->busy[i][1];
			n0[i] = r->net_rx[i][0];
			n1[i] = r->net_rx[i][1];
		}
		rec("tput", r->label, "pps", "%.0f", median(r->pps, r->done));
		rec("tput", r->label, "offered_pps", "%.0f", median(r->offered, r->done));
		rec("tput", r->label, "if_rx_pps", "%.0f", median(r->if_rx, r->done));
		rec("tput", r->label, "cpu0_busy", "%.0f", median(b0, r->done));
		rec("tput", r->label, "cpu1_busy", "%.0f", median(b1, r->done));
		rec("tput", r->label, "cpu0_net_rx_softirqs_per_s", "%.0f", median(n0, r->done));
		rec("tput", r->label, "cpu1_net_rx_softirqs_per_s", "%.0f", median(n1, r->done));
		rec("tput", r->label, "ns_per_packet", "%.2f", 1e9 / median(r->pps, r->done));
	}
	if (napi_pid > 0)
		rec("tput", "receiver", "napi", "threaded NAPI, kthread %d on cpu %d", napi_pid,
		    napi_cpu);
	else
		rec("tput", "receiver", "napi",
		    "NAPI in the NET_RX softirq of the generator's cpu %d", gen_cpu);
	rec("tput", "receiver", "gen_cpu", "%d", gen_cpu);
	rec("tput", "receiver", "rate", "%s", rate > 0 ? "paced" : "unpaced");
	rec("tput", "receiver", "frame", "tcp %s -> %s, %u bytes", pkt_src, pkt_dst, f.len);

out:
	if (child > 0) {
		sh->stop = 1;
		for (int i = 0; i < 500; i++) {
			if (waitpid(child, NULL, WNOHANG) == child) {
				child = -1;
				break;
			}
			usleep(10000);
		}
		if (child > 0) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
		}
	}
	if (attached)
		bpf_xdp_detach((int)ifindex, XDP_FLAGS_DRV_MODE, NULL);
	if (system("nft delete table netdev lxbench >/dev/null 2>&1") == 0)
		fprintf(stderr, "bench: removed a leftover table netdev lxbench\n");
	for (int k = 0; k < nrows; k++)
		rx_row_close(&rows[k]);
	if (why[0] && !strstr(why, "interrupted")) {
		rec("tput", "receiver", "na", "%s", why);
		return 1;
	}
	return stop_flag ? 1 : 0;
}

/* ---- control plane ---- */

static int cmd_ctl(int argc, char **argv)
{
	const char *matrix = NULL, *site = NULL, *ifname = NULL, *label = "sfb2015";
	int runs = 5;
	static const struct option opts[] = {
		{ "matrix", required_argument, 0, 'M' }, { "site", required_argument, 0, 'S' },
		{ "ifname", required_argument, 0, 'i' }, { "runs", required_argument, 0, 'r' },
		{ "label", required_argument, 0, 'l' },	 { 0, 0, 0, 0 }
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'M')
			matrix = optarg;
		else if (ch == 'S')
			site = optarg;
		else if (ch == 'i')
			ifname = optarg;
		else if (ch == 'r')
			runs = atoi(optarg);
		else if (ch == 'l')
			label = optarg;
		else
			return 2;
	}
	if (!matrix || !site || !ifname || runs < 1 || runs > MAX_RUNS)
		return 2;
	unsigned ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		rec("ctl", label, "na", "no interface %s here", ifname);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	double a_parse[MAX_RUNS], a_load[MAX_RUNS], a_fill[MAX_RUNS], a_att[MAX_RUNS],
	    a_tot[MAX_RUNS];
	double r_parse[MAX_RUNS], r_load[MAX_RUNS], r_fill[MAX_RUNS], r_swap[MAX_RUNS],
	    r_tot[MAX_RUNS];
	struct text_error err = { { 0 } };
	int rc = 0, done = 0;
	for (int run = 0; run < runs && !stop_flag; run++) {
		struct lx_inst a, b;
		double t0 = now_s();
		if (lx_open(&a, matrix, site, LX_POLICY_ENFORCE, 0, &err) < 0) {
			rec("ctl", label, "na", "%s", err.msg);
			return 1;
		}
		double t1 = now_s();
		int r = bpf_xdp_attach((int)ifindex, a.prog_fd, XDP_FLAGS_DRV_MODE, NULL);
		double t2 = now_s();
		if (r) {
			rec("ctl", label, "na", "attach: %s", strerror(-r));
			lx_close(&a);
			return 1;
		}
		a_parse[run] = a.t_parse * 1e3;
		a_load[run] = a.t_load * 1e3;
		a_fill[run] = a.t_fill * 1e3;
		a_att[run] = (t2 - t1) * 1e3;
		a_tot[run] = (t2 - t0) * 1e3;

		/* Reload: a second instance loaded and filled, then swapped in atomically. */
		double t3 = now_s();
		if (lx_open(&b, matrix, site, LX_POLICY_ENFORCE, 0, &err) < 0) {
			rec("ctl", label, "na", "reload: %s", err.msg);
			rc = 1;
		} else {
			double t4 = now_s();
			LIBBPF_OPTS(bpf_xdp_attach_opts, ro, .old_prog_fd = a.prog_fd);
			r = bpf_xdp_attach((int)ifindex, b.prog_fd,
					   XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &ro);
			double t5 = now_s();
			if (r) {
				rec("ctl", label, "na", "reload swap: %s", strerror(-r));
				rc = 1;
			}
			r_parse[run] = b.t_parse * 1e3;
			r_load[run] = b.t_load * 1e3;
			r_fill[run] = b.t_fill * 1e3;
			r_swap[run] = (t5 - t4) * 1e3;
			r_tot[run] = (t5 - t3) * 1e3;

			if (run == 0 && !r) {
				/* Memory of the instance's maps, as bpftool reports it (memlock).
				 */
				uint32_t ids[64];
				struct bpf_prog_info info = { 0 };
				uint32_t len = sizeof(info);
				info.nr_map_ids = 64;
				info.map_ids = (uint64_t)(uintptr_t)ids;
				long long total = 0;
				if (!bpf_obj_get_info_by_fd(b.prog_fd, &info, &len)) {
					for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++) {
						int fd = bpf_map_get_fd_by_id(ids[i]);
						struct bpf_map_info mi = { 0 };
						uint32_t ml = sizeof(mi);
						if (fd < 0 ||
						    bpf_obj_get_info_by_fd(fd, &mi, &ml)) {
							if (fd >= 0)
								close(fd);
							continue;
						}
						long long ml_bytes = fd_memlock(fd);
						char m[64];
						snprintf(m, sizeof(m), "map:%s", mi.name);
						rec("ctl", label, m,
						    "%lld id=%u type=%u entries=%u", ml_bytes,
						    mi.id, mi.type, mi.max_entries);
						total += ml_bytes > 0 ? ml_bytes : 0;
						close(fd);
					}
					rec("ctl", label, "maps", "%u", info.nr_map_ids);
					rec("ctl", label, "memlock_bytes", "%lld", total);
					rec("ctl", label, "map_ids_first", "%u",
					    info.nr_map_ids ? ids[0] : 0);
				}
				rec("ctl", label, "rules", "%d", a.m->nrules);
				rec("ctl", label, "prefixes", "%d", a.s->nprefixes);
			}
			LIBBPF_OPTS(bpf_xdp_attach_opts, d, .old_prog_fd = b.prog_fd);
			bpf_xdp_detach((int)ifindex, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &d);
			lx_close(&b);
		}
		/* In case the swap failed, the first one may still be attached. */
		LIBBPF_OPTS(bpf_xdp_attach_opts, d2, .old_prog_fd = a.prog_fd);
		bpf_xdp_detach((int)ifindex, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &d2);
		lx_close(&a);
		if (rc)
			return rc;
		done++;
	}
	if (done < runs)
		return 1;
	rec("ctl", label, "attach_parse_ms", "%.2f", median(a_parse, done));
	rec("ctl", label, "attach_load_ms", "%.2f", median(a_load, done));
	rec("ctl", label, "attach_fill_ms", "%.2f", median(a_fill, done));
	rec("ctl", label, "attach_netlink_ms", "%.2f", median(a_att, done));
	rec("ctl", label, "attach_ms", "%.2f", median(a_tot, done));
	rec("ctl", label, "reload_parse_ms", "%.2f", median(r_parse, done));
	rec("ctl", label, "reload_load_ms", "%.2f", median(r_load, done));
	rec("ctl", label, "reload_fill_ms", "%.2f", median(r_fill, done));
	rec("ctl", label, "reload_swap_ms", "%.2f", median(r_swap, done));
	rec("ctl", label, "reload_ms", "%.2f", median(r_tot, done));
	return 0;
}

/* ---- nftables ruleset from the matrix, for the protected roles of the site ---- */

static void fmt_prefix(const struct site_prefix *p, char *buf, size_t len)
{
	site_format_prefix(p, buf, len);
	/* A host is written without its length, as nft prints it. */
	char *slash = strchr(buf, '/');
	if (slash && atoi(slash + 1) == (p->family == 4 ? 32 : 128))
		*slash = '\0';
}

static void fmt_ports(const struct matrix_rule *r, char *buf, size_t len)
{
	if (r->port_lo == r->port_hi)
		snprintf(buf, len, "%u", r->port_lo);
	else
		snprintf(buf, len, "%u-%u", r->port_lo, r->port_hi);
}

static int cmd_nft(int argc, char **argv)
{
	const char *matrix = NULL, *site = NULL, *style = "list", *ifname = NULL;
	static const struct option opts[] = { { "matrix", required_argument, 0, 'M' },
					      { "site", required_argument, 0, 'S' },
					      { "style", required_argument, 0, 's' },
					      { "ifname", required_argument, 0, 'i' },
					      { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'M')
			matrix = optarg;
		else if (ch == 'S')
			site = optarg;
		else if (ch == 's')
			style = optarg;
		else if (ch == 'i')
			ifname = optarg;
		else
			return 2;
	}
	if (!matrix || !site || !ifname)
		return 2;
	struct matrix *m = calloc(1, sizeof(*m));
	struct site *s = calloc(1, sizeof(*s));
	struct text_error err = { { 0 } };
	if (!m || !s || matrix_load(matrix, m, &err) < 0 || site_load(site, m, s, &err) < 0) {
		fprintf(stderr, "bench nft: %s\n", err.msg);
		return 1;
	}
	int set = !strcmp(style, "set");
	char pfx[INET6_ADDRSTRLEN + 8], ports[32];
	int nrules = 0;

	printf("table netdev lxbench {\n\tcounter dropped {\n\t}\n");
	if (set) {
		for (int fam = 4; fam <= 6; fam += 2) {
			printf("\tset allow%d {\n\t\ttype %s . inet_proto . inet_service\n"
			       "\t\tflags interval\n\t\telements = {",
			       fam, fam == 4 ? "ipv4_addr" : "ipv6_addr");
			int first = 1;
			for (int i = 0; i < s->nprefixes; i++) {
				const struct site_prefix *p = &s->prefixes[i];
				uint64_t roles = matrix_role_closure(m, p->roles);
				if (p->family != fam || !(p->roles & s->protected_roles))
					continue;
				site_format_prefix(p, pfx, sizeof(pfx));
				for (int k = 0; k < m->nrules; k++) {
					const struct matrix_rule *r = &m->rules[k];
					if (r->kind != LX_KIND_LISTEN ||
					    !(roles & (1ULL << r->role)))
						continue;
					fmt_ports(r, ports, sizeof(ports));
					printf("%s\n\t\t\t%s . %s . %s", first ? "" : ",", pfx,
					       r->proto == LX_PROTO_TCP ? "tcp" : "udp", ports);
					first = 0;
				}
			}
			printf(" }\n\t}\n");
			printf("\tset prot%d {\n\t\ttype %s\n\t\tflags interval\n\t\telements = {",
			       fam, fam == 4 ? "ipv4_addr" : "ipv6_addr");
			first = 1;
			for (int i = 0; i < s->nprefixes; i++) {
				const struct site_prefix *p = &s->prefixes[i];
				if (p->family != fam || !(p->roles & s->protected_roles))
					continue;
				site_format_prefix(p, pfx, sizeof(pfx));
				printf("%s %s", first ? "" : ",", pfx);
				first = 0;
			}
			printf(" }\n\t}\n");
		}
	}
	printf("\tchain ingress {\n\t\ttype filter hook ingress device \"%s\" priority 0; "
	       "policy accept;\n",
	       ifname);
	if (set) {
		printf("\t\tip daddr . meta l4proto . th dport @allow4 accept\n");
		printf("\t\tip6 daddr . meta l4proto . th dport @allow6 accept\n");
		nrules += 2;
	}
	for (int i = 0; i < s->nprefixes; i++) {
		const struct site_prefix *p = &s->prefixes[i];
		uint64_t roles = matrix_role_closure(m, p->roles);
		if (!(p->roles & s->protected_roles))
			continue;
		const char *ip = p->family == 4 ? "ip" : "ip6";
		fmt_prefix(p, pfx, sizeof(pfx));
		for (int k = 0; !set && k < m->nrules; k++) {
			const struct matrix_rule *r = &m->rules[k];
			if (r->kind != LX_KIND_LISTEN || !(roles & (1ULL << r->role)))
				continue;
			fmt_ports(r, ports, sizeof(ports));
			printf("\t\t%s daddr %s %s dport %s accept\n", ip, pfx,
			       r->proto == LX_PROTO_TCP ? "tcp" : "udp", ports);
			nrules++;
		}
		for (int k = 0; !set && k < m->nicmp; k++) {
			const struct matrix_icmp *ic = &m->icmp[k];
			if (ic->family != p->family)
				continue;
			if (ic->code == MATRIX_ICMP_ANY)
				printf("\t\t%s daddr %s %s type %d accept\n", ip, pfx,
				       p->family == 4 ? "icmp" : "icmpv6", ic->type);
			else
				printf("\t\t%s daddr %s %s type %d %s code %d accept\n", ip, pfx,
				       p->family == 4 ? "icmp" : "icmpv6", ic->type,
				       p->family == 4 ? "icmp" : "icmpv6", ic->code);
			nrules++;
		}
		if (!set) {
			printf("\t\t%s daddr %s counter name \"dropped\" drop\n", ip, pfx);
			nrules++;
		}
	}
	if (set) {
		for (int k = 0; k < m->nicmp; k++) {
			const struct matrix_icmp *ic = &m->icmp[k];
			const char *ip = ic->family == 4 ? "ip" : "ip6";
			const char *t = ic->family == 4 ? "icmp" : "icmpv6";
			if (ic->code == MATRIX_ICMP_ANY)
				printf("\t\t%s daddr @prot%d %s type %d accept\n", ip, ic->family,
				       t, ic->type);
			else
				printf("\t\t%s daddr @prot%d %s type %d %s code %d accept\n", ip,
				       ic->family, t, ic->type, t, ic->code);
			nrules++;
		}
		printf("\t\tip daddr @prot4 counter name \"dropped\" drop\n");
		printf("\t\tip6 daddr @prot6 counter name \"dropped\" drop\n");
		nrules += 2;
	}
	printf("\t}\n}\n");
	fprintf(stderr, "bench nft: %s ruleset, %d rules in the chain\n", style, nrules);
	site_free(s);
	matrix_free(m);
	free(s);
	free(m);
	return 0;
}

/* ---- xdp-filter's port map over whole ranges ---- */

static int cmd_xf_ports(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	struct matrix *m = calloc(1, sizeof(*m));
	struct text_error err = { { 0 } };
	if (!m || matrix_load(argv[1], m, &err) < 0) {
		fprintf(stderr, "bench xf-ports: %s\n", err.msg);
		return 1;
	}
	int fd = bpf_obj_get(argv[2]);
	int n = ncpus();
	if (fd < 0 || n < 0) {
		fprintf(stderr, "bench xf-ports: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	static uint64_t first[MAX_CPUS], cur[MAX_CPUS];
	long written = 0;
	for (int i = 0; i < m->nrules; i++) {
		const struct matrix_rule *r = &m->rules[i];
		uint32_t key = htons(r->port_lo); /* xdp-filter keys ports in network order */
		if (bpf_map_lookup_elem(fd, &key, first) || !first[0]) {
			fprintf(stderr,
				"bench xf-ports: port %u has no value: run xdp-filter port first\n",
				r->port_lo);
			return 1;
		}
		for (uint32_t p = r->port_lo + 1u; p <= r->port_hi; p++) {
			key = htons((uint16_t)p);
			if (bpf_map_lookup_elem(fd, &key, cur))
				return 1;
			for (int c = 0; c < n; c++)
				cur[c] |= first[c];
			if (bpf_map_update_elem(fd, &key, cur, BPF_ANY))
				return 1;
			written++;
		}
	}
	fprintf(stderr, "bench xf-ports: %ld port entries written\n", written);
	matrix_free(m);
	free(m);
	return 0;
}

/* ---- generated matrices and sites for the scaling rows ---- */

/* The rules the mix needs, whatever the size: every matrix classifies the mix alike. */
static const char *core_rules[] = {
	"rule frontend sip-tls tcp 5061 seed:004",
	"rule edge-external sip-tls tcp 5061 derived:001",
	"rule edge-external stun udp 3478 derived:001",
	"rule edge-internal sip-tls tcp 5061 derived:001",
	"rule all-servers media-audio udp 49152-57500 seed:004",
	"rule frontend media-video udp 57501-65535 seed:004",
	"outbound edge-external edge-media-relay udp from 50000-59999 derived:001",
	"rule clients client-media tcp 1024-65535 seed:004",
	"rule clients client-media udp 1024-65535 seed:004",
	"rule frontend web-http tcp 80 seed:004",
};
#define NCORE ((int)(sizeof(core_rules) / sizeof(core_rules[0])))

static int cmd_gen_matrix(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int n = atoi(argv[2]);
	FILE *f = fopen(argv[1], "r");
	char line[4096];
	if (!f || n < NCORE || n >= LX_MAX_RULES) {
		fprintf(stderr, "bench gen-matrix: need a base matrix and %d..%d rules\n", NCORE,
			LX_MAX_RULES - 1);
		return 1;
	}
	/* Everything but the base's rules: product, roles, services, ICMP. */
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "rule ", 5) && strncmp(line, "outbound ", 9))
			fputs(line, stdout);
	fclose(f);
	printf("\n# generated by tests/bench/bench.c gen-matrix: %d rules\n", n);
	for (int i = 0; i < NCORE; i++)
		puts(core_rules[i]);
	/* Padding: roles of the site, ports 6000-39999 (the mix never uses them), single ports
	 * and small ranges, each (role, proto, range) once. */
	static const char *roles[] = { "frontend",  "edge-external", "edge-internal",
				       "clients",   "frontend-lb",   "director",
				       "mediation", "reverse-proxy" };
	const int nroles = 8;
	for (int i = 0; i < n - NCORE; i++) {
		int combo = i % (nroles * 2), slot = i / (nroles * 2);
		int lo = 6000 + slot * 2, hi = slot % 4 == 3 ? lo + 1 : lo;
		if (hi > 39999)
			return 1;
		char ports[32];
		if (hi > lo)
			snprintf(ports, sizeof(ports), "%d-%d", lo, hi);
		else
			snprintf(ports, sizeof(ports), "%d", lo);
		printf("rule %s web-https %s %s seed:004\n", roles[combo / 2],
		       combo % 2 ? "udp" : "tcp", ports);
	}
	return 0;
}

static int cmd_gen_site(int argc, char **argv)
{
	int inside = argc > 1 && !strcmp(argv[1], "--inside");
	if (inside) {
		argc--;
		argv++;
	}
	if (argc < 2)
		return 2;
	int n = atoi(argv[1]);
	static const char *base[] = {
		"frontend 192.0.2.11",		 "frontend 2001:db8:10::11",
		"frontend-lb 192.0.2.10",	 "edge-internal 198.51.100.10",
		"edge-external 203.0.113.10",	 "edge-external 203.0.113.12",
		"edge-external 2001:db8:ff::12", "clients 192.0.2.128/25",
		"clients 192.0.2.64/26",	 "clients 2001:db8:20::/64",
	};
	const int nbase = 10;
	if (n < nbase || n > LX_MAX_PREFIXES) {
		fprintf(stderr, "bench gen-site: %d..%d prefixes\n", nbase, LX_MAX_PREFIXES);
		return 1;
	}
	printf("# generated by tests/bench/bench.c gen-site: %d prefixes\n", n);
	for (int i = 0; i < nbase; i++)
		puts(base[i]);
	for (int i = 0; i < argc - 2; i++)
		puts(argv[2 + i]); /* extra lines such as "protect ..." */
	/* Padding, disjoint from the base and from each other: 40% IPv4 hosts, 30% IPv4 /28s,
	 * 15% IPv6 hosts, 15% IPv6 /64s. Hosts are servers, prefixes client subnets. */
	for (int i = 0; inside && i < n - nbase; i++) {
		/* --inside: around the frames' own addresses, never covering one of them: IPv4
		 * hosts in 198.51/16 and 203.0/16 and /28s in 192.0/13, skipping the frames' /24s
		 * (192.0.2, 198.51.100, 203.0.113); IPv6 hosts in 2001:db8:10::/64 and
		 * 2001:db8:ff::/64 above ::1:0, /64s in 2001:db8:20::/48 but its first. The trie
		 * lookups of the frames then descend through the padding. */
		int k = i / 20, r = i % 20;
		if (r < 8) {
			int h = k * 8 + r, net = h >> 8;
			net += net >= 100; /* 198.51.100 */
			if (net < 255)
				printf("frontend 198.51.%d.%d\n", net, h & 255);
			else
				printf("frontend 203.0.%d.%d\n", (net - 255) + ((net - 255) >= 113),
				       h & 255);
		} else if (r < 14) {
			int h = k * 6 + (r - 8), net = h >> 4;
			net += net >= 2; /* 192.0.2 */
			printf("clients 192.%d.%d.%d/28\n", net >> 8, net & 255, (h & 15) << 4);
		} else if (r < 17) {
			int h = k * 3 + (r - 14);
			printf("frontend 2001:db8:%s::1:%x\n", h & 1 ? "ff" : "10", h >> 1);
		} else {
			int h = k * 3 + (r - 17);
			printf("clients 2001:db8:20:%x::/64\n", h + 1);
		}
	}
	for (int i = 0; !inside && i < n - nbase; i++) {
		int k = i / 20, r = i % 20;
		if (r < 8) {
			int h = k * 8 + r;
			printf("frontend 10.%d.%d.%d\n", h >> 16, (h >> 8) & 255, h & 255);
		} else if (r < 14) {
			int h = k * 6 + (r - 8);
			printf("clients 10.%d.%d.%d/28\n", 64 + (h >> 12), (h >> 4) & 255,
			       (h & 15) << 4);
		} else if (r < 17) {
			int h = k * 3 + (r - 14);
			printf("frontend 2001:db8:1000::%x:%x\n", h >> 16, h & 0xffff);
		} else {
			int h = k * 3 + (r - 17);
			printf("clients 2001:db8:2000:%x::/64\n", h);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr,
			"usage: bench cost|tput|ctl|nft|xf-ports|gen-matrix|gen-site ...\n");
		return 2;
	}
	libbpf_set_print(NULL);
	const char *cmd = argv[1];
	argc--;
	argv++;
	if (!strcmp(cmd, "cost"))
		return cmd_cost(argc, argv);
	if (!strcmp(cmd, "tput"))
		return cmd_tput(argc, argv);
	if (!strcmp(cmd, "ctl"))
		return cmd_ctl(argc, argv);
	if (!strcmp(cmd, "nft"))
		return cmd_nft(argc, argv);
	if (!strcmp(cmd, "xf-ports"))
		return cmd_xf_ports(argc, argv);
	if (!strcmp(cmd, "gen-matrix"))
		return cmd_gen_matrix(argc, argv);
	if (!strcmp(cmd, "gen-site"))
		return cmd_gen_site(argc, argv);
	fprintf(stderr, "bench: unknown command %s\n", cmd);
	return 2;
}

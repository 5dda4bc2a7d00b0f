// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Counters are labelled by interface, role, service, proto, ports, kind and direction; the
 * kind label keeps a role's listen rule and its outbound rule on the same port apart.
 * Values are the kernel's own monotonic counters: they never go backwards across reloads.
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "matrix.h"
#include "media.h"
#include "pins.h"
#include "stats.h"
#include "streams.h"

#ifndef LYNCXDP_VERSION
#define LYNCXDP_VERSION "0"
#endif

/* Label values are slugs and interface names, but escape per the format all the same. */
static void label(FILE *out, const char *name, const char *value, int first)
{
	fprintf(out, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', out);
		if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void header(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct iface_report {
	const struct lx_iface_state *ifs;
	struct stats_report r;
};

static void rule_labels(FILE *out, const char *ifname, const struct stats_row *row)
{
	char ports[16];
	if (row->info.port_lo == row->info.port_hi)
		snprintf(ports, sizeof(ports), "%u", row->info.port_lo);
	else
		snprintf(ports, sizeof(ports), "%u-%u", row->info.port_lo, row->info.port_hi);
	label(out, "interface", ifname, 1);
	label(out, "role", row->info.role, 0);
	label(out, "service", row->info.service, 0);
	label(out, "proto", matrix_proto_name(row->info.proto), 0);
	label(out, "ports", ports, 0);
	label(out, "kind", matrix_kind_name(row->info.kind), 0);
	label(out, "direction", stats_dir_name(row->dir), 0);
}

/* What a family of per-rule metrics counts: packets or bytes of ... */
enum rule_values {
	RULE_COUNT,	  /* everything the rule classified */
	RULE_REMARKED,	  /* DSCP rewritten by the tag mode */
	RULE_MEDIA,	  /* media services: by what their packets carried (label media) */
	RULE_CONFORMANCE, /* services with a DSCP: by the DSCP they arrived with, as a class */
};

/* One family of per-rule (and direction) metrics. */
static void rule_metric(FILE *out, const struct iface_report *ir, int n, const char *name,
			const char *help, enum rule_values what, int bytes)
{
	int nclass = what == RULE_MEDIA ? LX_MEDIA_MAX : what == RULE_CONFORMANCE ? LX_CONF_MAX : 1;
	header(out, name, "counter", help);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < ir[i].r.nrows; k++) {
			const struct stats_row *row = &ir[i].r.rows[k];
			if ((what == RULE_MEDIA && !row->info.media) ||
			    (what == RULE_CONFORMANCE && row->info.dscp == LX_DSCP_KEEP))
				continue;
			for (int c = 0; c < nclass; c++) {
				const struct lx_count *v = what == RULE_COUNT	   ? &row->count
							   : what == RULE_REMARKED ? &row->remarked
							   : what == RULE_MEDIA
							       ? &row->media[c]
							       : &row->conformance[c];
				fprintf(out, "%s{", name);
				rule_labels(out, ir[i].ifs->name, row);
				if (what == RULE_MEDIA)
					label(out, "media", media_kind_name(c), 0);
				else if (what == RULE_CONFORMANCE)
					label(out, "conformance",
					      stats_conformance_name((uint32_t)c), 0);
				fprintf(out, "} %llu\n",
					(unsigned long long)(bytes ? v->bytes : v->packets));
			}
		}
}

static void special_metric(FILE *out, const struct iface_report *ir, int n, int bytes)
{
	const char *name =
	    bytes ? "lyncxdp_unmatched_bytes_total" : "lyncxdp_unmatched_packets_total";
	header(out, name, "counter",
	       bytes ? "Bytes of packets no rule matched, by reason."
		     : "Packets no rule matched, by reason (unclassified, non_ip, fragments, icmp, "
		       "other_l4, malformed).");
	for (int i = 0; i < n; i++)
		for (int c = 0; c < LX_CNT_MAX; c++) {
			fprintf(out, "%s{", name);
			label(out, "interface", ir[i].ifs->name, 1);
			label(out, "reason", stats_counter_name(c), 0);
			const struct lx_count *v = &ir[i].r.special[c];
			fprintf(out, "} %llu\n",
				(unsigned long long)(bytes ? v->bytes : v->packets));
		}
}

static void drop_metric(FILE *out, const struct iface_report *ir, int n, int bytes)
{
	const char *name = bytes ? "lyncxdp_policy_bytes_total" : "lyncxdp_policy_packets_total";
	header(out, name, "counter",
	       bytes
		   ? "Bytes of packets to protected addresses the policy dropped "
		     "(action=dropped, enforce) or would drop (action=would_drop, monitor), by "
		     "reason."
		   : "Packets to protected addresses the policy dropped (action=dropped, enforce) "
		     "or would drop (action=would_drop, monitor), by reason.");
	for (int i = 0; i < n; i++)
		for (uint32_t reason = 1; reason < LX_DROP_MAX; reason++)
			for (int enforced = 1; enforced >= 0; enforced--) {
				const struct lx_count *v =
				    enforced ? &ir[i].r.drops[reason] : &ir[i].r.would_drop[reason];
				fprintf(out, "%s{", name);
				label(out, "interface", ir[i].ifs->name, 1);
				label(out, "reason", stats_reason_name(reason), 0);
				label(out, "action", enforced ? "dropped" : "would_drop", 0);
				fprintf(out, "} %llu\n",
					(unsigned long long)(bytes ? v->bytes : v->packets));
			}
}

static void info_metrics(FILE *out, const struct lx_state *st, const struct iface_report *ir, int n)
{
	char hash[32];
	header(out, "lyncxdp_info", "gauge",
	       "What lyncxdp runs: product and checksums of the files.");
	fprintf(out, "lyncxdp_info{");
	label(out, "version", LYNCXDP_VERSION, 1);
	label(out, "product", st->product, 0);
	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)st->matrix_hash);
	label(out, "matrix_hash", hash, 0);
	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)st->site_hash);
	label(out, "site_hash", hash, 0);
	fprintf(out, "} 1\n");
	header(out, "lyncxdp_attached", "gauge", "One per attached interface, with its settings.");
	for (int i = 0; i < n; i++) {
		fprintf(out, "lyncxdp_attached{");
		label(out, "interface", ir[i].ifs->name, 1);
		label(out, "mode", pins_mode_name(ir[i].ifs->mode), 0);
		label(out, "policy", pins_policy_name(ir[i].ifs->policy), 0);
		label(out, "tag", ir[i].ifs->tag ? "on" : "off", 0);
		fprintf(out, "} 1\n");
	}
	header(out, "lyncxdp_rules", "gauge", "Rules of the matrix whose role the site holds.");
	fprintf(out, "lyncxdp_rules %u\n", st->rules_active);
}

/* lx_flows: what `status` shows, so that a fleet can alert before live flows are evicted. */
static void flow_metrics(FILE *out, const struct pins_flow_usage *fu)
{
	const struct {
		const char *name, *type, *help;
		unsigned long long value;
	} rows[] = {
		{ "lyncxdp_flows", "gauge", "Entries in the flow table of protected hosts.",
		  fu->entries },
		{ "lyncxdp_flows_live", "gauge", "Flow table entries not yet timed out.",
		  fu->live },
		{ "lyncxdp_flows_max", "gauge",
		  "Capacity of the flow table (the site's flows line).", fu->max },
		{ "lyncxdp_flows_opened_total", "counter", "Flows opened by protected hosts.",
		  fu->opened },
		{ "lyncxdp_flows_evicted_total", "counter",
		  "Live flows replaced by new ones in a full set of the flow table.", fu->evicted },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		header(out, rows[i].name, rows[i].type, rows[i].help);
		fprintf(out, "%s %llu\n", rows[i].name, rows[i].value);
	}
}

/* ---- RTP streams: per interface, service, direction and media type, never per stream ---- */

static const double loss_buckets[] = { 0.001, 0.01, 0.02, 0.05, 0.1, 0.2 };
static const double jitter_buckets[] = { 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1 }; /* s */
#define NLOSS	(sizeof(loss_buckets) / sizeof(loss_buckets[0]))
#define NJITTER (sizeof(jitter_buckets) / sizeof(jitter_buckets[0]))

struct stream_group {
	const char *ifname;
	struct lx_rule_info info;
	uint8_t dir, kind;
	uint64_t streams, poor;
	uint64_t loss_le[NLOSS], jitter_le[NJITTER];
	double loss_sum, jitter_sum;
};

static void group_labels(FILE *out, const struct stream_group *g)
{
	label(out, "interface", g->ifname, 1);
	label(out, "role", g->info.role, 0);
	label(out, "service", g->info.service, 0);
	label(out, "direction", stats_dir_name(g->dir), 0);
	label(out, "media", media_kind_name(g->kind), 0);
}

static void histogram(FILE *out, const char *name, const struct stream_group *g, int n, int jitter)
{
	for (int i = 0; i < n; i++) {
		size_t nb = jitter ? NJITTER : NLOSS;
		for (size_t b = 0; b <= nb; b++) {
			fprintf(out, "%s_bucket{", name);
			group_labels(out, &g[i]);
			if (b < nb)
				fprintf(out, ",le=\"%g\"} %llu\n",
					jitter ? jitter_buckets[b] : loss_buckets[b],
					(unsigned long long)(jitter ? g[i].jitter_le[b]
								    : g[i].loss_le[b]));
			else
				fprintf(out, ",le=\"+Inf\"} %llu\n",
					(unsigned long long)g[i].streams);
		}
		fprintf(out, "%s_sum{", name);
		group_labels(out, &g[i]);
		fprintf(out, "} %.6f\n%s_count{", jitter ? g[i].jitter_sum : g[i].loss_sum, name);
		group_labels(out, &g[i]);
		fprintf(out, "} %llu\n", (unsigned long long)g[i].streams);
	}
}

/* Streams per group, or (poor) those of them poor by CQD's thresholds. */
static void stream_gauge(FILE *out, const char *name, const char *help,
			 const struct stream_group *g, int ng, int poor)
{
	header(out, name, "gauge", help);
	for (int i = 0; i < ng; i++) {
		fprintf(out, "%s{", name);
		group_labels(out, &g[i]);
		fprintf(out, "} %llu\n", (unsigned long long)(poor ? g[i].poor : g[i].streams));
	}
}

static void stream_metrics(FILE *out, const struct lx_state *st, const struct lx_map_fds *fds,
			   const struct iface_report *ir, int n)
{
	struct text_error err;
	static struct media_table media;
	char path[512];
	const struct media_table *t = NULL;
	if (media_find(st->matrix, path, sizeof(path)) == 0 && media_load(path, &media, &err) == 0)
		t = &media;
	struct stream_group *g = NULL;
	int ng = 0, cap = 0;
	for (int i = 0; i < n; i++) {
		struct streams_report r;
		int slot = (int)(ir[i].ifs - st->ifaces);
		if (streams_collect(fds->streams, fds->rule_info, t, 1u << slot, &r, &err) < 0)
			continue;
		for (int k = 0; k < r.n; k++) {
			const struct stream_row *row = &r.rows[k];
			int j = 0;
			while (j < ng && !(g[j].ifname == ir[i].ifs->name &&
					   g[j].dir == row->st.dir && g[j].kind == row->st.kind &&
					   !strcmp(g[j].info.role, row->info.role) &&
					   !strcmp(g[j].info.service, row->info.service)))
				j++;
			if (j == ng) {
				if (ng == cap) {
					cap = cap ? cap * 2 : 16;
					struct stream_group *ng2 =
					    realloc(g, (size_t)cap * sizeof(*g));
					if (!ng2)
						break;
					g = ng2;
				}
				memset(&g[ng], 0, sizeof(g[ng]));
				g[ng].ifname = ir[i].ifs->name;
				g[ng].info = row->info;
				g[ng].dir = row->st.dir;
				g[ng].kind = row->st.kind;
				ng++;
			}
			struct stream_group *x = &g[j];
			x->streams++;
			x->poor += !strcmp(row->verdict, "poor");
			x->loss_sum += row->loss;
			x->jitter_sum += row->jitter_ms / 1000.0;
			for (size_t b = 0; b < NLOSS; b++)
				x->loss_le[b] += row->loss <= loss_buckets[b];
			for (size_t b = 0; b < NJITTER; b++)
				x->jitter_le[b] += row->jitter_ms / 1000.0 <= jitter_buckets[b];
		}
		streams_free(&r);
	}
	stream_gauge(out, "lyncxdp_rtp_streams",
		     "RTP streams of media services in the stream table now, per service, "
		     "direction and media type.",
		     g, ng, 0);
	stream_gauge(out, "lyncxdp_rtp_poor_streams",
		     "Of those, streams poor by Microsoft's CQD thresholds (maps/media).", g, ng,
		     1);
	header(out, "lyncxdp_rtp_stream_loss_ratio", "histogram",
	       "Packet loss ratio (RFC 3550 A.3) of the streams in the table now.");
	histogram(out, "lyncxdp_rtp_stream_loss_ratio", g, ng, 0);
	header(out, "lyncxdp_rtp_stream_jitter_seconds", "histogram",
	       "Interarrival jitter (RFC 3550 A.8), seconds, of the streams in the table now.");
	histogram(out, "lyncxdp_rtp_stream_jitter_seconds", g, ng, 1);
	free(g);
}

int metrics_write(FILE *out, struct text_error *err)
{
	struct lx_state st;
	int attached = pins_state_read(&st, err);
	if (attached < 0)
		return -1;
	if (!attached) {
		header(out, "lyncxdp_rules", "gauge",
		       "Rules of the matrix whose role the site holds.");
		fprintf(out, "lyncxdp_rules 0\n");
		return 0;
	}
	struct lx_map_fds fds;
	struct iface_report ir[LX_MAX_IFACES];
	struct pins_flow_usage fu;
	int n = 0, rc = 0;
	if (pins_flow_usage(&fu, err) < 0)
		return -1;
	if (pins_open(&fds, err) < 0)
		return -1;
	for (int slot = 0; slot < LX_MAX_IFACES && rc == 0; slot++) {
		if (!st.ifaces[slot].ifindex)
			continue;
		ir[n].ifs = &st.ifaces[slot];
		rc = stats_collect(&fds, st.rule_cap, st.max_rule_id, 1u << slot, &ir[n].r, err);
		if (rc == 0)
			n++;
	}
	if (rc == 0) {
		info_metrics(out, &st, ir, n);
		flow_metrics(out, &fu);
		rule_metric(out, ir, n, "lyncxdp_packets_total", "Packets per rule and direction.",
			    RULE_COUNT, 0);
		rule_metric(out, ir, n, "lyncxdp_bytes_total",
			    "Bytes (whole frames) per rule and direction.", RULE_COUNT, 1);
		rule_metric(out, ir, n, "lyncxdp_remarked_packets_total",
			    "Packets whose DSCP the tag mode rewrote.", RULE_REMARKED, 0);
		rule_metric(out, ir, n, "lyncxdp_media_packets_total",
			    "Packets of media services' UDP packets by what they carry (label "
			    "media: stun, audio, video, sharing, rtcp, dtls, other).",
			    RULE_MEDIA, 0);
		rule_metric(
		    out, ir, n, "lyncxdp_media_bytes_total",
		    "Bytes of media services' UDP packets by what they carry (label media).",
		    RULE_MEDIA, 1);
		rule_metric(out, ir, n, "lyncxdp_dscp_packets_total",
			    "Classified packets by the DSCP they arrived with: the service's "
			    "(expected), 0 (zero) or another (other); rules whose service has a "
			    "DSCP only.",
			    RULE_CONFORMANCE, 0);
		special_metric(out, ir, n, 0);
		special_metric(out, ir, n, 1);
		drop_metric(out, ir, n, 0);
		drop_metric(out, ir, n, 1);
		stream_metrics(out, &st, &fds, ir, n);
	}
	for (int i = 0; i < n; i++)
		stats_free(&ir[i].r);
	pins_close(&fds);
	return rc;
}

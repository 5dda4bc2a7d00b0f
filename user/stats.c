// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "json.h"
#include "matrix.h"
#include "media.h"

/* Counter names as shown to users (table and JSON keys); indexed by enum lx_counter. */
static const char *const counter_names[LX_CNT_MAX] = {
	[LX_CNT_UNCLASSIFIED] = "unclassified", [LX_CNT_NON_IP] = "non_ip",
	[LX_CNT_FRAGMENT] = "fragments",	[LX_CNT_ICMP] = "icmp",
	[LX_CNT_OTHER_L4] = "other_l4",		[LX_CNT_MALFORMED] = "malformed",
};

/* Drop reasons as shown to users; indexed by enum lx_drop_reason. */
static const char *const reason_names[LX_DROP_MAX] = {
	[LX_DROP_NONE] = "none",
	[LX_DROP_PORT] = "port",
	[LX_DROP_TRANSPORT] = "transport",
	[LX_DROP_UNSOLICITED] = "unsolicited",
	[LX_DROP_FRAGMENT] = "fragment",
	[LX_DROP_MALFORMED] = "malformed",
	[LX_DROP_SPOOFED] = "spoofed",
	[LX_DROP_SOURCE] = "source",
	[LX_DROP_ICMP_UNRELATED] = "icmp-unrelated",
	[LX_DROP_ICMP_OFFLINK] = "icmp-offlink",
};

/* QoS conformance classes as shown to users; indexed by enum lx_conformance. */
static const char *const conformance_names[LX_CONF_MAX] = {
	[LX_CONF_EXPECTED] = "expected",
	[LX_CONF_ZERO] = "zero",
	[LX_CONF_OTHER] = "other",
};

const char *stats_conformance_name(uint32_t conformance)
{
	return text_name(conformance_names, LX_CONF_MAX, conformance);
}

double stats_conformance_share(const struct stats_row *row)
{
	uint64_t all = 0;
	for (int k = 0; k < LX_CONF_MAX; k++)
		all += row->conformance[k].packets;
	return all ? (double)row->conformance[LX_CONF_EXPECTED].packets / (double)all : -1;
}

const char *stats_reason_name(uint32_t reason)
{
	return text_name(reason_names, LX_DROP_MAX, reason);
}

const char *stats_counter_name(int counter)
{
	return text_name(counter_names, LX_CNT_MAX, counter);
}

const char *stats_dir_name(uint32_t dir)
{
	return dir == LX_DIR_IN ? "in" : "out";
}

void stats_free(struct stats_report *r)
{
	free(r->rows);
	memset(r, 0, sizeof(*r));
}

/*
 * Sum of one per-CPU counter whose value starts with packets and bytes: a struct lx_count,
 * or lx_drops' struct lx_drop_count; `stride` is the value's size.
 */
static int read_sum(int fd, uint32_t key, void *percpu, size_t stride, int ncpu,
		    struct lx_count *sum)
{
	if (bpf_map_lookup_elem(fd, &key, percpu))
		return -1;
	for (int i = 0; i < ncpu; i++) {
		struct lx_count c;
		memcpy(&c, (const char *)percpu + (size_t)i * stride, sizeof(c));
		sum->packets += c.packets;
		sum->bytes += c.bytes;
	}
	return 0;
}

static int read_count(int fd, uint32_t key, struct lx_count *percpu, int ncpu, struct lx_count *sum)
{
	return read_sum(fd, key, percpu, sizeof(*percpu), ncpu, sum);
}

int stats_collect(const struct lx_map_fds *fds, uint32_t rule_cap, uint32_t nrules,
		  uint32_t slot_mask, struct stats_report *r, struct text_error *err)
{
	int ncpu = libbpf_num_possible_cpus();
	memset(r, 0, sizeof(*r));
	struct lx_count *percpu = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*percpu));
	struct lx_drop_count *drops = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*drops));
	r->rows = calloc((size_t)nrules * LX_DIR_MAX + 1, sizeof(*r->rows));
	if (ncpu <= 0 || !percpu || !drops || !r->rows) {
		free(percpu);
		free(drops);
		stats_free(r);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	int rc = 0;
	for (uint32_t rule = 1; rc == 0 && rule <= nrules && rule < rule_cap; rule++) {
		struct lx_rule_info info;
		if (bpf_map_lookup_elem(fds->rule_info, &rule, &info)) {
			rc = -1;
			break;
		}
		if (!info.active)
			continue;
		for (uint32_t dir = 0; dir < LX_DIR_MAX; dir++) {
			struct stats_row *row = &r->rows[r->nrows++];
			row->rule = rule;
			row->dir = dir;
			row->info = info;
			for (uint32_t slot = 0; rc == 0 && slot < LX_MAX_IFACES; slot++) {
				if (!(slot_mask & (1u << slot)))
					continue;
				uint32_t idx = lx_rule_counter_index(slot, rule_cap, rule, dir);
				rc = read_count(fds->counters, idx, percpu, ncpu, &row->count);
				if (rc == 0)
					rc = read_count(fds->remarked, idx, percpu, ncpu,
							&row->remarked);
				for (uint32_t k = 0;
				     rc == 0 && info.media && fds->media >= 0 && k < LX_MEDIA_MAX;
				     k++)
					rc = read_count(
					    fds->media,
					    lx_media_counter_index(slot, rule_cap, rule, dir, k),
					    percpu, ncpu, &row->media[k]);
				for (uint32_t k = 0; rc == 0 && fds->conformance >= 0 &&
						     info.dscp != LX_DSCP_KEEP && k < LX_CONF_MAX;
				     k++)
					rc = read_count(fds->conformance,
							lx_conformance_index(idx, k), percpu, ncpu,
							&row->conformance[k]);
			}
			r->total.packets += row->count.packets;
			r->total.bytes += row->count.bytes;
		}
	}
	for (uint32_t cnt = 0; rc == 0 && cnt < LX_CNT_MAX; cnt++) {
		for (uint32_t slot = 0; rc == 0 && slot < LX_MAX_IFACES; slot++)
			if (slot_mask & (1u << slot))
				rc = read_count(fds->special, lx_special_counter_index(slot, cnt),
						percpu, ncpu, &r->special[cnt]);
		r->total.packets += r->special[cnt].packets;
		r->total.bytes += r->special[cnt].bytes;
	}
	/* Drops by reason; those no rule matched count in their class too (the program counts
	 * a refused packet once, with its reason: lx_drop_counter_index). */
	for (uint32_t reason = 1; rc == 0 && reason < LX_DROP_MAX; reason++)
		for (uint32_t slot = 0; rc == 0 && slot < LX_MAX_IFACES; slot++)
			for (uint32_t enforced = 0; rc == 0 && enforced < 2; enforced++)
				for (uint32_t class = 0; rc == 0 && (slot_mask & (1u << slot)) &&
							 class < LX_DROP_CLASSES;
				     class ++) {
					struct lx_count c = { 0 };
					rc = read_sum(
					    fds->drops,
					    lx_drop_counter_index(slot, reason, enforced, class),
					    drops, sizeof(*drops), ncpu, &c);
					struct lx_count *to =
					    enforced ? &r->drops[reason] : &r->would_drop[reason];
					to->packets += c.packets;
					to->bytes += c.bytes;
					if (class == LX_DROP_CLASS_RULE)
						continue;
					r->special[class].packets += c.packets;
					r->special[class].bytes += c.bytes;
					r->total.packets += c.packets;
					r->total.bytes += c.bytes;
				}
	free(percpu);
	free(drops);
	if (rc) {
		snprintf(err->msg, sizeof(err->msg), "reading counters: %s", strerror(errno));
		stats_free(r);
	}
	return rc;
}

static void format_ports(const struct lx_rule_info *info, char *buf, size_t len)
{
	if (info->port_lo == info->port_hi)
		snprintf(buf, len, "%u", info->port_lo);
	else
		snprintf(buf, len, "%u-%u", info->port_lo, info->port_hi);
}

static double rate(uint64_t now, uint64_t before, double interval)
{
	return now >= before ? (double)(now - before) / interval : 0.0;
}

static void json_count(struct json_writer *w, const struct lx_count *c,
		       const struct lx_count *before, double interval)
{
	json_object_begin(w);
	json_kv_uint(w, "packets", c->packets);
	json_kv_uint(w, "bytes", c->bytes);
	if (before) {
		json_kv_fixed(w, "packets_per_second", 1,
			      rate(c->packets, before->packets, interval));
		json_kv_fixed(w, "bytes_per_second", 1, rate(c->bytes, before->bytes, interval));
	}
	json_object_end(w);
}

/* One count per name: {"name": {"packets", "bytes"}, ...}. */
static void json_counts(struct json_writer *w, const struct lx_count *c, uint32_t from, uint32_t to,
			const char *(*name)(uint32_t))
{
	json_object_begin(w);
	for (uint32_t k = from; k < to; k++) {
		json_key(w, name(k));
		json_count(w, &c[k], NULL, 0);
	}
	json_object_end(w);
}

static const char *media_name(uint32_t k)
{
	return media_kind_name((int)k);
}

static void json_row(struct json_writer *w, const struct stats_row *row,
		     const struct stats_row *before, double interval)
{
	char ports[16];
	format_ports(&row->info, ports, sizeof(ports));
	json_object_begin(w);
	json_kv_uint(w, "rule", row->rule);
	json_kv_str(w, "role", row->info.role);
	json_kv_str(w, "service", row->info.service);
	json_kv_str(w, "name", row->info.name);
	json_kv_str(w, "proto", matrix_proto_name(row->info.proto));
	json_kv_str(w, "ports", ports);
	json_kv_str(w, "direction", stats_dir_name(row->dir));
	json_kv_str(w, "kind", matrix_kind_name(row->info.kind));
	json_kv_uint(w, "packets", row->count.packets);
	json_kv_uint(w, "bytes", row->count.bytes);
	json_kv_uint(w, "remarked_packets", row->remarked.packets);
	json_kv_uint(w, "remarked_bytes", row->remarked.bytes);
	json_key(w, "dscp");
	if (row->info.dscp == LX_DSCP_KEEP) {
		json_null(w);
		json_key(w, "conformance");
		json_null(w);
	} else {
		json_uint(w, row->info.dscp);
		json_key(w, "conformance");
		json_counts(w, row->conformance, 0, LX_CONF_MAX, stats_conformance_name);
	}
	if (before) {
		json_kv_fixed(w, "packets_per_second", 1,
			      rate(row->count.packets, before->count.packets, interval));
		json_kv_fixed(w, "bytes_per_second", 1,
			      rate(row->count.bytes, before->count.bytes, interval));
	}
	if (row->info.media) {
		json_key(w, "media");
		json_counts(w, row->media, 0, LX_MEDIA_MAX, media_name);
	}
	json_object_end(w);
}

void stats_print_json_members(struct json_writer *w, const struct stats_report *r,
			      const struct stats_print_opts *o)
{
	const struct stats_report *prev = o->interval > 0 ? o->prev : NULL;
	json_key(w, "services");
	json_array_begin(w);
	for (int i = 0; i < r->nrows; i++) {
		json_break(w, "\n  ");
		json_row(w, &r->rows[i], prev && prev->nrows == r->nrows ? &prev->rows[i] : NULL,
			 o->interval);
	}
	json_break(w, "\n");
	json_array_end(w);
	for (int c = 0; c < LX_CNT_MAX; c++) {
		json_break(w, "\n");
		json_key(w, counter_names[c]);
		json_count(w, &r->special[c], prev ? &prev->special[c] : NULL, o->interval);
	}
	json_break(w, "\n");
	json_key(w, "total");
	json_count(w, &r->total, prev ? &prev->total : NULL, o->interval);
	json_break(w, "\n");
	json_key(w, "drops");
	json_counts(w, r->drops, 1, LX_DROP_MAX, stats_reason_name);
	json_break(w, "\n");
	json_key(w, "would_drop");
	json_counts(w, r->would_drop, 1, LX_DROP_MAX, stats_reason_name);
}

static void print_json(FILE *out, const struct stats_report *r, const struct stats_print_opts *o)
{
	struct json_writer w;
	json_begin(&w, out);
	stats_print_json_members(&w, r, o);
	json_end(&w);
}

/* "5061", "50000-59999", "to 53" for outbound-to, "from 50000-59999" for outbound-from. */
static void format_rule_ports(const struct lx_rule_info *info, char *buf, size_t len)
{
	char ports[16];
	format_ports(info, ports, sizeof(ports));
	snprintf(buf, len, "%s%s",
		 info->kind == LX_KIND_OUTBOUND_TO     ? "to "
		 : info->kind == LX_KIND_OUTBOUND_FROM ? "from "
						       : "",
		 ports);
}

static void print_drops_table(FILE *out, const struct stats_report *r)
{
	uint64_t any = 0;
	for (int k = 1; k < LX_DROP_MAX; k++)
		any |= r->drops[k].packets | r->would_drop[k].packets;
	if (!any)
		return;
	fprintf(out, "\n%-20s %12s %14s %12s %14s\n", "POLICY REASON", "DROPPED", "BYTES",
		"WOULD DROP", "BYTES");
	for (int k = 1; k < LX_DROP_MAX; k++)
		fprintf(out, "%-20s %12llu %14llu %12llu %14llu\n", reason_names[k],
			(unsigned long long)r->drops[k].packets,
			(unsigned long long)r->drops[k].bytes,
			(unsigned long long)r->would_drop[k].packets,
			(unsigned long long)r->would_drop[k].bytes);
}

/* Under a media service's row: what its UDP packets carried, kinds that counted something. */
static void print_media_line(FILE *out, const struct stats_row *row)
{
	if (!row->info.media)
		return;
	int any = 0;
	for (int k = 0; k < LX_MEDIA_MAX; k++) {
		if (!row->media[k].packets)
			continue;
		fprintf(out, "%s %s %llu", any ? "," : "  media:", media_kind_name(k),
			(unsigned long long)row->media[k].packets);
		any = 1;
	}
	if (any)
		fputc('\n', out);
}

static void print_table(FILE *out, const struct stats_report *r, const struct stats_print_opts *o)
{
	const struct stats_report *prev =
	    o->interval > 0 && o->prev && o->prev->nrows == r->nrows ? o->prev : NULL;
	int remarked = 0; /* a REMARKED column once the tag mode has rewritten anything */
	int conform = 0;  /* a DSCP conformance column once any rule with a DSCP counted */
	for (int i = 0; i < r->nrows; i++) {
		remarked |= r->rows[i].remarked.packets != 0;
		conform |= stats_conformance_share(&r->rows[i]) >= 0;
	}
	fprintf(out, "%-18s %-22s %-5s %-16s %-4s %12s %14s", "ROLE", "SERVICE", "PROTO", "PORTS",
		"DIR", "PACKETS", "BYTES");
	if (remarked)
		fprintf(out, " %12s", "REMARKED");
	if (conform)
		fprintf(out, prev ? " %-13s" : " %s", "DSCP CONFORM");
	fprintf(out, prev ? " %10s %12s\n" : "\n", "PPS", "BIT/S");
	int shown = 0;
	for (int i = 0; i < r->nrows; i++) {
		const struct stats_row *row = &r->rows[i];
		if (!o->all && row->count.packets == 0)
			continue;
		char ports[24];
		format_rule_ports(&row->info, ports, sizeof(ports));
		fprintf(out, "%-18s %-22s %-5s %-16s %-4s %12llu %14llu", row->info.role,
			row->info.service, matrix_proto_name(row->info.proto), ports,
			stats_dir_name(row->dir), (unsigned long long)row->count.packets,
			(unsigned long long)row->count.bytes);
		if (remarked)
			fprintf(out, " %12llu", (unsigned long long)row->remarked.packets);
		/* "46 99.2%": the expected DSCP and the share of packets that had it; blank for
		 * services without a DSCP or without packets */
		double share = conform ? stats_conformance_share(row) : -1;
		if (share >= 0)
			fprintf(out, " %2u %5.1f%%%*s", row->info.dscp, 100.0 * share, prev ? 4 : 0,
				"");
		else if (prev)
			fprintf(out, " %-13s", "");
		if (prev)
			fprintf(out, " %10.1f %12.0f",
				rate(row->count.packets, prev->rows[i].count.packets, o->interval),
				8 * rate(row->count.bytes, prev->rows[i].count.bytes, o->interval));
		fputc('\n', out);
		print_media_line(out, row);
		shown++;
	}
	if (!shown)
		fprintf(out, "(no classified packets%s)\n",
			o->all ? "" : "; --all lists every rule");
	fputc('\n', out);
	for (int c = 0; c < LX_CNT_MAX; c++)
		fprintf(out, "%-68s %12llu %14llu\n", counter_names[c],
			(unsigned long long)r->special[c].packets,
			(unsigned long long)r->special[c].bytes);
	fprintf(out, "%-68s %12llu %14llu\n", "total", (unsigned long long)r->total.packets,
		(unsigned long long)r->total.bytes);
	print_drops_table(out, r);
}

void stats_print(FILE *out, const struct stats_report *r, const struct stats_print_opts *o)
{
	(o->json ? print_json : print_table)(out, r, o);
	fflush(out);
}

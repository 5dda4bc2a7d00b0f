// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "streams.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "json.h"
#include "stats.h"

void streams_free(struct streams_report *r)
{
	free(r->rows);
	memset(r, 0, sizeof(*r));
}

const char *streams_codec(const struct media_table *t, unsigned pt, char *buf, size_t size)
{
	if (t && pt < LX_PAYLOAD_TYPES && t->pt[pt].kind)
		return t->pt[pt].name;
	snprintf(buf, size, "pt %u", pt);
	return buf;
}

/* The figures of one stream from its raw state (RFC 3550 A.3 for the loss). */
static void derive(struct stream_row *row, const struct media_table *t)
{
	const struct lx_stream *s = &row->st;
	uint64_t highest = (uint64_t)s->cycles + s->max_seq;
	row->expected = highest >= s->base_seq ? highest - s->base_seq + 1 : 0;
	row->lost = row->expected > s->received ? row->expected - s->received : 0;
	row->loss = row->expected ? (double)row->lost / (double)row->expected : 0.0;
	double unit_ms = s->clock_hz ? 1000.0 / s->clock_hz / 256.0 : 0.0;
	row->jitter_ms = (double)s->jitter * unit_ms;
	row->mean_jitter_ms = (double)s->mean_jitter * unit_ms / 65536.0;
	row->verdict =
	    t ? media_verdict(t, s->kind, s->packets, row->loss, row->jitter_ms) : "unclassified";
}

static int by_first_seen(const void *a, const void *b)
{
	const struct stream_row *x = a, *y = b;
	if (x->st.first_ns != y->st.first_ns)
		return x->st.first_ns < y->st.first_ns ? -1 : 1;
	return memcmp(&x->key, &y->key, sizeof(x->key));
}

int streams_collect(int streams_fd, int rule_info_fd, const struct media_table *t,
		    uint32_t slot_mask, struct streams_report *r, struct text_error *err)
{
	memset(r, 0, sizeof(*r));
	struct lx_stream_key key, next;
	int cap = 0, first = 1;
	while (bpf_map_get_next_key(streams_fd, first ? NULL : &key, &next) == 0) {
		first = 0;
		key = next;
		struct lx_stream st;
		if (bpf_map_lookup_elem(streams_fd, &key, &st))
			continue; /* evicted meanwhile */
		if (st.state != LX_STREAM_CONFIRMED || key.slot >= LX_MAX_IFACES ||
		    !(slot_mask & (1u << key.slot)))
			continue;
		if (r->n == cap) {
			cap = cap ? cap * 2 : 64;
			struct stream_row *rows = realloc(r->rows, (size_t)cap * sizeof(*rows));
			if (!rows) {
				streams_free(r);
				snprintf(err->msg, sizeof(err->msg), "out of memory");
				return -1;
			}
			r->rows = rows;
		}
		struct stream_row *row = &r->rows[r->n++];
		memset(row, 0, sizeof(*row));
		row->key = key;
		row->st = st;
		if (rule_info_fd >= 0 && bpf_map_lookup_elem(rule_info_fd, &st.rule, &row->info))
			memset(&row->info, 0, sizeof(row->info));
		derive(row, t);
	}
	if (errno != ENOENT) {
		snprintf(err->msg, sizeof(err->msg), "reading the streams: %s", strerror(errno));
		streams_free(r);
		return -1;
	}
	if (r->n)
		qsort(r->rows, (size_t)r->n, sizeof(*r->rows), by_first_seen);
	return 0;
}

static void format_addr(const struct lx_stream_key *k, int src, char *buf, size_t size)
{
	const uint8_t *a = src ? k->saddr : k->daddr;
	inet_ntop(k->family == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)size);
}

static void print_json(FILE *out, const struct streams_report *r,
		       const struct streams_print_opts *o)
{
	struct json_writer w;
	json_begin(&w, out);
	json_key(&w, "streams");
	json_array_begin(&w);
	for (int i = 0; i < r->n; i++) {
		const struct stream_row *row = &r->rows[i];
		const struct lx_stream *s = &row->st;
		char src[64], dst[64], codec[16], ssrc[16];
		format_addr(&row->key, 1, src, sizeof(src));
		format_addr(&row->key, 0, dst, sizeof(dst));
		snprintf(ssrc, sizeof(ssrc), "0x%08X", row->key.ssrc);
		json_break(&w, "\n  ");
		json_object_begin(&w);
		json_kv_str(&w, "role", row->info.role);
		json_kv_str(&w, "service", row->info.service);
		json_kv_str(&w, "direction", stats_dir_name(s->dir));
		json_kv_str(&w, "media", media_kind_name(s->kind));
		json_kv_str(&w, "codec", streams_codec(o->t, s->pt, codec, sizeof(codec)));
		json_kv_uint(&w, "payload_type", s->pt);
		json_kv_str(&w, "transport", row->key.proto == LX_PROTO_TCP ? "tcp" : "udp");
		json_kv_str(&w, "src", src);
		json_kv_uint(&w, "sport", row->key.sport);
		json_kv_str(&w, "dst", dst);
		json_kv_uint(&w, "dport", row->key.dport);
		json_kv_str(&w, "ssrc", ssrc);
		json_kv_bool(&w, "turn_channel", s->channel);
		json_break(&w, "\n   ");
		json_kv_uint(&w, "packets", s->packets);
		json_kv_uint(&w, "bytes", s->bytes);
		json_kv_uint(&w, "expected", row->expected);
		json_kv_uint(&w, "received", s->received);
		json_kv_uint(&w, "lost", row->lost);
		json_kv_fixed(&w, "loss", 6, row->loss);
		json_kv_uint(&w, "reordered", s->reordered);
		json_kv_uint(&w, "duplicates", s->duplicates);
		json_kv_uint(&w, "highest_seq", (uint64_t)s->cycles + s->max_seq);
		json_kv_uint(&w, "clock_hz", s->clock_hz);
		json_break(&w, "\n   ");
		json_kv_fixed(&w, "jitter_ms", 4, row->jitter_ms);
		json_kv_fixed(&w, "mean_jitter_ms", 4, row->mean_jitter_ms);
		json_kv_fixed(&w, "first_seen", 6,
			      (double)((int64_t)s->first_ns + o->epoch_offset_ns) / 1e9);
		json_kv_fixed(&w, "last_seen", 6,
			      (double)((int64_t)s->last_ns + o->epoch_offset_ns) / 1e9);
		json_kv_str(&w, "verdict", row->verdict);
		json_object_end(&w);
	}
	json_break(&w, "\n");
	json_array_end(&w);
	json_end(&w);
}

static void print_table(FILE *out, const struct streams_report *r,
			const struct streams_print_opts *o)
{
	if (!r->n) {
		fprintf(out, "(no RTP streams)\n");
		return;
	}
	fprintf(out, "%-14s %-16s %-3s %-7s %-15s %-46s %-10s %9s %7s %9s %s\n", "ROLE", "SERVICE",
		"DIR", "MEDIA", "CODEC", "SOURCE -> DESTINATION", "SSRC", "PACKETS", "LOSS%",
		"JITTER", o->now_ns ? "VERDICT  AGE" : "VERDICT");
	for (int i = 0; i < r->n; i++) {
		const struct stream_row *row = &r->rows[i];
		const struct lx_stream *s = &row->st;
		char src[48], dst[48], flow[128], codec[16], ssrc[16];
		format_addr(&row->key, 1, src, sizeof(src));
		format_addr(&row->key, 0, dst, sizeof(dst));
		snprintf(flow, sizeof(flow), "%s:%u -> %s:%u", src, row->key.sport, dst,
			 row->key.dport);
		snprintf(ssrc, sizeof(ssrc), "%08X", row->key.ssrc);
		fprintf(out, "%-14s %-16s %-3s %-7s %-15s %-46s %-10s %9llu %7.2f %7.2fms %s",
			row->info.role, row->info.service, stats_dir_name(s->dir),
			media_kind_name(s->kind), streams_codec(o->t, s->pt, codec, sizeof(codec)),
			flow, ssrc, (unsigned long long)s->packets, 100.0 * row->loss,
			row->jitter_ms, row->verdict);
		if (o->now_ns)
			fprintf(out, "  %.0fs",
				o->now_ns > s->last_ns ? (double)(o->now_ns - s->last_ns) / 1e9
						       : 0.0);
		fputc('\n', out);
	}
}

void streams_print(FILE *out, const struct streams_report *r, const struct streams_print_opts *o)
{
	(o->json ? print_json : print_table)(out, r, o);
	fflush(out);
}
